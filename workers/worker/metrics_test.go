package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
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

// TestReleasedPartitionsLeaveNoGauges: after a rebalance moves a partition away, the worker
// that had it stops reporting it. A gauge left behind keeps its last value for ever: a lag
// that never drains, a checkpoint timestamp whose age alarms after the partition has moved.
// It runs here on franz-go's in-process broker and in kafka_integration_test.go on the real
// Kafka.
func TestReleasedPartitionsLeaveNoGauges(t *testing.T) { testReleasedGauges(t, inProcessKafka(t, 2)) }

func testReleasedGauges(t *testing.T, k testKafka) {
	kopts, cl := k.opts, k.cl
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 200 {
		v := fmt.Appendf(nil, `{"k":"k%d","t":%d}`, i%3, 1767225600000+int64(i)*100)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: k.topic, Partition: int32(i % 2), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := spec.Parse(fmt.Appendf(nil, "name: %s-gauges\ninput: {topic: %s, time_field: t}\nkey: [k]\nwindows: [1m]\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n", k.topic, k.topic))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := func(id string, reg *prometheus.Registry) (*worker.Worker, chan error) {
		store, err := checkpoint.Open("file://" + filepath.Join(dir, "ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		fs, err := sink.NewFile(filepath.Join(dir, "out-"+id))
		if err != nil {
			t.Fatal(err)
		}
		w, err := worker.New(worker.Config{WorkerID: id, Spec: s, KafkaOpts: kopts, Checkpoints: store,
			CheckpointInterval: time.Second, Sinks: []sink.Sink{fs}, Metrics: worker.NewMetrics(reg),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		return w, done
	}
	owned := func(w *worker.Worker) []string {
		var ps []string
		for _, p := range w.Status().Partitions {
			if p.NextOffset > 0 {
				ps = append(ps, fmt.Sprint(p.Partition))
			}
		}
		slices.Sort(ps)
		return ps
	}
	waitFor := func(what string, ok func() bool, done chan error) {
		for !ok() {
			select {
			case err := <-done:
				t.Fatalf("worker stopped while waiting for %s: %v", what, err)
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	regA := prometheus.NewRegistry()
	a, doneA := start("a", regA)
	waitFor("a to apply both partitions", func() bool { return len(owned(a)) == 2 }, doneA)
	if err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{metrics.StateSeries.Prom, metrics.CheckpointTime.Prom} {
		if got := partitionsOf(t, regA, name); !slices.Equal(got, []string{"0", "1"}) {
			t.Fatalf("before the rebalance %s covers partitions %v, want [0 1]", name, got)
		}
	}

	b, doneB := start("b", prometheus.NewRegistry())
	waitFor("the rebalance", func() bool { return len(owned(a)) == 1 && len(owned(b)) == 1 }, doneB)
	keep := owned(a)
	for _, name := range []string{metrics.ConsumerLag.Prom, metrics.StateSeries.Prom, metrics.StateBytes.Prom,
		metrics.CheckpointBytes.Prom, metrics.CheckpointTime.Prom} {
		for _, p := range partitionsOf(t, regA, name) {
			if !slices.Contains(keep, p) {
				t.Errorf("%s still reports partition %s, which moved to the other worker", name, p)
			}
		}
	}
}

// partitionsOf is the partition labels a registry reports for the metric name.
func partitionsOf(t *testing.T, reg *prometheus.Registry, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					ps = append(ps, l.GetValue())
				}
			}
		}
	}
	slices.Sort(ps)
	return ps
}

// recorder is a Registerer that notes the names of what is registered with it.
type recorder struct{ names map[string]bool }

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 8)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		s := d.String()
		if i := strings.Index(s, `fqName: "`); i >= 0 {
			name := s[i+len(`fqName: "`):]
			r.names[name[:strings.IndexByte(name, '"')]] = true
		}
	}
	return nil
}
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}
func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// The shared list and the worker's exports agree: every metric the list gives a Prometheus
// name is exported by the worker, and the worker exports nothing the list does not name.
func TestWorkerExportsTheListedMetrics(t *testing.T) {
	r := &recorder{names: map[string]bool{}}
	worker.NewMetrics(r)
	listed := map[string]bool{}
	for _, m := range metrics.All {
		if m.Prom != "" {
			listed[m.Prom] = true
			if !r.names[m.Prom] {
				t.Errorf("%s is listed but the worker does not export it", m.Prom)
			}
		}
	}
	for name := range r.names {
		if !listed[name] {
			t.Errorf("the worker exports %s, which the shared list does not name", name)
		}
	}
}

// A quiet partition's checkpoint holds all it has: its checkpoint timestamp keeps up with the
// clock, so an alarm on its age does not fire for a partition that is only quiet.
func TestQuietPartitionsCheckpointStaysCurrent(t *testing.T) {
	k := inProcessKafka(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 20 {
		v := fmt.Appendf(nil, `{"k":"k%d","t":%d}`, i%3, 1767225600000+int64(i)*100)
		if err := k.cl.ProduceSync(ctx, &kgo.Record{Topic: k.topic, Partition: 0, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := spec.Parse(fmt.Appendf(nil, "name: %s-quiet\ninput: {topic: %s, time_field: t}\nkey: [k]\nwindows: [1m]\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n", k.topic, k.topic))
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoint.Open("file://" + filepath.Join(t.TempDir(), "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := worker.New(worker.Config{WorkerID: "q", Spec: s, KafkaOpts: k.opts, Checkpoints: store,
		CheckpointInterval: time.Second, Metrics: worker.NewMetrics(reg), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.Run(ctx) }()
	stamp := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == metrics.CheckpointTime.Prom && len(mf.GetMetric()) > 0 {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return 0
	}
	for stamp() == 0 {
		if ctx.Err() != nil {
			t.Fatal("no checkpoint")
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := stamp()
	time.Sleep(2500 * time.Millisecond) // quiet: nothing new to read
	if later := stamp(); later-first < 1.5 {
		t.Errorf("a quiet partition's checkpoint timestamp went from %.1f to %.1f: its age grows as if work were unsaved", first, later)
	}
	if st := w.Status().Partitions; len(st) != 1 || st[0].NextOffset != st[0].LastCheckpointOffset {
		t.Errorf("status %+v: the checkpoint should hold everything", st)
	}
}
