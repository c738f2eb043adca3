package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestWorkerOnInProcessKafka runs the whole runtime against franz-go's in-process broker with
// file checkpoints and a file sink: the fast check of the path that the integration tests run
// against the real services. Two runs over the same input, the second restarted from the first's
// checkpoints partway, must write the same rows.
func TestWorkerOnInProcessKafka(t *testing.T) {
	k := inProcessKafka(t, 2)
	kopts, cl := k.opts, k.cl
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 4000
	for i := range n {
		v := fmt.Appendf(nil, `{"k":"k%d","t":%d,"v":%d}`, i%7, 1767225600000+int64(i)*100, i)
		if i%500 == 0 {
			v = []byte(`{"broken`)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "raw", Partition: int32(i % 2), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := spec.Parse([]byte(`
name: unit
input: {topic: raw, time_field: t}
key: [k]
windows: [1m]
aggregations: [{fn: count}, {fn: sum, field: v}]
outputs: [{type: stdout}]
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(until int64) {
		t.Helper()
		store, err := checkpoint.Open("file://" + filepath.Join(dir, "ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		fs, err := sink.NewFile(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		outbox := sink.NewKafka(kopts, nil, "unit.dlq", "unit.progress")
		if err := outbox.EnsureTopics(ctx, "raw", 2); err != nil {
			t.Fatal(err)
		}
		w, err := worker.New(worker.Config{WorkerID: "u", Spec: s, KafkaOpts: kopts, Checkpoints: store,
			CheckpointInterval: time.Second, Sinks: []sink.Sink{fs, outbox}, MaxPollRecords: 100,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		// A drain (a signal, a spot notice) before Run has a client says so instead of panicking.
		if err := w.Drain(ctx); err == nil || !strings.Contains(err.Error(), "not running") {
			t.Fatalf("drain before run: %v", err)
		}
		wctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		reached := func() bool {
			if until < n {
				return w.Totals().Records >= until
			}
			st := w.Status()
			for _, p := range st.Partitions {
				if p.NextOffset < n/2 {
					return false
				}
			}
			return len(st.Partitions) == 2
		}
		for !reached() {
			select {
			case err := <-done:
				t.Fatalf("worker stopped: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		if until >= n {
			if err := w.FlushAll(ctx); err != nil {
				t.Fatal(err)
			}
		} else if err := w.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run(n / 3) // checkpoints partway and stops
	run(n)     // restores, replays the rest, closes every window

	// Every (key, window) once, with the right count: 600 records per minute over 7 keys.
	counts := map[string]float64{}
	for p := range 2 {
		f, err := os.Open(filepath.Join(dir, "out", fmt.Sprintf("unit-raw-p%d.jsonl", p)))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var row struct {
				K     string  `json:"k"`
				Start string  `json:"window_start"`
				Count float64 `json:"count"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatal(err)
			}
			counts[row.K+"@"+row.Start] += row.Count
		}
		f.Close()
	}
	total := 0.0
	for _, c := range counts {
		total += c
	}
	if want := float64(n - n/500); total != want {
		t.Fatalf("rows count %v records, want %v (every good record once)", total, want)
	}
}
