//go:build integration

package specsrc

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

func TestLoadFromS3(t *testing.T) {
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	ctx := testenv.Context(t, time.Minute)
	bucket := testenv.Name(t, "specs")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	put := func(doc string) {
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("specs/t.yaml"), Body: strings.NewReader(doc)}); err != nil {
			t.Fatal(err)
		}
	}
	put(specV1)
	src, err := Open("s3://"+bucket+"/specs/t.yaml", cl)
	if err != nil {
		t.Fatal(err)
	}
	sp, tag, err := src.Load(ctx)
	if err != nil || sp.Name != "t" {
		t.Fatalf("Load = %v, %v", sp, err)
	}
	put(strings.Replace(specV1, "[1m]", "[5m]", 1))
	if _, tag2, err := src.Load(ctx); err != nil || tag2 == tag {
		t.Fatalf("changed spec has the same tag (%v)", err)
	}
}
