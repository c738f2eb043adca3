package partial_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/gen"
	"github.com/liveagg/liveagg/workers/partial"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
)

const aggs = `
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: max, field: rssi}
  - {fn: avg, field: rssi}
  - {fn: last, field: rssi}
  - {fn: distinct, field: device}
  - {fn: quantiles, field: rssi, relative_accuracy: 0.01, quantiles: [0.5, 0.9]}
outputs: [{type: stdout}]
`

func mustSpec(t testing.TB, y string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte(y + aggs))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rows renders a window's rows as "key@size/start" -> values.
func collect(into map[string][]float64) state.EmitFunc {
	return func(w *state.Window) {
		for i := range w.Len() {
			k := fmt.Sprintf("%s@%d/%d", strings.ReplaceAll(string(w.Key(i)), string(record.KeySep), "|"), w.Size, w.Start)
			into[k] = w.Results(i, nil)
		}
	}
}

// TestTwoLevelsEqualOnePass is the heart of multilevel aggregation: level-1 stores over four
// device-keyed partitions emit 1-minute partials of (org, site, floor, zone); a level-2 store
// merges them into (org, site) rollups of 1m, 15m and 1h; every value must equal what one
// store computes over all the records at once, keyed (org, site), with sketches merged exactly.
func TestTwoLevelsEqualOnePass(t *testing.T) {
	l1 := mustSpec(t, "name: l1\ninput: {topic: raw, time_field: ts}\nkey: [org, site, floor, zone]\nwindows: [1m]\nallowed_lateness: 1h\n")
	l2 := mustSpec(t, "name: l2\ninput: {topic: p, format: partials}\nkey: [org, site]\nwindows: [1m, 15m, 1h]\nallowed_lateness: 1h\n")
	one := mustSpec(t, "name: one\ninput: {topic: raw, time_field: ts}\nkey: [org, site]\nwindows: [1m, 15m, 1h]\nallowed_lateness: 1h\n")

	l1Layout, err := agg.LayoutOf(l1)
	if err != nil {
		t.Fatal(err)
	}
	l2Layout, err := agg.LayoutOf(l2)
	if err != nil {
		t.Fatal(err)
	}
	oneLayout, err := agg.LayoutOf(one)
	if err != nil {
		t.Fatal(err)
	}
	if l1Layout.Fingerprint() != l2Layout.Fingerprint() {
		t.Fatal("same aggregations, different layout fingerprints")
	}

	want := map[string][]float64{}
	single := state.New(one, oneLayout, collect(want))
	got := map[string][]float64{}
	level2 := state.New(l2, l2Layout, collect(got))
	proj := partial.NewProjection(l2.Key)
	render := partial.Renderer(l1Layout.Fingerprint(), []string{"org", "site"})
	var p partial.Partial
	var parts [][]byte
	partials, partialBytes := 0, 0
	level1 := make([]*state.Store, 4)
	for i := range level1 {
		level1[i] = state.New(l1, l1Layout, func(sw *state.Window) {
			w := emit.Copy(sw, "l1", "raw", int32(i), l1.Key, 0, 0)
			if err := w.AttachStates(sw); err != nil {
				t.Fatal(err)
			}
			for r := range w.Rows {
				key, val := render(w, r, nil, nil)
				if string(key) != w.Rows[r].Key[0]+"|"+w.Rows[r].Key[1] {
					t.Fatalf("partial key %q, want org|site of %v", key, w.Rows[r].Key)
				}
				partials++
				partialBytes += len(val)
				if err := partial.Parse(val, &p); err != nil {
					t.Fatal(err)
				}
				if err := partial.CheckLayout(&p, l2Layout); err != nil {
					t.Fatal(err)
				}
				if parts, err = proj.Key(&p, parts[:0]); err != nil {
					t.Fatal(err)
				}
				if ok, err := level2.ApplyPartial(parts, p.Start, p.Size, p.State); err != nil || !ok {
					t.Fatalf("apply partial: %v %v", ok, err)
				}
			}
		})
	}
	dec1, _ := record.NewDecoder(l1)
	decOne, _ := record.NewDecoder(one)
	r1, rOne := dec1.NewRecord(), decOne.NewRecord()
	g := gen.New(gen.Config{Seed: 5, Orgs: 20, StepMs: 20})
	const n = 200_000
	var buf []byte
	for range n {
		e := g.Next()
		buf = gen.AppendJSON(buf[:0], e)
		if err := dec1.Decode(buf, e.TS, r1); err != nil {
			t.Fatal(err)
		}
		if err := decOne.Decode(buf, e.TS, rOne); err != nil {
			t.Fatal(err)
		}
		level1[e.Device%4].Apply(r1)
		single.Apply(rOne)
	}
	for _, st := range level1 {
		st.Flush()
	}
	level2.Flush()
	single.Flush()
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("level 2 emitted %d rows, one pass %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("level 2 lacks %s", k)
		}
		for c := range w {
			if g[c] != w[c] && !(math.IsNaN(g[c]) && math.IsNaN(w[c])) {
				t.Fatalf("%s column %d (%s): two levels %v, one pass %v", k, c, l2Layout.Columns()[c], g[c], w[c])
			}
		}
	}
	t.Logf("%d records -> %d partials of %.0f bytes on average (%.2f bytes per raw record); %d rollups equal",
		n, partials, float64(partialBytes)/float64(partials), float64(partialBytes)/n, len(want))
}

