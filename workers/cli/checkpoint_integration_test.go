//go:build integration

package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/checkpoint"
)

// TestCheckpointLsOnS3 lists and inspects checkpoints that a store wrote to moto's S3.
func TestCheckpointLsOnS3(t *testing.T) {
	ctx := context.Background()
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	bucket := testenv.Name(t, "ckls")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	loc := "s3://" + bucket + "/ckpt"
	st, err := checkpoint.Open(loc, checkpoint.WithS3Client(cl))
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		l, err := st.Claim(ctx, checkpoint.Key{Spec: "s3spec", Topic: "raw", Partition: p}, "w9")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Save(ctx, checkpoint.Checkpoint{Offset: 1000 + int64(p), State: []byte("some state")}); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_REGION", testenv.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	out, stderr, err := runCLI(t, "checkpoint", "ls", loc, "--endpoint", testenv.AWSEndpoint(t))
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	for _, want := range []string{"1000", "1001", "1002", "w9"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls lacks %q:\n%s", want, out)
		}
	}
	out, stderr, err = runCLI(t, "checkpoint", "inspect", loc, "s3spec/raw/2", "--endpoint", testenv.AWSEndpoint(t))
	if err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("inspect: %v %s\n%s", err, stderr, out)
	}
}
