package state

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/gen"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
)

const fullSpec = `
name: t
input: {topic: raw, time_field: ts}
key: [org, site, zone]
windows: [1m, 15m]
allowed_lateness: 30s
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: max, field: rssi}
  - {fn: avg, field: dwell_ms}
  - {fn: avg, field: rssi}
  - {fn: last, field: rssi}
  - {fn: distinct, field: device}
  - {fn: quantiles, field: rssi, relative_accuracy: 0.01, quantiles: [0.5, 0.99]}
outputs: [{type: stdout}]
`

type fixture struct {
	spec   *spec.Spec
	dec    *record.Decoder
	layout *agg.Layout
}

func newFixture(t testing.TB, doc string) *fixture {
	t.Helper()
	s, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d, err := record.NewDecoder(s)
	if err != nil {
		t.Fatal(err)
	}
	l, err := agg.NewLayout(s, d)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{spec: s, dec: d, layout: l}
}

// row is one emitted (series, window) with its final values, as text for exact comparison.
type row struct {
	size, start int64
	key         string
	vals        []float64
}

func (r row) id() string { return fmt.Sprintf("%d/%d/%s", r.size, r.start, r.key) }

// collector records emitted windows and checks each was emitted only once the watermark passed it.
type collector struct {
	t    testing.TB
	st   **Store
	rows []row
	seen map[string]bool
}

func newCollector(t testing.TB) *collector { return &collector{t: t, seen: map[string]bool{}} }

func (c *collector) emit(w *Window) {
	if c.st != nil && *c.st != nil && w.End() > (*c.st).Watermark() {
		c.t.Errorf("window [%d,%d) emitted at watermark %d", w.Start, w.End(), (*c.st).Watermark())
	}
	for i := range w.Len() {
		r := row{size: w.Size, start: w.Start, key: string(w.Key(i)), vals: w.Results(i, nil)}
		if c.seen[r.id()] {
			c.t.Errorf("window %s emitted twice", r.id())
		}
		c.seen[r.id()] = true
		c.rows = append(c.rows, r)
	}
}

// events generates a deterministic stream with jitter, late and malformed events.
func events(seed uint64, n int) [][]byte {
	g := gen.New(gen.Config{Seed: seed, Orgs: 20, SitesPerOrg: 3, FloorsPerSite: 2, ZonesPerFloor: 3,
		DevicesPerSite: 10, StepMs: 50, JitterMs: 20_000, LateFraction: 0.02, LateByMs: 120_000, MalformedFraction: 0.01})
	out := make([][]byte, n)
	for i := range out {
		out[i] = gen.AppendJSON(nil, g.Next())
	}
	return out
}

// reference computes the expected rows with plain maps, independently of the store.
func reference(t testing.TB, f *fixture, recs [][]byte) (map[string]row, int) {
	t.Helper()
	type acc struct {
		count, sumDwell, sumRSSI, min, max, lastV float64
		lastT                                     int64
		devs                                      map[string]bool
		rssi                                      []float64
	}
	accs := map[string]*acc{}
	keys := map[string]row{}
	wm, maxT := int64(math.MinInt64), int64(math.MinInt64)
	late := 0
	lat := f.spec.AllowedLateness.Millis()
	r := f.dec.NewRecord()
	for _, raw := range recs {
		if err := f.dec.Decode(raw, 0, r); err != nil {
			continue
		}
		if r.Time < wm {
			late++
			continue
		}
		key := strings.Join([]string{string(r.Key[0]), string(r.Key[1]), string(r.Key[2])}, "\x1f")
		dwell, rssi := r.Num[f.dec.NumIndex("dwell_ms")], r.Num[f.dec.NumIndex("rssi")]
		for _, w := range f.spec.Windows {
			size := w.Millis()
			start := r.Time - ((r.Time%size)+size)%size
			id := row{size: size, start: start, key: key}.id()
			a := accs[id]
			if a == nil {
				a = &acc{min: math.Inf(1), max: math.Inf(-1), lastT: math.MinInt64, devs: map[string]bool{}}
				accs[id] = a
				keys[id] = row{size: size, start: start, key: key}
			}
			a.count++
			a.sumDwell += dwell
			a.sumRSSI += rssi
			a.min, a.max = min(a.min, rssi), max(a.max, rssi)
			if r.Time > a.lastT || (r.Time == a.lastT && rssi > a.lastV) {
				a.lastT, a.lastV = r.Time, rssi
			}
			a.devs[string(r.Str[0])] = true
			a.rssi = append(a.rssi, rssi)
		}
		if r.Time > maxT {
			maxT = r.Time
			wm = max(wm, r.Time-lat)
		}
	}
	out := map[string]row{}
	for id, a := range accs {
		rw := keys[id]
		sort.Float64s(a.rssi)
		// A sample quantile lies between the values at the floor and the ceiling of its rank;
		// the sketch may answer either, so the reference keeps both.
		q := func(p float64) (lo, hi float64) {
			r := p * float64(len(a.rssi)-1)
			return a.rssi[int(math.Floor(r))], a.rssi[int(math.Ceil(r))]
		}
		lo50, hi50 := q(0.5)
		lo99, hi99 := q(0.99)
		rw.vals = []float64{a.count, a.sumDwell, a.min, a.max, a.sumDwell / a.count, a.sumRSSI / a.count, a.lastV,
			float64(len(a.devs)), lo50, lo99, hi50, hi99}
		out[id] = rw
	}
	return out, late
}

