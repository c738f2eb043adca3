package sink

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/emit"
)

func window(seq uint64, rows ...string) *emit.Window {
	w := &emit.Window{Spec: "s", Topic: "t", Seq: seq, Size: 60_000, Start: 0, KeyFields: []string{"k"}, Columns: []string{"count"}}
	for _, r := range rows {
		w.Rows = append(w.Rows, emit.Row{Key: []string{r}, Values: []float64{1}})
	}
	return w
}

// TestFileTruncatesToCheckpoint replays the way a new owner does: it opens with the progress of
// the last checkpoint, and rows written after that checkpoint are cut before being written again.
func TestFileTruncatesToCheckpoint(t *testing.T) {
	ctx := context.Background()
	f, err := NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := PartitionKey{Spec: "s", Topic: "t", Partition: 0}
	w, err := f.Open(ctx, p, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, window(0, "a", "b")); err != nil {
		t.Fatal(err)
	}
	progress, err := w.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Written after the checkpoint, then the owner dies.
	if err := w.Write(ctx, window(1, "c")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	// The new owner restores the first checkpoint and replays window 1.
	w2, err := f.Open(ctx, p, progress)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Write(ctx, window(1, "c")); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_ = w2.Close()
	b, err := os.ReadFile(f.Path(p))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 3 || strings.Count(string(b), `"k":"c"`) != 1 {
		t.Fatalf("file has %d rows, want a, b, c once each:\n%s", n, b)
	}
	if _, err := f.Open(ctx, p, "not-a-number"); err == nil {
		t.Fatal("bad progress accepted")
	}
}
