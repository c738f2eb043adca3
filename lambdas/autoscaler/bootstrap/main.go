// Command bootstrap is the autoscaler Lambda (provided.al2023 runtime), run every minute by an
// EventBridge schedule. Its environment is documented on autoscaler.FromEnv; AWS clients take
// the usual SDK configuration (region, credentials, AWS_ENDPOINT_URL overrides).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/liveagg/liveagg/lambdas/autoscaler"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, policy, err := autoscaler.FromEnv(os.Getenv)
	if err != nil {
		log.Error("autoscaler: configuration", "err", err)
		os.Exit(1)
	}
	awsCfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("autoscaler: aws config", "err", err)
		os.Exit(1)
	}
	s := autoscaler.New(cloudwatch.NewFromConfig(awsCfg), autoscaling.NewFromConfig(awsCfg), policy, cfg, log)
	lambda.Start(s.Handle)
}
