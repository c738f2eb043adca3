package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestBackfillAndStaleRevision: on the in-process Kafka, a spec is changed incompatibly with
// on_incompatible_change: backfill. The new revision recomputes every window from the log start
// but those of an old size the old revision had closed, so every row of the outputs equals one
// pass of the new revision over every record and is written once,
// its checkpoints record its version, and a worker still on the old revision then refuses the
// newer checkpoints with ErrStaleSpec (exit 4: a restart loads the newer revision).
func TestBackfillAndStaleRevision(t *testing.T) {
	k := inProcessKafka(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 3000
	for i := range n {
		v := fmt.Appendf(nil, `{"k":"k%d","t":%d}`, i%5, 1767225600000+int64(i)*100)
		if err := k.cl.ProduceSync(ctx, &kgo.Record{Topic: "raw", Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	parse := func(version int, windows, extra string) *spec.Spec {
		s, err := spec.Parse(fmt.Appendf(nil, `
name: chg
version: %d
input: {topic: raw, time_field: t}
key: [k]
windows: [%s]
aggregations: [{fn: count}]
outputs: [{type: stdout}]
%s`, version, windows, extra))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	v1 := parse(1, "1m", "")
	v2 := parse(2, "1m, 5m", "on_incompatible_change: backfill")
	if p := spec.Diff(v1, v2); p.Action != spec.ActionBackfill {
		t.Fatalf("Diff = %s, want backfill", p.Summary())
	}
	store, err := checkpoint.Open("file://" + filepath.Join(dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	key := checkpoint.Key{Spec: "chg", Topic: "raw", Partition: 0}
	// run runs a worker on s until its partition has read up to offset until (or it fails),
	// checkpoints and stops; it returns Run's error.
	run := func(s *spec.Spec, until int64, flush bool) error {
		t.Helper()
		fs, err := sink.NewFile(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		outbox := sink.NewKafka(k.opts, nil, "chg.dlq", "chg.progress")
		if err := outbox.EnsureTopics(ctx, "raw", 1); err != nil {
			t.Fatal(err)
		}
		w, err := worker.New(worker.Config{WorkerID: "u", Spec: s, KafkaOpts: k.opts, Checkpoints: store,
			CheckpointInterval: time.Second, Sinks: []sink.Sink{fs, outbox}, MaxPollRecords: 100,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		for {
			st := w.Status()
			if len(st.Partitions) == 1 && st.Partitions[0].NextOffset >= until {
				break
			}
			select {
			case err := <-done:
				return err
			case <-time.After(10 * time.Millisecond):
			}
		}
		if flush {
			err = w.FlushAll(ctx)
		} else {
			err = w.Checkpoint(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		stop()
		return <-done
	}
	if err := run(v1, n/2, false); err != nil {
		t.Fatal(err)
	}
	if err := run(v2, n, true); err != nil {
		t.Fatal(err)
	}
	m, err := store.Inspect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if m.Current.SpecVersion != 2 || m.Current.Spec == "" {
		t.Fatalf("the new revision's checkpoint records version %d (document %d bytes), want 2", m.Current.SpecVersion, len(m.Current.Spec))
	}

	// One pass of v2 over every record: 3000 records 100 ms apart, 5 keys in turn. The 1m
	// windows the old revision had closed are its rows; the backfill writes the rest, so each
	// is written once.
	want := map[string]float64{}
	for i := range n {
		ts := 1767225600000 + int64(i)*100
		for _, size := range []int64{60_000, 300_000} {
			want[fmt.Sprintf("k%d@%d/%d", i%5, ts-ts%size, size)]++
		}
	}
	got := map[string]float64{}
	f, err := os.Open(filepath.Join(dir, "out", "chg-raw-p0.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct {
			K     string  `json:"k"`
			Start string  `json:"window_start"`
			Size  string  `json:"window_size"`
			Count float64 `json:"count"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		start, _ := time.Parse(time.RFC3339, row.Start)
		size, _ := time.ParseDuration(row.Size)
		id := fmt.Sprintf("%s@%d/%d", row.K, start.UnixMilli(), size.Milliseconds())
		if _, dup := got[id]; dup {
			t.Errorf("row %s written twice", id)
		}
		got[id] = row.Count
	}
	if len(got) != len(want) {
		t.Errorf("%d rows, want %d", len(got), len(want))
	}
	for id, c := range want {
		if got[id] != c {
			t.Errorf("row %s: count %v, want %v", id, got[id], c)
		}
	}

	// A worker still on revision 1 must not touch revision 2's checkpoint.
	err = run(v1, n, false)
	if !errors.Is(err, worker.ErrStaleSpec) {
		t.Fatalf("a worker on an older revision: %v, want ErrStaleSpec", err)
	}
	if m2, _ := store.Inspect(ctx, key); m2.Current.SpecVersion != 2 || m2.Current.Offset != m.Current.Offset {
		t.Fatalf("the stale worker changed the checkpoint: version %d offset %d", m2.Current.SpecVersion, m2.Current.Offset)
	}
}

// TestLegacyCheckpointOfAnotherShape: a checkpoint written before specs had versions, under a
// spec of another shape, cannot be carried over (which revision wrote it is unknown): the
// worker refuses it with ErrChangeRefused, which halts it (exit 5), and says what to do.
func TestLegacyCheckpointOfAnotherShape(t *testing.T) {
	k := inProcessKafka(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	doc := func(windows string) *spec.Spec {
		s, err := spec.Parse(fmt.Appendf(nil, `
name: legacy
input: {topic: raw, time_field: t}
key: [k]
windows: [%s]
aggregations: [{fn: count}]
outputs: [{type: stdout}]
`, windows))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old, cur := doc("1m"), doc("5m")
	layout, err := agg.LayoutOf(old)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := state.New(old, layout, nil).AppendSnapshot(nil, state.Fingerprint(old, layout))
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoint.Open("file://" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := store.Claim(ctx, checkpoint.Key{Spec: "legacy", Topic: "raw", Partition: 0}, "old-build")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Save(ctx, checkpoint.Checkpoint{Offset: 0, State: snap}); err != nil { // no SetSpec: an old build
		t.Fatal(err)
	}
	outbox := sink.NewKafka(k.opts, nil, "legacy.dlq", "legacy.progress")
	if err := outbox.EnsureTopics(ctx, "raw", 1); err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{WorkerID: "u", Spec: cur, KafkaOpts: k.opts, Checkpoints: store, Sinks: []sink.Sink{outbox},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(ctx)
	if !errors.Is(err, worker.ErrChangeRefused) || !errors.Is(err, state.ErrMismatch) || !strings.Contains(err.Error(), "liveagg checkpoint retire") {
		t.Fatalf("Run = %v, want ErrChangeRefused saying what to do", err)
	}
}
