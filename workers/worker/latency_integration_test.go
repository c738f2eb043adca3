//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/gen"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/worker"
)

// latencySink records, for every window a spec emits, how long after the window's end (wall
// clock: event time is the clock here) the rollup reached the sinks.
type latencySink struct {
	mu  sync.Mutex
	lat map[int64]time.Duration // window start -> latency of its first row
}

func (l *latencySink) Name() string { return "latency" }
func (l *latencySink) Close() error { return nil }
func (l *latencySink) Open(context.Context, sink.PartitionKey, string) (sink.Writer, error) {
	return l, nil
}
func (l *latencySink) Write(_ context.Context, w *emit.Window) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.lat[w.Start]; !ok {
		l.lat[w.Start] = time.Since(time.UnixMilli(w.End()))
	}
	return nil
}
func (l *latencySink) Flush(context.Context) (string, error) { return "", nil }

// BenchmarkMultilevelLatency measures what the second level adds to end-to-end latency. Events
// are produced in real time (event time is the clock) for 20 s into a device-keyed and an
// org-keyed topic; 1-second rollups per (org, zone) come out of one level on the org-keyed
// topic and out of two (partials through the intermediate topic) on the device-keyed one, with
// 1 s allowed lateness and 1 s checkpoints. Reported: the median and 95th-percentile time from
// a window's end to its rollup, each way, and the difference.
//
//	go test -tags integration -run XXX -bench MultilevelLatency -benchtime 1x ./workers/worker/
func BenchmarkMultilevelLatency(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	ctx := testenv.Context(b, 5*time.Minute)
	name := testenv.Name(b, "lat")
	raw, byOrg, partials := name+"-raw", name+"-org", name+"-partials"
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for _, t := range []string{raw, byOrg, partials} {
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 4, 1, nil, t); err != nil {
			b.Fatal(err)
		}
	}
	aggs := "aggregations: [{fn: count}, {fn: distinct, field: device}, {fn: quantiles, field: rssi}]\n"
	parse := func(doc string) *spec.Spec {
		s, err := spec.Parse([]byte(doc))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	one := parse(fmt.Sprintf("name: %s-one\ninput: {topic: %s, time_field: ts}\nkey: [org, zone]\nwindows: [1s]\nallowed_lateness: 1s\n%soutputs: [{type: stdout}]\n", name, byOrg, aggs))
	l1 := parse(fmt.Sprintf("name: %s-l1\ninput: {topic: %s, time_field: ts}\nkey: [org, zone]\nwindows: [1s]\nallowed_lateness: 1s\n%soutputs: [{type: kafka, topic: %s, partial: true, key: [org]}]\n", name, raw, aggs, partials))
	// Partials of a second arrive from four level-1 partitions: 2 s covers their spread.
	l2 := parse(fmt.Sprintf("name: %s-l2\ninput: {topic: %s, format: partials}\nkey: [org, zone]\nwindows: [1s]\nallowed_lateness: 2s\n%soutputs: [{type: stdout}]\n", name, partials, aggs))

	for b.Loop() {
		dir := b.TempDir()
		start := func(s *spec.Spec, extra ...sink.Sink) context.CancelFunc {
			store, err := checkpoint.Open("file://" + filepath.Join(dir, s.Name))
			if err != nil {
				b.Fatal(err)
			}
			kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
			outs, err := worker.KafkaOutputs(s)
			if err != nil {
				b.Fatal(err)
			}
			outbox := sink.NewKafka(kopts, outs, s.Name+".dlq", s.Name+".progress")
			if err := outbox.EnsureTopics(ctx, s.Input.Topic, 4); err != nil {
				b.Fatal(err)
			}
			w, err := worker.New(worker.Config{WorkerID: s.Name, Spec: s, KafkaOpts: kopts, Checkpoints: store,
				CheckpointInterval: time.Second, Sinks: append(extra, outbox), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			wctx, cancel := context.WithCancel(ctx)
			go func() { _ = w.Run(wctx) }()
			return cancel
		}
		oneLat, twoLat := &latencySink{lat: map[int64]time.Duration{}}, &latencySink{lat: map[int64]time.Duration{}}
		defer start(one, oneLat)()
		defer start(l1)()
		defer start(l2, twoLat)()
		time.Sleep(5 * time.Second) // groups formed, partitions restored

		// 2,000 events a second for 20 s, event time = now.
		g := gen.New(gen.Config{Seed: 3, Orgs: 20})
		t0 := time.Now()
		for tick := time.NewTicker(10 * time.Millisecond); time.Since(t0) < 20*time.Second; <-tick.C {
			var recs []*kgo.Record
			for range 20 {
				e := g.Next()
				e.TS = time.Now().UnixMilli()
				v := gen.AppendJSON(nil, e)
				recs = append(recs, &kgo.Record{Topic: raw, Key: gen.Key(nil, e), Value: v},
					&kgo.Record{Topic: byOrg, Key: fmt.Appendf(nil, "%d", e.Org), Value: v})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(8 * time.Second)

		// Windows that ended while traffic flowed, after the first seconds.
		stats := func(l *latencySink) (p50, p95 time.Duration, n int) {
			l.mu.Lock()
			defer l.mu.Unlock()
			var ds []time.Duration
			for start, d := range l.lat {
				if s := time.UnixMilli(start); s.After(t0.Add(3*time.Second)) && s.Before(t0.Add(17*time.Second)) {
					ds = append(ds, d)
				}
			}
			if len(ds) == 0 {
				b.Fatal("no windows emitted")
			}
			slices.Sort(ds)
			return ds[len(ds)/2], ds[len(ds)*95/100], len(ds)
		}
		o50, o95, on := stats(oneLat)
		t50, t95, tn := stats(twoLat)
		b.ReportMetric(o50.Seconds(), "one-level-p50-s")
		b.ReportMetric(t50.Seconds(), "two-level-p50-s")
		b.ReportMetric((t50 - o50).Seconds(), "added-p50-s")
		b.Logf("window end to rollup: one level p50 %v p95 %v (%d windows); two levels p50 %v p95 %v (%d windows); added p50 %v",
			o50.Round(time.Millisecond), o95.Round(time.Millisecond), on, t50.Round(time.Millisecond), t95.Round(time.Millisecond), tn, (t50 - o50).Round(time.Millisecond))
	}
}
