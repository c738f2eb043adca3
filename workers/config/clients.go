package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ClientOpts turns the Kafka section into franz-go options: brokers, TLS, SASL.
func (k Kafka) ClientOpts(ctx context.Context, awsCfg func(context.Context) (awssdk.Config, error)) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if k.TLS.Enabled {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.TLS.CAFile != "" {
			pem, err := os.ReadFile(k.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.ca_file: no certificates in %s", k.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if k.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(k.TLS.CertFile, k.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.Dialer((&tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}).DialContext))
	}
	switch m := k.SASL.Mechanism; m {
	case "":
	case "scram-sha-256", "scram-sha-512":
		pass := k.SASL.Password
		if pass == "" {
			pw, err := os.ReadFile(k.SASL.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.sasl.password_file: %w", err)
			}
			pass = strings.TrimSpace(string(pw))
		}
		a := scram.Auth{User: k.SASL.Username, Pass: pass}
		if m == "scram-sha-256" {
			opts = append(opts, kgo.SASL(a.AsSha256Mechanism()))
		} else {
			opts = append(opts, kgo.SASL(a.AsSha512Mechanism()))
		}
	case "aws-msk-iam":
		// MSK IAM signs each authentication with the instance's AWS credentials, refreshed.
		opts = append(opts, kgo.SASL(aws.ManagedStreamingIAM(func(ctx context.Context) (aws.Auth, error) {
			c, err := awsCfg(ctx)
			if err != nil {
				return aws.Auth{}, err
			}
			cr, err := c.Credentials.Retrieve(ctx)
			if err != nil {
				return aws.Auth{}, err
			}
			return aws.Auth{AccessKey: cr.AccessKeyID, SecretKey: cr.SecretAccessKey, SessionToken: cr.SessionToken}, nil
		})))
	default:
		return nil, fmt.Errorf("kafka.sasl.mechanism %q is not scram-sha-256, scram-sha-512 or aws-msk-iam", m)
	}
	return opts, nil
}

// Load builds the AWS configuration: the default credential chain, the region, retries with
// backoff, and the endpoint override if one is set.
func (a AWS) Load(ctx context.Context) (awssdk.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(a.Region),
		awsconfig.WithRetryer(func() awssdk.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 8
				o.MaxBackoff = 10 * time.Second
			})
		}),
	}
	if a.Endpoint != "" {
		opts = append(opts, awsconfig.WithBaseEndpoint(a.Endpoint))
	}
	c, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return awssdk.Config{}, fmt.Errorf("aws config: %w", err)
	}
	return c, nil
}
