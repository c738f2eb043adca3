package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/metrics"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestCheckpointSkipsUnchangedState: a checkpoint of a partition that applied nothing since
// its last one saves nothing (a drain of idle partitions, the spot lambda's forced checkpoint
// followed by the drain's), and one after new records does.
// It runs here on franz-go's in-process broker and in kafka_integration_test.go on the real
// Kafka.
func TestCheckpointSkipsUnchangedState(t *testing.T) { testCheckpointSkips(t, inProcessKafka(t, 1)) }

func testCheckpointSkips(t *testing.T, k testKafka) {
	kopts, cl := k.opts, k.cl
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			v := fmt.Appendf(nil, `{"k":"k%d","t":%d}`, i%3, 1767225600000+int64(i)*100)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: k.topic, Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := spec.Parse(fmt.Appendf(nil, "name: %s-skip\ninput: {topic: %s, time_field: t}\nkey: [k]\nwindows: [1m]\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n", k.topic, k.topic))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := checkpoint.Open("file://" + filepath.Join(dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := sink.NewFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := worker.New(worker.Config{WorkerID: "w", Spec: s, KafkaOpts: kopts, Checkpoints: store,
		CheckpointInterval: time.Hour, Sinks: []sink.Sink{fs}, Metrics: worker.NewMetrics(reg),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	applied := func(n int64) {
		for w.Totals().Records < n {
			select {
			case err := <-done:
				t.Fatalf("worker stopped: %v", err)
			case <-ctx.Done():
				t.Fatalf("worker never applied %d records", n)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	saved := func() uint64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == metrics.CheckpointDuration.Prom {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		return 0
	}

	produce(0, 100)
	applied(100)
	for i, tc := range []struct {
		records int // produced before the checkpoint
		want    uint64
	}{
		{0, 1},  // the first: saves
		{0, 1},  // nothing since: skipped
		{0, 1},  // still nothing
		{50, 2}, // new records: saves
		{0, 2},  // skipped again
	} {
		if tc.records > 0 {
			total := int(w.Totals().Records)
			produce(total, total+tc.records)
			applied(int64(total + tc.records))
		}
		if err := w.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if got := saved(); got != tc.want {
			t.Errorf("checkpoint %d: %d saved in all, want %d", i+1, got, tc.want)
		}
	}
	cancel()
	<-done
}
