//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestDrainAndRecoveryWithLargeState builds about 1 GiB of state in one worker (12M series of
// a scalar spec, LIVEAGG_DRAIN_SERIES to change it), drains it through the admin API as a spot
// interruption would, and measures: the drain (checkpoint of the whole state to S3 on moto,
// leave the group) must finish within the two-minute notice; then a fresh worker restores the
// checkpoint and resumes consumption, and the time to its first new record is reported.
func TestDrainAndRecoveryWithLargeState(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	awsEP := testenv.AWSEndpoint(t)
	ctx := testenv.Context(t, 20*time.Minute)
	series := envInt("LIVEAGG_DRAIN_SERIES", 12_000_000)
	name := testenv.Name(t, "drain")
	topic := name + "-raw"

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(500_000),
		kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	base := int64(1767225600000)
	produce := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			// Every record is a new series, all in one hour-long window that stays open.
			v := fmt.Appendf(nil, `{"k":"s%09d","t":%d,"v":%d}`, i, base+int64(i)/10_000, i%1000)
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
	}
	start := time.Now()
	produce(0, series)
	t.Logf("produced %d records in %v", series, time.Since(start).Round(time.Millisecond))

	dir := t.TempDir()
	specPath := writeFile(t, dir, "spec.yaml", `
name: %s
input: {topic: %s, time_field: t}
key: [k]
windows: [1h]
aggregations: [{fn: count}, {fn: sum, field: v}, {fn: min, field: v}, {fn: max, field: v}, {fn: last, field: v}]
outputs: [{type: file, path: %q}]
`, name, topic, filepath.Join(dir, "out"))
	tokenPath := writeFile(t, dir, "token", "drain-token\n")
	port := testenv.FreePort(t)
	cfgPath := writeFile(t, dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "s3://%s/checkpoints", interval: 7m, records: 1000000000}
aws: {endpoint: %q}
admin: {listen: "127.0.0.1:%d", token_file: %q}
`, specPath, strings.Join(brokers, ","), name, awsEP, port, tokenPath)
	c := admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", port), "drain-token", nil)
	status := func() (worker.Status, error) {
		var st worker.Status
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := c.Status(sctx, &st)
		return st, err
	}
	var exited chan struct{}
	waitOffset := func(want int64, what string) worker.Status {
		for {
			select {
			case <-exited:
				t.Fatalf("%s: the worker exited (see its log in %s)", what, dir)
			default:
			}
			st, err := status()
			if err == nil && len(st.Partitions) == 1 && st.Partitions[0].NextOffset >= want {
				return st
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: timed out (last status %+v, %v)", what, st, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	start = time.Now()
	big := startWorker(t, dir, cfgPath, "big")
	exited = big.done
	st := waitOffset(int64(series), "consume")
	p := st.Partitions[0]
	t.Logf("consumed %d records into %d series, state %.2f GiB, in %v", series, p.Series, float64(p.StateBytes)/(1<<30), time.Since(start).Round(time.Millisecond))

	// A checkpoint of the whole state: the partition pauses only for the sink flush and the
	// in-memory snapshot; the upload runs while consumption goes on.
	if _, err := c.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = status()
	if err != nil {
		t.Fatal(err)
	}
	p = st.Partitions[0]
	t.Logf("CHECKPOINT: %.2f GiB to moto S3 in %.1f s (%.0f MB/s); consumption paused %.2f s of it",
		float64(p.LastCheckpointBytes)/(1<<30), p.LastCheckpointSeconds,
		float64(p.LastCheckpointBytes)/1e6/p.LastCheckpointSeconds, p.LastCheckpointPauseSeconds)

	// The drain a spot interruption triggers: checkpoint everything, leave the group.
	dstart := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	res, err := c.Drain(dctx)
	cancel()
	drain := time.Since(dstart)
	if err != nil || !res.Done {
		t.Fatalf("drain: %+v, %v", res, err)
	}
	<-big.done
	m, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(name), Prefix: aws.String("checkpoints/")})
	if err != nil {
		t.Fatal(err)
	}
	var ckptBytes int64
	for _, o := range m.Contents {
		if strings.HasSuffix(aws.ToString(o.Key), ".state") {
			ckptBytes = max(ckptBytes, aws.ToInt64(o.Size))
		}
	}
	t.Logf("DRAIN: %.1f s for a %.2f GiB checkpoint (%.0f MB/s to moto S3), within the 120 s notice",
		drain.Seconds(), float64(ckptBytes)/(1<<30), float64(ckptBytes)/1e6/drain.Seconds())
	if drain > 2*time.Minute {
		t.Errorf("drain took %v, longer than a spot notice", drain)
	}

	// Recovery: a fresh worker restores the checkpoint and resumes with new records.
	rstart := time.Now()
	exited = startWorker(t, dir, cfgPath, "fresh").done
	produce(series, series+100_000)
	waitOffset(int64(series)+1, "resume")
	resumed := time.Since(rstart)
	st = waitOffset(int64(series)+100_000, "catch up")
	t.Logf("RECOVERY: fresh worker consuming again %.1f s after start (restore of %d series from S3 included); 100k new records done at %.1f s",
		resumed.Seconds(), st.Partitions[0].Series, time.Since(rstart).Seconds())
	if st.Partitions[0].RestoredFrom != int64(series) {
		t.Errorf("fresh worker restored from offset %d, want %d", st.Partitions[0].RestoredFrom, series)
	}
}
