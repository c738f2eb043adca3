//go:build integration

package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// TestS3Segments: a state larger than the segment size is stored as segments and an index,
// read back whole, verified like any other, and deleted with its segments; a sweep keeps the
// segments of objects the manifest names.
func TestS3Segments(t *testing.T) {
	ctx := context.Background()
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	bucket := testenv.Name(t, "seg")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	s, err := Open("s3://"+bucket+"/checkpoints", WithS3Client(cl))
	if err != nil {
		t.Fatal(err)
	}
	s.b.(*s3Blobs).seg = 5 << 20
	key := Key{Spec: "seg", Topic: "raw", Partition: 0}
	l, err := s.Claim(ctx, key, "w1")
	if err != nil {
		t.Fatal(err)
	}
	state := make([]byte, 12<<20+123)
	for i := range state {
		state[i] = byte(i * 7)
	}
	e, err := l.Save(ctx, Checkpoint{Offset: 5, State: state, Kind: Base})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := s.b.list(ctx, key.dir()+"/data/")
	if len(names) != 4 {
		t.Fatalf("a 12 MB state in 5 MB segments is stored as %v", names)
	}
	l2, err := s.Claim(ctx, key, "w2")
	if err != nil {
		t.Fatal(err)
	}
	res, err := l2.Restore(ctx, States(func(states [][]byte) (int, error) {
		if len(states) != 1 || !bytes.Equal(states[0], state) {
			return 0, errors.New("the segments do not reassemble the state")
		}
		return 1, nil
	}))
	if err != nil || res.Offset != 5 {
		t.Fatalf("Restore = %+v, %v", res, err)
	}
	// A later base sweeps nothing the manifest names, segments included; two bases later the
	// first is retired with its segments.
	for i := range 2 {
		small := []byte(fmt.Sprintf("a small state %d", i))
		if _, err := l2.Save(ctx, Checkpoint{Offset: int64(6 + i), State: small, Kind: Base}); err != nil {
			t.Fatal(err)
		}
		names, _ = s.b.list(ctx, key.dir()+"/data/")
		if i == 0 && len(names) != 5 {
			t.Fatalf("after a second base: %v", names)
		}
	}
	if len(names) != 2 {
		t.Fatalf("after the first base's retirement: %v", names)
	}
	if _, err := s.Fetch(ctx, e); err == nil {
		t.Fatal("the retired segmented base still reads")
	}
	// A damaged segment is a damaged object.
	if _, err := l2.Save(ctx, Checkpoint{Offset: 9, State: state, Kind: Base}); err != nil {
		t.Fatal(err)
	}
	cur := l2.Manifest().Current
	if err := s.b.(*s3Blobs).putOne(ctx, segmentName(cur.Object, 1), []byte("short")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(ctx, *cur); err == nil {
		t.Fatal("a damaged segment reads")
	}
}
