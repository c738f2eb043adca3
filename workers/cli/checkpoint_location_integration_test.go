//go:build integration

package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// An S3 bucket that does not exist is an error (exit 2) that names it; an empty one lists
// "no checkpoints" and exits 0.
func TestCheckpointLsS3BucketMustExist(t *testing.T) {
	ctx := context.Background()
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	empty := testenv.Name(t, "ckempty")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(empty)}); err != nil {
		t.Fatal(err)
	}
	missing := testenv.Name(t, "ckmissing")
	t.Setenv("AWS_REGION", testenv.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"ls of a missing bucket", []string{"ls", "s3://" + missing + "/ckpt"}, ExitUsage, "S3 bucket " + missing + " does not exist"},
		{"inspect in a missing bucket", []string{"inspect", "s3://" + missing + "/ckpt", "s/t/0"}, ExitUsage, "S3 bucket " + missing + " does not exist"},
		{"ls of an empty bucket", []string{"ls", "s3://" + empty + "/ckpt"}, ExitOK, "no checkpoints under s3://" + empty + "/ckpt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"checkpoint"}, tc.args...), "--endpoint", testenv.AWSEndpoint(t))
			_, stderr, err := runCLI(t, args...)
			if code := exitCode(err); code != tc.wantCode {
				t.Errorf("exit %d (%v), want %d: %s", code, err, tc.wantCode, stderr)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.wantErr)
			}
		})
	}
}
