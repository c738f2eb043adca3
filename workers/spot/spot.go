// Package spot is the worker's side of living on EC2 spot instances: it learns its instance
// from the instance metadata service (IMDSv2), publishes its admin endpoint as a tag on its own
// instance so the control lambdas can find it, reads the admin token from SSM, and watches
// metadata for a spot interruption notice, draining itself if no lambda has done so first.
//
// Every endpoint is injectable (the IMDS client's endpoint, the EC2 and SSM clients), so tests
// point them at httptest servers and moto; nothing here dials an instance address itself.
package spot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// AdminEndpointTag is the instance tag that carries a worker's admin endpoint.
const AdminEndpointTag = "liveagg:admin-endpoint"

// DrainedTag marks an instance whose worker has drained (or is draining) for its termination.
// The spot-interruption lambda writes it after a drain it did; a worker that drains itself on
// its instance's own notice writes it first, so a lambda that arrives after the worker has
// exited finds the drain done instead of counting "connection refused" as a failed drain.
const DrainedTag = "liveagg:drained"

// Metadata reads instance metadata; *imds.Client implements it.
type Metadata interface {
	GetMetadata(context.Context, *imds.GetMetadataInput, ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
}

// Tagger tags instances; *ec2.Client implements it.
type Tagger interface {
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// Parameters reads SSM parameters; *ssm.Client implements it.
type Parameters interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Notice is a spot interruption notice as metadata serves it.
type Notice struct {
	Action string    `json:"action"`
	Time   time.Time `json:"time"`
}

func get(ctx context.Context, md Metadata, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := md.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	return strings.TrimSpace(string(b)), err
}

// InstanceID returns the instance's id.
func InstanceID(ctx context.Context, md Metadata) (string, error) {
	id, err := get(ctx, md, "instance-id")
	if err != nil {
		return "", fmt.Errorf("instance metadata: instance-id: %w", err)
	}
	return id, nil
}

// PrivateIP returns the instance's private IPv4 address, for the advertised endpoint.
func PrivateIP(ctx context.Context, md Metadata) (string, error) {
	ip, err := get(ctx, md, "local-ipv4")
	if err != nil {
		return "", fmt.Errorf("instance metadata: local-ipv4: %w", err)
	}
	return ip, nil
}

// PublishEndpoint tags the instance with the worker's admin endpoint.
func PublishEndpoint(ctx context.Context, ec Tagger, instanceID, endpoint string) error {
	_, err := ec.CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: []string{instanceID},
		Tags:      []ec2types.Tag{{Key: aws.String(AdminEndpointTag), Value: aws.String(endpoint)}},
	})
	if err != nil {
		return fmt.Errorf("tag %s with %s: %w", instanceID, AdminEndpointTag, err)
	}
	return nil
}

// MarkDrained tags the worker's own instance as drained by itself (value "self:<notice time>").
func MarkDrained(ctx context.Context, ec Tagger, instanceID string, n Notice) error {
	_, err := ec.CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: []string{instanceID},
		Tags:      []ec2types.Tag{{Key: aws.String(DrainedTag), Value: aws.String("self:" + n.Time.UTC().Format(time.RFC3339))}},
	})
	if err != nil {
		return fmt.Errorf("tag %s with %s: %w", instanceID, DrainedTag, err)
	}
	return nil
}

// Token reads the admin token from an SSM SecureString parameter.
func Token(ctx context.Context, p Parameters, name string) (string, error) {
	out, err := p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("admin token from SSM %s: %w", name, err)
	}
	t := strings.TrimSpace(aws.ToString(out.Parameter.Value))
	if t == "" {
		return "", fmt.Errorf("admin token from SSM %s: empty", name)
	}
	return t, nil
}

// PendingNotice returns the current interruption notice, or nil if there is none (metadata
// answers 404 until two minutes before the instance is taken).
func PendingNotice(ctx context.Context, md Metadata) (*Notice, error) {
	s, err := get(ctx, md, "spot/instance-action")
	if err != nil {
		var he interface{ HTTPStatusCode() int }
		if errors.As(err, &he) && he.HTTPStatusCode() == 404 {
			return nil, nil
		}
		return nil, fmt.Errorf("instance metadata: spot/instance-action: %w", err)
	}
	var n Notice
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		return nil, fmt.Errorf("instance metadata: spot/instance-action %q: %w", s, err)
	}
	return &n, nil
}

// Watch polls for an interruption notice every interval and calls drain once when one
// appears. It returns when ctx ends or after drain returns.
func Watch(ctx context.Context, md Metadata, interval time.Duration, log *slog.Logger, drain func(context.Context, Notice) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := PendingNotice(ctx, md)
		switch {
		case err != nil:
			log.Debug("spot notice poll failed", "err", err)
		case n != nil:
			log.Warn("spot interruption notice: draining", "action", n.Action, "time", n.Time)
			// The notice leaves two minutes; the drain gets what remains of them.
			dctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), n.Time)
			if n.Time.IsZero() || time.Until(n.Time) <= 0 {
				dctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 110*time.Second)
			}
			if err := drain(dctx, *n); err != nil {
				log.Error("drain on spot notice failed", "err", err)
			}
			cancel()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