func TestProjectionRefusesWrongPartitioning(t *testing.T) {
	l1 := mustSpec(t, "name: l1\ninput: {topic: raw, time_field: ts}\nkey: [org, site]\nwindows: [1m]\n")
	layout, _ := agg.LayoutOf(l1)
	render := partial.Renderer(layout.Fingerprint(), []string{"org", "site"})
	w := &emit.Window{Size: 60_000, Start: 120_000, KeyFields: []string{"org", "site"},
		Rows: []emit.Row{{Key: []string{"o1", "s1"}}}, States: [][]byte{{1, 2, 3}}}
	_, val := render(w, 0, nil, nil)
	var p partial.Partial
	if err := partial.Parse(val, &p); err != nil {
		t.Fatal(err)
	}
	if p.Size != 60_000 || p.Start != 120_000 || !slices.Equal(p.Fields, []string{"org", "site"}) || string(p.State) != "\x01\x02\x03" {
		t.Fatalf("round trip: %+v", p)
	}
	for _, tc := range []struct {
		key  []string
		want string
	}{
		{[]string{"org"}, "partitioned by [org site], which is not within this spec's key [org]"},
		{[]string{"org", "site", "zone"}, `without "zone"`},
	} {
		_, err := partial.NewProjection(tc.key).Key(&p, nil)
		if !errors.Is(err, partial.ErrBad) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("key %v: err %v, want one saying %q", tc.key, err, tc.want)
		}
	}
	if parts, err := partial.NewProjection([]string{"site", "org"}).Key(&p, nil); err != nil || string(parts[0]) != "s1" || string(parts[1]) != "o1" {
		t.Errorf("projection onto [site org]: %q %v", parts, err)
	}
}

func TestParseRejectsDamage(t *testing.T) {
	l1 := mustSpec(t, "name: l1\ninput: {topic: raw, time_field: ts}\nkey: [org]\nwindows: [1m]\n")
	layout, _ := agg.LayoutOf(l1)
	w := &emit.Window{Size: 60_000, Start: 0, KeyFields: []string{"org"}, Rows: []emit.Row{{Key: []string{"o"}}}, States: [][]byte{{9}}}
	_, val := partial.Renderer(layout.Fingerprint(), []string{"org"})(w, 0, nil, nil)
	var p partial.Partial
	for i := range len(val) - 1 { // every truncation but the state's last byte
		if err := partial.Parse(val[:i], &p); err == nil && i < len(val)-1 {
			t.Errorf("truncated to %d bytes: parsed", i)
		}
	}
	bad := slices.Clone(val)
	bad[3] = 9
	if err := partial.Parse(bad, &p); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("version 9: %v", err)
	}
	if err := partial.Parse([]byte(`{"json":1}`), &p); !errors.Is(err, partial.ErrBad) {
		t.Errorf("json: %v", err)
	}
}