func apply(t testing.TB, f *fixture, st *Store, recs [][]byte) {
	t.Helper()
	r := f.dec.NewRecord()
	for _, raw := range recs {
		if err := f.dec.Decode(raw, 0, r); err != nil {
			if record.ReasonOf(err) == "" {
				t.Fatalf("decode error without reason: %v", err)
			}
			continue
		}
		st.Apply(r)
	}
}

func checkRows(t *testing.T, got []row, want map[string]row) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("emitted %d (series, window) rows, want %d", len(got), len(want))
	}
	for _, g := range got {
		w, ok := want[g.id()]
		if !ok {
			t.Errorf("unexpected row %s", g.id())
			continue
		}
		// count, sum, min, max, avg, avg, last: exact.
		for i := 0; i < 7; i++ {
			if g.vals[i] != w.vals[i] {
				t.Errorf("%s column %d = %v, want %v", g.id(), i, g.vals[i], w.vals[i])
			}
		}
		// distinct: HyperLogLog is near-exact for small sets.
		if d := math.Abs(g.vals[7] - w.vals[7]); d > math.Max(1, 0.02*w.vals[7]) {
			t.Errorf("%s distinct = %v, want %v", g.id(), g.vals[7], w.vals[7])
		}
		// quantiles: within the sketch's relative accuracy of a true sample quantile.
		for i := 8; i < 10; i++ {
			lo, hi := w.vals[i], w.vals[i+2]
			if g.vals[i] < lo-0.0101*math.Abs(lo) || g.vals[i] > hi+0.0101*math.Abs(hi) {
				t.Errorf("%s quantile column %d = %v, want within 1 %% of [%v, %v]", g.id(), i, g.vals[i], lo, hi)
			}
		}
	}
}

func TestStoreMatchesReference(t *testing.T) {
	f := newFixture(t, fullSpec)
	recs := events(7, 40_000)
	want, wantLate := reference(t, f, recs)

	c := newCollector(t)
	st := New(f.spec, f.layout, c.emit)
	c.st = &st
	apply(t, f, st, recs)
	if int(st.Stats().Late) != wantLate {
		t.Errorf("late = %d, want %d", st.Stats().Late, wantLate)
	}
	if wantLate == 0 {
		t.Fatal("test stream has no late records")
	}
	before := len(c.rows)
	st.Flush()
	if before == 0 || len(c.rows) == before {
		t.Errorf("windows emitted before flush %d, at flush %d: want both", before, len(c.rows)-before)
	}
	checkRows(t, c.rows, want)
	if s := st.Stats(); s.Series != 0 || s.Slots != 0 || s.OpenWindows != 0 {
		t.Errorf("after flush: %+v, want an empty store", s)
	}
}

