// Command bootstrap is the spotinterrupt Lambda (provided.al2023 runtime).
//
// Environment:
//
//	LIVEAGG_ADMIN_TOKEN_PARAMETER  SSM SecureString holding the workers' admin token (required)
//	LIVEAGG_NOTICE                 time from an event to the instance's end (default 2m)
//
// AWS clients take the usual SDK configuration (region, credentials, AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_<SERVICE> overrides).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

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
	param := os.Getenv("LIVEAGG_ADMIN_TOKEN_PARAMETER")
	if param == "" {
		return nil, fmt.Errorf("LIVEAGG_ADMIN_TOKEN_PARAMETER is not set: name the SSM SecureString parameter that holds the workers' admin token")
	}
	var opts []spotinterrupt.Option
	if v := os.Getenv("LIVEAGG_NOTICE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("LIVEAGG_NOTICE %q is not a positive duration such as 2m", v)
		}
		opts = append(opts, spotinterrupt.WithNotice(d))
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	return spotinterrupt.New(ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg), ssm.NewFromConfig(cfg),
		cloudwatch.NewFromConfig(cfg), param, log, opts...), nil
}
