//go:build integration

package checkpoint

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestS3Store runs the suite against S3 served by moto: conditional writes (If-None-Match,
// If-Match) and multipart uploads for real.
func TestS3Store(t *testing.T) {
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	runSuite(t, func(t *testing.T) *Store {
		bucket := testenv.Name(t, "ckpt")
		if _, err := cl.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatal(err)
		}
		s, err := Open("s3://"+bucket+"/checkpoints", WithS3Client(cl))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestS3StoreChains runs the incremental chain suite, the 200 random damages among it, against
// S3 served by moto.
func TestS3StoreChains(t *testing.T) {
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	runChainSuite(t, func(t *testing.T) *Store {
		bucket := testenv.Name(t, "chain")
		if _, err := cl.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatal(err)
		}
		s, err := Open("s3://"+bucket+"/checkpoints", WithS3Client(cl))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
