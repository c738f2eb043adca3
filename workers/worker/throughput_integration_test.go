//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/gen"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
	"github.com/liveagg/liveagg/workers/worker"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWorkerThroughput compares, in one run, the records per CPU-second of the whole worker
// (real Kafka on loopback, consumer group, decode, state, checkpoints every 2s to files, the
// Kafka outbox) with the engine alone (decode + state) on the same records. The broker's own
// CPU is not counted: it is another process. Target: the worker at 60 % or more of the engine.
//
//	go test -tags integration -run XXX -bench WorkerThroughput -benchtime 1x ./workers/worker/
func BenchmarkWorkerThroughput(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	ctx := testenv.Context(b, 20*time.Minute)
	n := envInt("LIVEAGG_BENCH_RECORDS", 2_000_000)
	name := testenv.Name(b, "tput")
	topic := name + "-raw"
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(500_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		b.Fatal(err)
	}
	g := gen.New(gen.Config{Seed: 5, Orgs: 200, SitesPerOrg: 10, StepMs: 0.5, LateFraction: 0.01, LateByMs: 120_000})
	recs := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range recs {
		e := g.Next()
		recs[i] = gen.AppendJSON(nil, e)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "%d|%d|%d", e.Org, e.Site, e.Zone), Value: recs[i]},
			func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			})
	}
	wg.Wait()
	s, err := spec.Parse([]byte(fmt.Sprintf(`
name: %s
input: {topic: %s, time_field: ts}
key: [org, site, zone]
windows: [1m, 15m]
allowed_lateness: 30s
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: max, field: rssi}
  - {fn: distinct, field: device}
  - {fn: quantiles, field: rssi}
outputs: [{type: stdout}]
`, name, topic)))
	if err != nil {
		b.Fatal(err)
	}

	for b.Loop() {
		// Engine alone.
		dec, _ := record.NewDecoder(s)
		layout, _ := agg.NewLayout(s, dec)
		st := state.New(s, layout, func(*state.Window) {})
		r := dec.NewRecord()
		c0 := cpuTime()
		for _, raw := range recs {
			if dec.Decode(raw, 0, r) == nil {
				st.Apply(r)
			}
		}
		engineCPU := cpuTime() - c0

		// The worker.
		store, err := checkpoint.Open("file://" + filepath.Join(b.TempDir(), "ckpt"))
		if err != nil {
			b.Fatal(err)
		}
		kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
		outbox := sink.NewKafka(kopts, nil, name+".dlq", name+".progress")
		if err := outbox.EnsureTopics(ctx, s.Input.Topic, 4); err != nil {
			b.Fatal(err)
		}
		fs, err := sink.NewFile(filepath.Join(b.TempDir(), "out"))
		if err != nil {
			b.Fatal(err)
		}
		w, err := worker.New(worker.Config{WorkerID: "bench", Spec: s, KafkaOpts: kopts, Checkpoints: store,
			CheckpointInterval: 2 * time.Second, Sinks: []sink.Sink{fs, outbox},
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		c1, t1 := cpuTime(), time.Now()
		go func() { done <- w.Run(wctx) }()
		for w.Totals().Records < int64(n) {
			select {
			case err := <-done:
				b.Fatalf("worker stopped after %d records: %v", w.Totals().Records, err)
			case <-ctx.Done():
				b.Fatal("worker did not consume everything")
			case <-time.After(20 * time.Millisecond):
			}
		}
		workerCPU, wall := cpuTime()-c1, time.Since(t1)
		cancel()
		<-done
		eng := float64(n) / engineCPU.Seconds()
		wrk := float64(n) / workerCPU.Seconds()
		b.ReportMetric(eng, "engine-rec/cpu-s")
		b.ReportMetric(wrk, "worker-rec/cpu-s")
		b.ReportMetric(wrk/eng, "worker/engine")
		b.ReportMetric(float64(n)/wall.Seconds(), "worker-rec/wall-s")
		fmt.Fprintf(os.Stderr, "records %d: engine %.0f rec/CPU-s, worker %.0f rec/CPU-s (%.0f%%), worker wall %.0f rec/s\n",
			n, eng, wrk, 100*wrk/eng, float64(n)/wall.Seconds())
	}
}
