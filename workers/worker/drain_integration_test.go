//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestDrainAndRecovery runs the spot life cycle of one worker on a small state and checks what
// must hold at any size: a checkpoint through the admin API (a base), a kill -9 and a fresh
// worker that restores that checkpoint and replays past it, updates to 2 % of the series, a
// drain that writes only a delta and leaves the group's committed offset at the checkpoint's,
// and a second fresh worker that starts exactly where the drain left off.
// BenchmarkDrainAndRecovery measures the same at 1 GiB.
func TestDrainAndRecovery(t *testing.T) {
	drainAndRecover(t, 300_000)
}

// BenchmarkDrainAndRecovery measures, with about 1 GiB of state in one worker (12M series of a
// scalar spec; LIVEAGG_DRAIN_SERIES changes it, 96M makes 8 GB): a checkpoint of the whole
// state (the chain's base) into moto S3 (MB/s, and how long consumption pauses for it),
// recovery after kill -9 (restore from S3 plus replay, until the worker has consumed
// everything again; target 20 s), and a drain through the admin API after updates to 2 % of
// the series (a delta; target: within the 120 s of a spot notice, and 60 s at 8 GB).
//
//	go test -tags integration -run XXX -bench DrainAndRecovery -benchtime 1x ./workers/worker/
func BenchmarkDrainAndRecovery(b *testing.B) {
	for b.Loop() {
		m := drainAndRecover(b, envInt("LIVEAGG_DRAIN_SERIES", 12_000_000))
		for k, v := range m {
			b.ReportMetric(v, k)
		}
	}
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func drainAndRecover(tb testing.TB, series int) map[string]float64 {
	brokers := testenv.KafkaBrokers(tb)
	awsEP := testenv.AWSEndpoint(tb)
	ctx := testenv.Context(tb, 20*time.Minute)
	name := testenv.Name(tb, "drain")
	topic := name + "-raw"
	const extra = 100_000
	m := map[string]float64{}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(500_000),
		kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		tb.Fatal(err)
	}
	s3c := s3.NewFromConfig(testenv.AWSConfig(tb), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		tb.Fatal(err)
	}
	base := int64(1767225600000)
	produce := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			// Every record is a new series, all in one hour-long window that stays open.
			v := fmt.Appendf(nil, `{"k":"s%09d","t":%d,"v":%d}`, i, base+int64(i)/10_000, i%1000)
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "s%09d", i), Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					tb.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
	}
	// touch updates n random existing series (same window, produced after everything else).
	rng := rand.New(rand.NewPCG(uint64(series), 1))
	touch := func(n int) {
		var wg sync.WaitGroup
		for range n {
			i := rng.IntN(series)
			v := fmt.Appendf(nil, `{"k":"s%09d","t":%d,"v":%d}`, i, base+int64(series+extra)/10_000, rng.IntN(1000))
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "s%09d", i), Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					tb.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
	}
	start := time.Now()
	produce(0, series)
	tb.Logf("produced %d records in %v", series, time.Since(start).Round(time.Millisecond))

	dir := tb.TempDir()
	specPath := writeFile(tb, dir, "spec.yaml", `
name: %s
input: {topic: %s, time_field: t, partitioned_by: [k]}
key: [k]
windows: [1h]
aggregations: [{fn: count}, {fn: sum, field: v}, {fn: min, field: v}, {fn: max, field: v}, {fn: last, field: v}]
outputs: [{type: file, path: %q}]
`, name, topic, filepath.Join(dir, "out"))
	tokenPath := writeFile(tb, dir, "token", "drain-token\n")
	port := testenv.FreePort(tb)
	cfgPath := writeFile(tb, dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "s3://%s/checkpoints", interval: 7m, records: 1000000000}
