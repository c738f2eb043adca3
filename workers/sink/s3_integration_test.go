//go:build integration

package sink_test

import (
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/sink"
)

type seen struct {
	mu                  sync.Mutex
	retries, recoveries int
}

func (s *seen) Retrying(string, error, bool) { s.mu.Lock(); s.retries++; s.mu.Unlock() }
func (s *seen) Settled(_ string, ok bool) {
	s.mu.Lock()
	if ok {
		s.recoveries++
	}
	s.mu.Unlock()
}

// TestS3SinkHoldsWritesWhileS3IsDown: moto's S3 behind a proxy the test takes down. Puts fail
// for a passing reason, so the sink holds and retries them (Flush waits) and reports it; once
// S3 is back every window's object is there.
func TestS3SinkHoldsWritesWhileS3IsDown(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	proxy := testenv.NewProxy(t, testenv.AWSEndpoint(t)[len("http://"):])
	cfg := testenv.AWSConfig(t)
	direct := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	bucket := testenv.Name(t, "s3down")
	if _, err := direct.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String("http://" + proxy.Addr())
	viaProxy := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	s, err := sink.NewS3(viaProxy, "s3://"+bucket+"/rollups")
	if err != nil {
		t.Fatal(err)
	}
	obs := &seen{}
	s.Observe(obs)
	w, err := s.Open(ctx, sink.PartitionKey{Spec: "s", Topic: "raw", Partition: 0}, "")
	if err != nil {
		t.Fatal(err)
	}
	proxy.SetDown(true)
	var wins []*emit.Window
	for i := range 3 {
		win := &emit.Window{Spec: "s", Topic: "raw", Size: 60_000, Start: int64(i) * 60_000, KeyFields: []string{"k"},
			Columns: []string{"count"}, Rows: []emit.Row{{Key: []string{"a"}, Values: []float64{float64(i + 1)}}}}
		wins = append(wins, win)
		if err := w.Write(ctx, win); err != nil {
			t.Fatal(err)
		}
	}
	flushed := make(chan error, 1)
	go func() { _, err := w.Flush(ctx); flushed <- err }()
	time.Sleep(3 * time.Second)
	select {
	case err := <-flushed:
		t.Fatalf("flush returned (%v) while S3 was down: the writes were not held", err)
	default:
	}
	obs.mu.Lock()
	retries := obs.retries
	obs.mu.Unlock()
	if retries == 0 {
		t.Fatal("no retry reported while S3 was down")
	}
	proxy.SetDown(false)
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatalf("flush after S3 came back: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("flush did not finish after S3 came back")
	}
	for _, win := range wins {
		if _, err := direct.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(s.ObjectKey(win))}); err != nil {
			t.Errorf("%s missing after recovery: %v", s.ObjectKey(win), err)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.recoveries == 0 {
		t.Error("recovery not reported")
	}
	t.Logf("%d retries while down", retries)
}
