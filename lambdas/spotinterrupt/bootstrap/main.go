// Command bootstrap is the spotinterrupt Lambda (provided.al2023 runtime). Its environment is
// documented on spotinterrupt.FromEnv (LIVEAGG_ADMIN_TOKEN_PARAMETER, LIVEAGG_STACK and
// LIVEAGG_ASG are required); AWS clients take the usual SDK configuration (region, credentials,
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> overrides).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/liveagg/liveagg/lambdas/spotinterrupt"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := build(context.Background(), log)
	if err != nil {
		log.Error("spotinterrupt: configuration", "err", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func build(ctx context.Context, log *slog.Logger) (*spotinterrupt.Handler, error) {
	cfg, opts, err := spotinterrupt.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	if os.Getenv(spotinterrupt.EnvAdminDialOverride) != "" {
		log.Warn("spotinterrupt: " + spotinterrupt.EnvAdminDialOverride + " is set: admin calls go to its loopback targets (a test hook, never a deployment)")
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	log.Info("spotinterrupt: serving", "stack", cfg.Stack, "groups", cfg.Groups)
	return spotinterrupt.New(ec2.NewFromConfig(awsCfg), autoscaling.NewFromConfig(awsCfg), ssm.NewFromConfig(awsCfg),
		cloudwatch.NewFromConfig(awsCfg), cfg, log, opts...), nil
}
