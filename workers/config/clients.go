package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/liveagg/liveagg/workers/sink"
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

// SSMParameters is the part of the SSM client that reads parameters.
type SSMParameters interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Secrets is the part of the Secrets Manager client that reads secrets.
type Secrets interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// SecretOption replaces a secret store's client (tests; callers with a client already).
type SecretOption func(*secretStores)

// WithSSM reads SSM parameters through p.
func WithSSM(p SSMParameters) SecretOption { return func(s *secretStores) { s.ssm = p } }

// WithSecretsManager reads Secrets Manager secrets through sm.
func WithSecretsManager(sm Secrets) SecretOption { return func(s *secretStores) { s.sm = sm } }

// secretStores makes the SSM and Secrets Manager clients on first use, so a configuration that
// reads no secret needs no AWS configuration.
type secretStores struct {
	awsCfg func(context.Context) (awssdk.Config, error)
	ssm    SSMParameters
	sm     Secrets
}

func newSecretStores(awsCfg func(context.Context) (awssdk.Config, error), opts []SecretOption) *secretStores {
	s := &secretStores{awsCfg: awsCfg}
	for _, o := range opts {
		o(s)
	}
	return s
}

// parameter reads an SSM parameter, decrypted, without surrounding whitespace; what says
// which setting wanted it, for the error.
func (s *secretStores) parameter(ctx context.Context, what, name string) (string, error) {
	if s.ssm == nil {
		c, err := s.awsCfg(ctx)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		s.ssm = ssm.NewFromConfig(c)
	}
	out, err := s.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: awssdk.String(name), WithDecryption: awssdk.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("%s: SSM parameter %s: %w", what, name, err)
	}
	v := strings.TrimSpace(awssdk.ToString(out.Parameter.Value))
	if v == "" {
		return "", fmt.Errorf("%s: SSM parameter %s is empty", what, name)
	}
	return v, nil
}

// secret reads a Secrets Manager secret's string.
func (s *secretStores) secret(ctx context.Context, what, id string) (string, error) {
	if s.sm == nil {
		c, err := s.awsCfg(ctx)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		s.sm = secretsmanager.NewFromConfig(c)
	}
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(id)})
	if err != nil {
		return "", fmt.Errorf("%s: secret %s: %w", what, id, err)
	}
	v := strings.TrimSpace(awssdk.ToString(out.SecretString))
	if v == "" {
		return "", fmt.Errorf("%s: secret %s has no string value", what, id)
	}
	return v, nil
}

// Conn resolves the Cassandra section into a connection: the password from its store, TLS,
// and for Amazon Keyspaces SigV4 with the AWS credentials of awsCfg. No secret is logged or
// kept beyond the connection.
func (cs Cassandra) Conn(ctx context.Context, awsCfg func(context.Context) (awssdk.Config, error), opts ...SecretOption) (sink.CassandraConn, error) {
	conn := sink.CassandraConn{Hosts: cs.Hosts, Username: cs.Username, Password: cs.Password}
	if cs.Keyspaces {
		conn.Port = 9142
	}
	stores := newSecretStores(awsCfg, opts)
	switch {
	case cs.PasswordFile != "":
		b, err := os.ReadFile(cs.PasswordFile)
		if err != nil {
			return conn, fmt.Errorf("sinks.cassandra.password_file: %w", err)
		}
		conn.Password = strings.TrimSpace(string(b))
		if conn.Password == "" {
			return conn, fmt.Errorf("sinks.cassandra.password_file %s is empty", cs.PasswordFile)
		}
	case cs.PasswordSSMParameter != "":
		pw, err := stores.parameter(ctx, "sinks.cassandra.password_ssm_parameter", cs.PasswordSSMParameter)
		if err != nil {
			return conn, err
		}
		conn.Password = pw
	case cs.PasswordSecret != "":
		v, err := stores.secret(ctx, "sinks.cassandra.password_secret", cs.PasswordSecret)
		if err != nil {
			return conn, err
		}
		conn.Password = v
		var creds struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if strings.HasPrefix(v, "{") {
			if err := json.Unmarshal([]byte(v), &creds); err != nil || creds.Password == "" {
				// Not the error's text: it could quote the secret.
				return conn, fmt.Errorf("sinks.cassandra.password_secret %s: a JSON secret needs a \"password\" string", cs.PasswordSecret)
			}
			conn.Password = creds.Password
			if conn.Username == "" {
				conn.Username = creds.Username
			}
		}
		if conn.Username == "" {
			return conn, fmt.Errorf("sinks.cassandra: no username: set username or store one in secret %s", cs.PasswordSecret)
		}
	}
	if cs.Keyspaces && conn.Username == "" {
		c, err := awsCfg(ctx)
		if err != nil {
			return conn, fmt.Errorf("sinks.cassandra.keyspaces: %w", err)
		}
		conn.SigV4 = &sink.CassandraSigV4{Region: c.Region, Credentials: c.Credentials}
	}
	if cs.TLS.Enabled {
		conn.TLS = &sink.CassandraTLS{CAFile: cs.TLS.CAFile, CertFile: cs.TLS.CertFile, KeyFile: cs.TLS.KeyFile,
			ServerName: cs.TLS.ServerName, InsecureSkipVerify: cs.TLS.InsecureSkipVerify}
	}
	return conn, nil
}

// Certificate loads the admin API's certificate and key from where the section says.
func (t AdminTLS) Certificate(ctx context.Context, awsCfg func(context.Context) (awssdk.Config, error), opts ...SecretOption) (tls.Certificate, error) {
	stores := newSecretStores(awsCfg, opts)
	var certPEM, keyPEM []byte
	switch {
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("admin.tls: %w", err)
		}
		return cert, nil
	case t.CertSSMParameter != "":
		c, err := stores.parameter(ctx, "admin.tls.cert_ssm_parameter", t.CertSSMParameter)
		if err != nil {
			return tls.Certificate{}, err
		}
		k, err := stores.parameter(ctx, "admin.tls.key_ssm_parameter", t.KeySSMParameter)
		if err != nil {
			return tls.Certificate{}, err
		}
		certPEM, keyPEM = []byte(c), []byte(k)
	case t.Secret != "":
		v, err := stores.secret(ctx, "admin.tls.secret", t.Secret)
		if err != nil {
			return tls.Certificate{}, err
		}
		var pair struct {
			Cert string `json:"cert"`
			Key  string `json:"key"`
		}
		if err := json.Unmarshal([]byte(v), &pair); err != nil || pair.Cert == "" || pair.Key == "" {
			return tls.Certificate{}, fmt.Errorf("admin.tls.secret %s: needs a JSON object with \"cert\" and \"key\" PEM strings", t.Secret)
		}
		certPEM, keyPEM = []byte(pair.Cert), []byte(pair.Key)
	default:
		return tls.Certificate{}, errors.New("admin.tls: no certificate configured")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair's errors name the PEM blocks, never their contents.
		return tls.Certificate{}, fmt.Errorf("admin.tls: %w", err)
	}
	return cert, nil
}