func TestStoreIsDeterministic(t *testing.T) {
	f := newFixture(t, fullSpec)
	recs := events(3, 20_000)
	run := func() []row {
		c := newCollector(t)
		st := New(f.spec, f.layout, c.emit)
		apply(t, f, st, recs)
		st.Flush()
		return c.rows
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatalf("runs emitted %d and %d rows", len(a), len(b))
	}
	for i := range a {
		if a[i].id() != b[i].id() || !slices.Equal(a[i].vals, b[i].vals) {
			t.Fatalf("row %d differs: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestLateRecordsAreRejectedWhole(t *testing.T) {
	f := newFixture(t, fullSpec)
	st := New(f.spec, f.layout, nil)
	r := f.dec.NewRecord()
	mk := func(ts int64) []byte {
		return fmt.Appendf(nil, `{"org":"o","site":"s","zone":"z","device":"d","ts":%d,"rssi":-50,"dwell_ms":10}`, ts)
	}
	for _, tc := range []struct {
		ts   int64
		want bool
	}{
		{600_000, true},  // watermark 570_000
		{570_000, true},  // exactly at the watermark: on time
		{569_999, false}, // behind it: late
		{700_000, true},  // watermark 670_000 closes [600_000, 660_000)
		{659_000, false},
	} {
		if err := f.dec.Decode(mk(tc.ts), 0, r); err != nil {
			t.Fatal(err)
		}
		if got := st.Apply(r); got != tc.want {
			t.Errorf("Apply(ts=%d) = %v, want %v (watermark %d)", tc.ts, got, tc.want, st.Watermark())
		}
	}
	if st.Stats().Late != 2 {
		t.Errorf("late = %d, want 2", st.Stats().Late)
	}
}

// A record stamped ahead of when it was written moves the watermark only to its log time, so
// the records after it that are on time by the log are not made late.
func TestWatermarkHeldToLogTime(t *testing.T) {
	f := newFixture(t, fullSpec) // allowed lateness 30s
	st := New(f.spec, f.layout, nil)
	r := f.dec.NewRecord()
	mk := func(ts int64) []byte {
		return fmt.Appendf(nil, `{"org":"o","site":"s","zone":"z","device":"d","ts":%d,"rssi":-50,"dwell_ms":10}`, ts)
	}
	for _, tc := range []struct {
		ts, logTime int64
		want        bool
		watermark   int64
	}{
		{600_000, 601_000, true, 570_000},
		{900_000, 602_000, true, 572_000}, // five minutes ahead of its log time: held to 602_000
		{600_500, 603_000, true, 572_000}, // on time by the log: not late
		{910_000, 0, true, 880_000},       // no log time: the event time counts
		{600_600, 604_000, false, 880_000},
	} {
		if err := f.dec.Decode(mk(tc.ts), tc.logTime, r); err != nil {
			t.Fatal(err)
		}
		if got := st.Apply(r); got != tc.want || st.Watermark() != tc.watermark {
			t.Errorf("Apply(ts=%d, log=%d) = %v with watermark %d, want %v with %d", tc.ts, tc.logTime, got, st.Watermark(), tc.want, tc.watermark)
		}
	}
}

func TestSnapshotRestoreContinuesExactly(t *testing.T) {
	f := newFixture(t, fullSpec)
	recs := events(11, 30_000)
	// Reference run: one store sees everything.
	c1 := newCollector(t)
	st1 := New(f.spec, f.layout, c1.emit)
	apply(t, f, st1, recs)
	st1.Flush()

	// Interrupted run: snapshot at 40 %, throw the store away, restore, continue.
	c2 := newCollector(t)
	st2 := New(f.spec, f.layout, c2.emit)
	cut := len(recs) * 2 / 5
	apply(t, f, st2, recs[:cut])
	fp := Fingerprint(f.spec, f.layout)
	snap, err := st2.AppendSnapshot(nil, fp)
	if err != nil {
		t.Fatal(err)
	}
	before := st2.Stats()
	restored, err := Restore(f.spec, f.layout, c2.emit, snap)
	if err != nil {
		t.Fatal(err)
	}
	after := restored.Stats()
	if before.Series != after.Series || before.Slots != after.Slots || before.Watermark != after.Watermark || before.Late != after.Late {
		t.Fatalf("restore changed the state: before %+v after %+v", before, after)
	}
	apply(t, f, restored, recs[cut:])
	restored.Flush()
	if len(c1.rows) != len(c2.rows) {
		t.Fatalf("interrupted run emitted %d rows, uninterrupted %d", len(c2.rows), len(c1.rows))
	}
	for i := range c1.rows {
		a, b := c1.rows[i], c2.rows[i]
		if a.id() != b.id() || !slices.Equal(a.vals, b.vals) {
			t.Fatalf("row %d: %v vs %v", i, a, b)
		}
	}
}

func TestSnapshotOfRestoredStoreIsIdentical(t *testing.T) {
	// Without sketches (whose libraries may re-encode equal contents differently), a snapshot of
	// a restored store is byte-identical to the one it came from: nothing lost or reordered.
	f := newFixture(t, `
name: t
input: {topic: raw, time_field: ts}
key: [org, site, zone]
windows: [1m, 15m]
allowed_lateness: 30s
aggregations: [{fn: count}, {fn: sum, field: dwell_ms}, {fn: min, field: rssi}, {fn: last, field: x}]
outputs: [{type: stdout}]
`)
	st := New(f.spec, f.layout, nil)
	apply(t, f, st, events(13, 20_000))
	fp := Fingerprint(f.spec, f.layout)
	snap, err := st.AppendSnapshot(nil, fp)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := Restore(f.spec, f.layout, nil, snap)
	if err != nil {
		t.Fatal(err)
	}
	again, err := restored.AppendSnapshot(nil, fp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, again) {
		t.Fatalf("snapshot of the restored store differs (%d vs %d bytes)", len(snap), len(again))
	}
}

func TestRestoreRejectsDamage(t *testing.T) {
	f := newFixture(t, fullSpec)
	st := New(f.spec, f.layout, nil)
	apply(t, f, st, events(5, 5_000))
	fp := Fingerprint(f.spec, f.layout)
	snap, err := st.AppendSnapshot(nil, fp)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		bad := slices.Clone(snap)
		switch i % 3 {
		case 0:
			bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
		case 1:
			bad = bad[:rng.IntN(len(bad))]
		case 2:
			bad = append(bad, byte(rng.IntN(256)))
		}
		if _, err := Restore(f.spec, f.layout, nil, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("damage %d: Restore = %v, want ErrCorrupt", i, err)
		}
	}
	other := newFixture(t, strings.Replace(fullSpec, "[1m, 15m]", "[1m, 5m]", 1))
	if _, err := Restore(other.spec, other.layout, nil, snap); !errors.Is(err, ErrMismatch) {
		t.Fatalf("restore under other windows = %v, want ErrMismatch", err)
	}
}

func TestSeriesChurnFreesKeys(t *testing.T) {
	f := newFixture(t, `
name: t
input: {topic: raw, time_field: ts}
key: [org]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: stdout}]
`)
	emitted := 0
	st := New(f.spec, f.layout, func(w *Window) { emitted += w.Len() })
	r := f.dec.NewRecord()
	// Every minute brings 1000 new series; old ones never return.
	for m := range 200 {
		for i := range 1000 {
			rec := fmt.Appendf(nil, `{"org":"m%d-%d","ts":%d}`, m, i, int64(m)*60_000+int64(i))
			if err := f.dec.Decode(rec, 0, r); err != nil {
				t.Fatal(err)
			}
			st.Apply(r)
		}
	}
	s := st.Stats()
	if s.Series > 2000 || s.KeyBytes > 1<<20 {
		t.Fatalf("after 200k short-lived series: %+v; want at most two windows' worth", s)
	}
	st.Flush()
	if emitted != 200_000 {
		t.Fatalf("emitted %d rows, want 200000", emitted)
	}
}

// TestSnapshotWithQuantilesBeforeDistinct: sketches are written and read back in one order,
// whatever order the spec declares its functions in (restore once read them in spec order,
// which broke specs listing quantiles before distinct).
func TestSnapshotWithQuantilesBeforeDistinct(t *testing.T) {
	f := newFixture(t, `
name: t
input: {topic: raw, time_field: ts}
key: [org]
windows: [15m]
aggregations:
  - {fn: quantiles, field: rssi, quantiles: [0.5]}
  - {fn: distinct, field: device}
  - {fn: count}
outputs: [{type: stdout}]
`)
	recs := events(17, 20_000)
	run := func(cut int) []row {
		c := newCollector(t)
		st := New(f.spec, f.layout, c.emit)
		apply(t, f, st, recs[:cut])
		if cut < len(recs) {
			snap, err := st.AppendSnapshot(nil, Fingerprint(f.spec, f.layout))
			if err != nil {
				t.Fatal(err)
			}
			if st, err = Restore(f.spec, f.layout, c.emit, snap); err != nil {
				t.Fatal(err)
			}
			apply(t, f, st, recs[cut:])
		}
		st.Flush()
		return c.rows
	}
	whole, interrupted := run(len(recs)), run(len(recs)/2)
	if len(whole) != len(interrupted) {
		t.Fatalf("%d rows vs %d", len(whole), len(interrupted))
	}
	for i := range whole {
		if whole[i].id() != interrupted[i].id() || !slices.Equal(whole[i].vals, interrupted[i].vals) {
			t.Fatalf("row %d: %v vs %v", i, whole[i], interrupted[i])
		}
	}
}

// A text last survives a snapshot: a store restored half-way and fed the rest emits the same
// texts as one that saw everything, and a restored store's snapshot is byte-identical.
func TestTextLastSurvivesSnapshot(t *testing.T) {
	f := newFixture(t, `
name: t
input: {topic: raw, time_field: ts}
key: [org]
windows: [1m, 15m]
aggregations: [{fn: count}, {fn: last, field: zone, type: text}, {fn: last, field: device, type: text, name: last_dev}]
outputs: [{type: stdout}]
`)
	recs := events(5, 20_000)
	run := func(cut int) map[string][]string {
		got := map[string][]string{}
		emit := func(w *Window) {
			for i := range w.Len() {
				got[fmt.Sprintf("%d/%d/%s", w.Size, w.Start, w.Key(i))] = f.layout.Texts(w.Slot(i), nil)
			}
		}
		st := New(f.spec, f.layout, emit)
		r := f.dec.NewRecord()
		for i, raw := range recs {
			if i == cut {
				snap, err := st.AppendSnapshot(nil, Fingerprint(f.spec, f.layout))
				if err != nil {
					t.Fatal(err)
				}
				if st, err = Restore(f.spec, f.layout, emit, snap); err != nil {
					t.Fatal(err)
				}
				again, _ := st.AppendSnapshot(nil, Fingerprint(f.spec, f.layout))
				if !bytes.Equal(snap, again) {
					t.Fatal("the restored store's snapshot differs")
				}
			}
			if f.dec.Decode(raw, 0, r) == nil {
				st.Apply(r)
			}
		}
		st.Flush()
		return got
	}
	whole, cut := run(-1), run(len(recs)/2)
	if len(whole) == 0 || len(whole) != len(cut) {
		t.Fatalf("%d windows whole, %d with a snapshot", len(whole), len(cut))
	}
	for id, w := range whole {
		if c := cut[id]; !slices.Equal(c, w) || w[0] == "" || w[1] == "" {
			t.Fatalf("%s: %q with a snapshot, %q without", id, c, w)
		}
	}
}

// TestRaiseThenCloseDue: a raised watermark closes nothing until CloseDue, says so with Pending,
// survives a snapshot with its windows still open, and a restored store closes the same
// windows as the original.
func TestRaiseThenCloseDue(t *testing.T) {
	f := newFixture(t, "name: s\ninput: {topic: t, time_field: ts}\nkey: [k]\nwindows: [1m]\nallowed_lateness: 10s\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n")
	s, layout := f.spec, f.layout
	var closed []int64
	st := New(s, layout, func(w *Window) { closed = append(closed, w.Start) })
	for _, ts := range []int64{1_000, 61_000, 125_000} {
		if !st.Apply(&record.Record{Key: [][]byte{[]byte("a")}, Time: ts}) {
			t.Fatalf("record at %d late", ts)
		}
	}
	if len(closed) != 1 || st.Pending() || !st.Closes(180_000) || st.Closes(100_000) {
		t.Fatalf("closed %v, pending %v", closed, st.Pending())
	}
	st.RaiseWatermark(190_000)
	if len(closed) != 1 || !st.Pending() || st.Watermark() != 190_000 {
		t.Fatalf("raise closed %v, pending %v, watermark %d", closed, st.Pending(), st.Watermark())
	}
	snap, err := st.AppendSnapshot(nil, Fingerprint(s, layout))
	if err != nil {
		t.Fatal(err)
	}
	st.CloseDue()
	if !slices.Equal(closed, []int64{0, 60_000, 120_000}) || st.Pending() {
		t.Fatalf("closed %v after CloseDue, pending %v", closed, st.Pending())
	}
	var again []int64
	restored, err := Restore(s, layout, func(w *Window) { again = append(again, w.Start) }, snap)
	if err != nil {
		t.Fatal(err)
	}
	if !restored.Pending() {
		t.Fatal("the restored store lost the raised watermark's pending windows")
	}
	restored.CloseDue()
	if !slices.Equal(again, []int64{60_000, 120_000}) {
		t.Fatalf("restored store closed %v, want the same windows as the original", again)
	}
	if restored.Apply(&record.Record{Key: [][]byte{[]byte("a")}, Time: 179_000}) {
		t.Error("a record behind the raised watermark was applied")
	}
	restored.Flush()
	if restored.Pending() {
		t.Error("a flushed store says windows are pending: its final watermark would never be announced")
	}
}