// TestLevel2LatenessAndShape: partials do not move a level-2 watermark (its sources' markers
// do); a partial for a window already closed is late and changes nothing, one for a window
// still open is merged even when far behind the newest partial; and partials that no window of
// the spec can hold are refused.
func TestLevel2LatenessAndShape(t *testing.T) {
	l1 := mustSpec(t, "name: l1\ninput: {topic: raw, time_field: ts}\nkey: [org]\nwindows: [1m]\n")
	l2 := mustSpec(t, "name: l2\ninput: {topic: p, format: partials}\nkey: [org]\nwindows: [15m]\nallowed_lateness: 5m\n")
	l1Layout, _ := agg.LayoutOf(l1)
	l2Layout, _ := agg.LayoutOf(l2)
	emitted := map[string][]float64{}
	st := state.New(l2, l2Layout, collect(emitted))
	encode := func(start int64) []byte {
		slot := l1Layout.NewSlot(start)
		slot.Vals[0] = 1 // one record
		enc, err := l1Layout.AppendSlot(nil, slot)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	key := [][]byte{[]byte("o")}
	apply := func(start, size int64) (bool, error) { return st.ApplyPartial(key, start, size, encode(start)) }
	const m = 60_000
	for _, start := range []int64{0, 20 * m, 40 * m} {
		if ok, err := apply(start, m); !ok || err != nil {
			t.Fatalf("partial at %d: %v %v", start, ok, err)
		}
	}
	if len(emitted) != 0 || st.Watermark() != math.MinInt64 {
		t.Fatalf("partials moved the watermark to %d and emitted %v", st.Watermark(), emitted)
	}
	st.AdvanceWatermark(31 * m) // every source has passed 31m
	if len(emitted) != 2 {
		t.Fatalf("windows [0,15m) and [15m,30m) should be emitted once the watermark passed them: %v", emitted)
	}
	if ok, err := apply(29*m, m); ok || err != nil {
		t.Fatalf("a partial of a closed window: ok %v, err %v; want late", ok, err)
	}
	if ok, err := apply(30*m, m); !ok || err != nil {
		t.Fatalf("a partial of the open window [30m,45m) behind the watermark: ok %v, err %v; want merged", ok, err)
	}
	if _, err := apply(45*m, 7*m); !errors.Is(err, state.ErrPartialShape) {
		t.Errorf("7m partials into 15m windows: %v", err)
	}
	if _, err := apply(45*m+1, m); !errors.Is(err, state.ErrPartialShape) {
		t.Errorf("unaligned partial: %v", err)
	}
	if _, err := st.ApplyPartial(key, 50*m, m, encode(50 * m)[:3]); err == nil {
		t.Error("truncated state merged")
	}
}

// BenchmarkApplyPartial is level 2's hot path: parse a partial, project its key, decode its
// state (sketches included) and merge it into every window. Baseline in the same run: applying
// one raw record at level 1 (decode + update), the work a partial stands for many of.
func BenchmarkApplyPartial(b *testing.B) {
	l1 := mustSpec(b, "name: l1\ninput: {topic: raw, time_field: ts}\nkey: [org, site, floor, zone]\nwindows: [1m]\nallowed_lateness: 1h\n")
	l2 := mustSpec(b, "name: l2\ninput: {topic: p, format: partials}\nkey: [org, site, floor, zone]\nwindows: [1m, 15m, 1h]\nallowed_lateness: 1h\n")
	l1Layout, _ := agg.LayoutOf(l1)
	l2Layout, _ := agg.LayoutOf(l2)
	// Realistic partials: zone-minutes of a busy stream, 20 to 200 records each.
	var vals [][]byte
	var raws [][]byte
	render := partial.Renderer(l1Layout.Fingerprint(), []string{"org", "site"})
	st1 := state.New(l1, l1Layout, func(sw *state.Window) {
		w := emit.Copy(sw, "l1", "raw", 0, l1.Key, 0, 0)
		if err := w.AttachStates(sw); err != nil {
			b.Fatal(err)
		}
		for i := range w.Rows {
			_, v := render(w, i, nil, nil)
			vals = append(vals, v)
		}
	})
	dec, _ := record.NewDecoder(l1)
	r := dec.NewRecord()
	g := gen.New(gen.Config{Seed: 3, Orgs: 10, StepMs: 0.5})
	for range 400_000 {
		v := gen.AppendJSON(nil, g.Next())
		raws = append(raws, v)
		if dec.Decode(v, 0, r) == nil {
			st1.Apply(r)
		}
	}
	st1.Flush()
	b.Logf("%d partials of %d records", len(vals), len(raws))

	b.Run("raw-record", func(b *testing.B) {
		st := state.New(l1, l1Layout, nil)
		i := 0
		for b.Loop() {
			if dec.Decode(raws[i%len(raws)], 0, r) == nil {
				st.Apply(r)
			}
			i++
		}
	})
	b.Run("partial", func(b *testing.B) {
		st := state.New(l2, l2Layout, nil)
		proj := partial.NewProjection(l2.Key)
		var p partial.Partial
		var parts [][]byte
		i := 0
		for b.Loop() {
			v := vals[i%len(vals)]
			i++
			if err := partial.Parse(v, &p); err != nil {
				b.Fatal(err)
			}
			if err := partial.CheckLayout(&p, l2Layout); err != nil { // as the worker does per partial
				b.Fatal(err)
			}
			parts, _ = proj.Key(&p, parts[:0])
			if _, err := st.ApplyPartial(parts, p.Start, p.Size, p.State); err != nil {
				b.Fatal(err)
			}
		}
	})
}
