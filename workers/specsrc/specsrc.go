// Package specsrc loads a worker's spec from where operators keep it, a file or an S3 object
// (where the Terraform provider stores specs), and watches it for changes.
//
// A worker's state is shaped by its spec, so a change is not applied in place: Watch reports a
// valid new spec, and the worker drains (checkpointing everything) and exits so its supervisor
// restarts it on the new spec. The restarted worker carries the checkpoints over by the rule of
// spec.Diff, which the provider's plan prints beforehand; TopicHistory gives the plan what it
// needs to refuse a change the input topic cannot support. An invalid new spec is logged and
// ignored: the running spec stays.
package specsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveagg/liveagg/workers/spec"
)

// S3API is the part of the S3 client a source uses.
type S3API interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Source is where a spec lives.
type Source struct {
	loc    string
	s3     S3API
	bucket string
	key    string
	path   string
}

// Open returns the source at loc: a file path, file:///path or s3://bucket/key.
func Open(loc string, cl S3API) (*Source, error) {
	src := &Source{loc: loc}
	if strings.HasPrefix(loc, "s3://") {
		u, err := url.Parse(loc)
		if err != nil || u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return nil, fmt.Errorf("spec source %q is not s3://bucket/key", loc)
		}
		if cl == nil {
			return nil, fmt.Errorf("spec source %s: no S3 client", loc)
		}
		src.s3, src.bucket, src.key = cl, u.Host, strings.TrimPrefix(u.Path, "/")
		return src, nil
	}
	src.path = strings.TrimPrefix(loc, "file://")
	return src, nil
}

// Load reads and parses the spec, returning it with a version tag (ETag or content) that
// changes when the spec does.
func (s *Source) Load(ctx context.Context) (*spec.Spec, string, error) {
	data, tag, err := s.read(ctx)
	if err != nil {
		return nil, "", err
	}
	sp, err := spec.Parse(data)
	if err != nil {
		return nil, tag, fmt.Errorf("spec %s: %w", s.loc, err)
	}
	return sp, tag, nil
}

func (s *Source) read(ctx context.Context) ([]byte, string, error) {
	if s.s3 == nil {
		data, err := os.ReadFile(s.path)
		if err != nil {
			return nil, "", fmt.Errorf("read spec: %w", err)
		}
		return data, string(data), nil
	}
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key)})
	if err != nil {
		return nil, "", fmt.Errorf("read spec %s: %w", s.loc, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", fmt.Errorf("read spec %s: %w", s.loc, err)
	}
	return data, aws.ToString(out.ETag) + "/" + string(bytes.TrimSpace(data)), nil
}

// ErrChanged is returned by Watch when a valid new spec is in place.
var ErrChanged = errors.New("spec changed")

// Watch polls the source every interval from tag on. It returns ErrChanged (wrapped, with the
// new spec's name) when a valid new spec appears, or ctx's error. Read failures and invalid
// specs are logged, and the watch goes on.
func (s *Source) Watch(ctx context.Context, tag string, interval time.Duration, log *slog.Logger) (*spec.Spec, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	bad := ""
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		sp, newTag, err := s.Load(ctx)
		switch {
		case err != nil && newTag == "":
			log.Warn("spec source unreadable; keeping the running spec", "source", s.loc, "err", err)
		case newTag == tag:
		case err != nil:
			if newTag != bad {
				log.Error("new spec is invalid; keeping the running spec", "source", s.loc, "err", err)
				bad = newTag
			}
		default:
			return sp, fmt.Errorf("%s: %w", sp.Name, ErrChanged)
		}
	}
}