aws: {endpoint: %q}
admin: {listen: "127.0.0.1:%d", token_file: %q}
`, specPath, strings.Join(brokers, ","), name, awsEP, port, tokenPath)
	c := admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", port), "drain-token", nil)
	var cur *testenv.Proc
	waitOffset := func(want int64, what string) worker.PartitionStatus {
		for {
			var st worker.Status
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Status(sctx, &st)
			cancel()
			if err == nil && len(st.Partitions) == 1 && st.Partitions[0].NextOffset >= want {
				return st.Partitions[0]
			}
			select {
			case <-cur.Done:
				tb.Fatalf("%s: the worker exited:\n%s", what, cur.Log())
			case <-ctx.Done():
				tb.Fatalf("%s: timed out (last status %+v, %v)", what, st, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	start = time.Now()
	cur = startWorker(tb, dir, cfgPath, "big")
	p := waitOffset(int64(series), "consume")
	tb.Logf("consumed %d records into %d series, state %.2f GiB, in %v", series, p.Series, float64(p.StateBytes)/(1<<30), time.Since(start).Round(time.Millisecond))
	m["state-GiB"] = float64(p.StateBytes) / (1 << 30)

	// A checkpoint of the whole state: the partition pauses only for the sink flush and the
	// in-memory snapshot; the upload runs while consumption goes on.
	if _, err := c.Checkpoint(ctx); err != nil {
		tb.Fatal(err)
	}
	p = waitOffset(int64(series), "status")
	m["checkpoint-s"] = p.LastCheckpointSeconds
	m["checkpoint-MB/s"] = float64(p.LastCheckpointBytes) / 1e6 / p.LastCheckpointSeconds
	m["checkpoint-pause-s"] = p.LastCheckpointPauseSeconds
	tb.Logf("CHECKPOINT: %.2f GiB to moto S3 in %.1f s (%.0f MB/s); consumption paused %.2f s of it",
		float64(p.LastCheckpointBytes)/(1<<30), p.LastCheckpointSeconds, m["checkpoint-MB/s"], p.LastCheckpointPauseSeconds)
	if p.LastCheckpointOffset != int64(series) {
		tb.Errorf("checkpoint at offset %d, want %d", p.LastCheckpointOffset, series)
	}

	// Records past the checkpoint, then kill -9: the next worker restores and replays them.
	// LIVEAGG_DRAIN_RECOVERY=0 leaves the kill out, for a state too large to hold twice on
	// the machine (a restore holds the fetched checkpoint and the state it builds at once).
	produce(series, series+extra)
	waitOffset(int64(series+extra), "consume past the checkpoint")
	if envInt("LIVEAGG_DRAIN_RECOVERY", 1) != 0 {
		_ = cur.Cmd.Process.Signal(syscall.SIGKILL)
		<-cur.Done
		rstart := time.Now()
		cur = startWorker(tb, dir, cfgPath, "after-kill")
		p = waitOffset(int64(series+extra), "recover after kill -9")
		m["recovery-after-kill-s"] = time.Since(rstart).Seconds()
		tb.Logf("RECOVERY after kill -9: consumed everything again %.1f s after start (restore of %d series from S3 and replay of %d records)",
			m["recovery-after-kill-s"], p.Series, extra)
		if p.RestoredFrom != int64(series) {
			tb.Errorf("worker after kill restored from offset %d, want the checkpoint's %d", p.RestoredFrom, series)
		}
	}

	// Updates to 2 % of the series (LIVEAGG_DRAIN_TOUCH sets the fraction) since the restored
	// checkpoint, on top of the new series replayed: what the drain's delta carries.
	touched := int(float64(series) * envFloat("LIVEAGG_DRAIN_TOUCH", 0.02))
	touch(touched)
	waitOffset(int64(series+extra+touched), "consume the updates")

	// The drain a spot interruption triggers: checkpoint everything, leave the group.
	dstart := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	res, err := c.Drain(dctx)
	cancel()
	drain := time.Since(dstart)
	if err != nil || !res.Done {
		tb.Fatalf("drain: %+v, %v", res, err)
	}
	<-cur.Done
	m["drain-s"] = drain.Seconds()
	drained := int64(series + extra + touched)
	// The drain wrote a delta on the base the first worker wrote, and the group's committed
	// offset is the drained checkpoint's, so no lag reader sees lag that is not there.
	store, err := checkpoint.Open("s3://"+name+"/checkpoints", checkpoint.WithS3Client(s3c))
	if err != nil {
		tb.Fatal(err)
	}
	man, err := store.Inspect(ctx, checkpoint.Key{Spec: name, Topic: topic, Partition: 0})
	if err != nil {
		tb.Fatal(err)
	}
	if c := man.Current; c == nil || c.Kind != checkpoint.Delta || c.Offset != drained || len(man.Chain) < 2 {
		tb.Errorf("after the drain the current checkpoint is %+v, want a delta at %d on a base", c, drained)
	} else {
		m["drain-delta-MB"] = float64(c.Size) / 1e6
		m["drain-delta/base-bytes"] = float64(c.Size) / float64(man.Chain[0].Size)
	}
	committed, err := kadm.NewClient(cl).FetchOffsets(ctx, "liveagg."+name)
	if err != nil {
		tb.Fatal(err)
	}
	if o, ok := committed.Lookup(topic, 0); !ok || o.At != drained {
		tb.Errorf("after the drain the group's committed offset is %+v, want the checkpoint's %d", o, drained)
	}
	tb.Logf("DRAIN: %.1f s with %d series, a delta of %.1f MB (%.2f %% of the base)", drain.Seconds(), p.Series,
		m["drain-delta-MB"], 100*m["drain-delta/base-bytes"])
	if drain > 2*time.Minute {
		tb.Errorf("drain took %v, longer than a spot notice", drain)
	}

	// A fresh worker starts exactly where the drain left off.
	rstart := time.Now()
	cur = startWorker(tb, dir, cfgPath, "after-drain")
	produce(series+extra, series+extra+1)
	p = waitOffset(drained+1, "resume after drain")
	m["recovery-after-drain-s"] = time.Since(rstart).Seconds()
	tb.Logf("RECOVERY after drain: consuming again %.1f s after start", m["recovery-after-drain-s"])
	if p.RestoredFrom != drained {
		tb.Errorf("worker after drain restored from offset %d, want %d", p.RestoredFrom, drained)
	}
	return m
}
