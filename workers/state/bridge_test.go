package state

import (
	"errors"
	"math"
	"testing"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/spec"
)

// TestBridgeConvertsPartialsOfAnEarlierRevision: a partial of a revision with count, sum and
// distinct, read by one that removed distinct, renamed sum and added max, merges as the
// migrated state: kept aggregations keep their values, the added one starts empty; a change
// that does not migrate in place has no bridge.
func TestBridgeConvertsPartialsOfAnEarlierRevision(t *testing.T) {
	const head = "name: s\ninput: {topic: p, format: partials}\nkey: [k]\nwindows: [1m]\noutputs: [{type: stdout}]\n"
	mustSpec := func(doc string) *spec.Spec {
		t.Helper()
		s, err := spec.Parse([]byte(head + doc))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old := mustSpec("aggregations: [{fn: count}, {fn: sum, field: v}, {fn: distinct, field: d}]\n")
	next := mustSpec("aggregations: [{fn: count}, {fn: sum, field: v, name: total}, {fn: max, field: v}]\n")
	lo, _ := agg.LayoutOf(old)
	ln, _ := agg.LayoutOf(next)
	b, err := NewBridge(old, next)
	if err != nil {
		t.Fatal(err)
	}
	if b.Fingerprint() != lo.Fingerprint() || b.Fingerprint() == ln.Fingerprint() {
		t.Fatal("the bridge takes the old layout's partials")
	}
	slot := lo.NewSlot(60_000)
	lo.Init(slot)
	slot.Vals[0] = 7 // seven records
	slot.Vals[lo.Funcs[1].Off] = 42
	enc, err := lo.AppendSlot(nil, slot)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := b.Convert(nil, enc, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	st := New(next, ln, func(w *Window) { got = w.Results(0, nil) })
	if ok, err := st.ApplyPartial([][]byte{[]byte("a")}, 60_000, 60_000, conv); !ok || err != nil {
		t.Fatalf("converted partial: %v %v", ok, err)
	}
	st.Flush()
	if len(got) != 3 || got[0] != 7 || got[1] != 42 || !math.IsInf(got[2], -1) {
		t.Fatalf("merged %v, want count 7, total 42, max empty (-Inf)", got)
	}
	if _, err := b.Convert(nil, enc[:len(enc)-1], 0); err == nil {
		t.Error("a truncated state converted")
	}
	if _, err := NewBridge(old, mustSpec("aggregations: [{fn: count}]\nallowed_lateness: 1m\n")); err != nil {
		t.Errorf("removing aggregations migrates in place: %v", err)
	}
	rekeyed, err := spec.Parse([]byte("name: s\ninput: {topic: p, format: partials}\nkey: [k, j]\nwindows: [1m]\noutputs: [{type: stdout}]\naggregations: [{fn: count}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewBridge(old, rekeyed); !errors.Is(err, ErrNotMigratable) {
		t.Errorf("a key change: %v, want ErrNotMigratable", err)
	}
}
