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

// TestCheckpointRetireOnS3: versions and retire on moto's S3 delete every object of the old
// version's partitions (manifest and states) and nothing of the others.
func TestCheckpointRetireOnS3(t *testing.T) {
	ctx := context.Background()
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	bucket := testenv.Name(t, "ckret")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	loc := "s3://" + bucket + "/ckpt"
	st, err := checkpoint.Open(loc, checkpoint.WithS3Client(cl))
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		l, err := st.Claim(ctx, checkpoint.Key{Spec: "rs", Topic: "raw", Partition: p}, "w1")
		if err != nil {
			t.Fatal(err)
		}
		l.SetSpec(int(p)+1, "name: rs\n")
		for off := range int64(3) { // a current, a previous and a removed stale one
			if _, err := l.Save(ctx, checkpoint.Checkpoint{Offset: 100*int64(p) + off, State: []byte("state")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("AWS_REGION", testenv.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	ep := testenv.AWSEndpoint(t)
	out, stderr, err := runCLI(t, "checkpoint", "versions", loc, "--spec", "rs", "--endpoint", ep)
	if err != nil || !strings.Contains(out, "version 1 on 1") || !strings.Contains(out, "version 3 on 1") {
		t.Fatalf("versions: %v %s\n%s", err, stderr, out)
	}
	if _, stderr, err := runCLI(t, "checkpoint", "retire", loc, "--spec", "rs", "--below", "3", "--yes", "--endpoint", ep); err != nil {
		t.Fatalf("retire: %v %s", err, stderr)
	}
	objs, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("ckpt/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs.Contents {
		if !strings.HasPrefix(aws.ToString(o.Key), "ckpt/rs/raw/2/") {
			t.Errorf("%s left after retiring partitions 0 and 1", aws.ToString(o.Key))
		}
	}
	if len(objs.Contents) != 3 { // partition 2's manifest, current and previous states
		t.Errorf("%d objects left, want partition 2's 3", len(objs.Contents))
	}
}
