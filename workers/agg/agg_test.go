package agg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
)

const testSpec = `
name: t
input: {topic: raw, time_field: ts}
key: [k]
windows: [1m, 15m]
aggregations:
  - {fn: count}
  - {fn: sum, field: v}
  - {fn: min, field: v}
  - {fn: max, field: v}
  - {fn: avg, field: v}
  - {fn: avg, field: w}
  - {fn: last, field: w}
  - {fn: distinct, field: d}
  - {fn: quantiles, field: v, relative_accuracy: 0.02, quantiles: [0.1, 0.5, 0.9]}
  - {fn: last, field: d, type: text, name: last_d}
outputs: [{type: stdout}]
`

func setup(t testing.TB) (*Layout, *record.Decoder) {
	t.Helper()
	return setupSpec(t, testSpec)
}

func setupSpec(t testing.TB, doc string) (*Layout, *record.Decoder) {
	t.Helper()
	s, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d, err := record.NewDecoder(s)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLayout(s, d)
	if err != nil {
		t.Fatal(err)
	}
	return l, d
}

type rec struct {
	t    int64
	v, w float64
	d    string
}

func randomRecs(r *rand.Rand, n int, start, span int64) []rec {
	out := make([]rec, n)
	for i := range out {
		out[i] = rec{
			t: start + r.Int64N(span),
			v: float64(r.IntN(2000) - 1000), // integers: sums are exact in any order
			w: float64(r.IntN(64)) / 8,      // exact binary fractions
			d: fmt.Sprintf("dev-%d", r.IntN(300)),
		}
	}
	return out
}

func fill(t testing.TB, l *Layout, d *record.Decoder, p *Pool, s Slot, recs []rec) {
	t.Helper()
	r := d.NewRecord()
	for _, x := range recs {
		raw := fmt.Appendf(nil, `{"k":"a","ts":%d,"v":%v,"w":%v,"d":%q}`, x.t, x.v, x.w, x.d)
		if err := d.Decode(raw, 0, r); err != nil {
			t.Fatal(err)
		}
		l.Update(s, r, p)
	}
}

// exact returns the columns that must merge exactly: count, sum, min, max, avg v, avg w, last w.
func exact(l *Layout, s Slot) []float64 { return l.Results(s, nil)[:7] }

func TestMergeEqualsAggregateOfUnion(t *testing.T) {
	l, d := setup(t)
	p := l.NewPool()
	rng := rand.New(rand.NewPCG(42, 7))
	const start = 1_800_000_000_000 - 1_800_000_000_000%900_000
	for trial := range 300 {
		// Records of A and B fall in 1-minute windows inside one 15-minute window, as level-1
		// partials do; the merged slot is the 15-minute window.
		ma, mb := start+60_000*int64(rng.IntN(15)), start+60_000*int64(rng.IntN(15))
		if trial%10 == 0 {
			mb = ma
		}
		a := randomRecs(rng, 1+rng.IntN(200), ma, 60_000)
		b := randomRecs(rng, 1+rng.IntN(200), mb, 60_000)
		if trial%10 == 0 { // ties of event time between A and B must not depend on merge order
			b[0].t = a[0].t
		}
		sa, sb := l.NewSlot(ma), l.NewSlot(mb)
		fill(t, l, d, p, sa, a)
		fill(t, l, d, p, sb, b)
		union := l.NewSlot(start)
		fill(t, l, d, p, union, append(slices.Clone(a), b...))

		for _, order := range [][2]Slot{{sa, sb}, {sb, sa}} {
			m := l.NewSlot(start)
			for _, part := range order {
				if err := l.Merge(m, part, p); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := exact(l, m), exact(l, union); !slices.Equal(got, want) {
				t.Fatalf("trial %d: merged %v, union %v", trial, got, want)
			}
			all := l.Results(m, nil)
			un := l.Results(union, nil)
			// distinct: both sketches estimate the same set; HyperLogLog's error at these sizes
			// is well under 2 %.
			if math.Abs(all[7]-un[7]) > math.Max(2, 0.02*un[7]) {
				t.Fatalf("trial %d: merged distinct %v, union %v", trial, all[7], un[7])
			}
			// quantiles: merged DDSketch buckets equal the union's, so answers are identical.
			if !slices.Equal(all[8:11], un[8:11]) {
				t.Fatalf("trial %d: merged quantiles %v, union %v", trial, all[8:11], un[8:11])
			}
			// last of text: the text at the latest time, ties to the greater text, exactly.
			if got, want := l.Texts(m, nil), l.Texts(union, nil); !slices.Equal(got, want) {
				t.Fatalf("trial %d: merged text last %q, union %q", trial, got, want)
			}
		}
	}
}

func TestDistinctAndQuantilesWithinBounds(t *testing.T) {
	l, d := setup(t)
	p := l.NewPool()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 10, 1000, 20000} {
		s := l.NewSlot(0)
		recs := make([]rec, n)
		vals := make([]float64, n)
		for i := range recs {
			recs[i] = rec{t: int64(i % 60000), v: float64(1 + rng.IntN(100000)), d: fmt.Sprintf("u%d", i)}
			vals[i] = recs[i].v
		}
		fill(t, l, d, p, s, recs)
		res := l.Results(s, nil)
		if est := res[7]; math.Abs(est-float64(n))/float64(n) > 0.03 {
			t.Errorf("n=%d: distinct estimate %v", n, est)
		}
		sort.Float64s(vals)
		for i, q := range []float64{0.1, 0.5, 0.9} {
			r := q * float64(n-1)
			lo, hi := vals[int(math.Floor(r))], vals[int(math.Ceil(r))]
			if got := res[8+i]; got < lo*0.98 || got > hi*1.02 {
				t.Errorf("n=%d q=%v: %v not within 2 %% of [%v, %v]", n, q, got, lo, hi)
			}
		}
	}
}

func TestSlotEncodingRoundTrip(t *testing.T) {
	l, d := setup(t)
	p := l.NewPool()
	rng := rand.New(rand.NewPCG(3, 3))
	for range 100 {
		s := l.NewSlot(60_000)
		fill(t, l, d, p, s, randomRecs(rng, 1+rng.IntN(500), 60_000, 60_000))
		enc, err := l.AppendSlot([]byte("prefix"), s)
		if err != nil {
			t.Fatal(err)
		}
		back := l.NewSlot(60_000)
		rest, err := l.DecodeSlot(append(enc[len("prefix"):], "tail"...), back, p)
		if err != nil {
			t.Fatal(err)
		}
		if string(rest) != "tail" {
			t.Fatalf("DecodeSlot left %q, want tail", rest)
		}
		if got, want := l.Results(back, nil), l.Results(s, nil); !slices.EqualFunc(got, want, sameFloat) {
			t.Fatalf("decoded %v, want %v", got, want)
		}
		if got, want := l.Texts(back, nil), l.Texts(s, nil); !slices.Equal(got, want) || len(got) != 1 || got[0] == "" {
			t.Fatalf("decoded texts %q, want %q", got, want)
		}
		// Every truncation is an error, never a panic or a silently partial slot.
		for cut := range len(enc) - len("prefix") {
			if _, err := l.DecodeSlot(enc[len("prefix"):len("prefix")+cut], l.NewSlot(60_000), p); err == nil {
				t.Fatalf("truncated to %d bytes: no error", cut)
			}
		}
	}
}

func TestColumnsAndFingerprint(t *testing.T) {
	l, _ := setup(t)
	want := []string{"count", "sum_v", "min_v", "max_v", "avg_v", "avg_w", "last_w", "distinct_d",
		"quantiles_v_p10", "quantiles_v_p50", "quantiles_v_p90", "last_d"}
	if !slices.Equal(l.Columns(), want) {
		t.Errorf("columns = %v, want %v", l.Columns(), want)
	}
	wantKinds := []ColumnKind{ColumnInteger, ColumnReal, ColumnReal, ColumnReal, ColumnReal, ColumnReal, ColumnReal, ColumnInteger,
		ColumnReal, ColumnReal, ColumnReal, ColumnText}
	if !slices.Equal(l.ColumnKinds(), wantKinds) {
		t.Errorf("column kinds = %v, want %v", l.ColumnKinds(), wantKinds)
	}
	// sum and avg of v share one running sum: count + sum/avg v + min + max + avg w + last w,
	// then SmallN inline quantile values.
	if l.Stride != 6+SmallN {
		t.Errorf("stride = %d, want %d", l.Stride, 6+SmallN)
	}
	l2, _ := setup(t)
	if l.Fingerprint() != l2.Fingerprint() {
		t.Error("equal layouts have different fingerprints")
	}
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// A layout without text keeps the fingerprint it had before text columns existed, so its
// checkpoints and partials stay readable across the upgrade. The number is the fingerprint of
// this spec as the build before text columns computed it.
func TestFingerprintWithoutTextIsUnchanged(t *testing.T) {
	l, _ := setupSpec(t, strings.Replace(testSpec, "  - {fn: last, field: d, type: text, name: last_d}\n", "", 1))
	if l.NumText != 0 {
		t.Fatal("the text aggregation is still in the spec")
	}
	if got := l.Fingerprint(); got != 5558042472023691341 {
		t.Errorf("fingerprint of a layout without text = %d, want 5558042472023691341", got)
	}
}

// last of text keeps strings as they are and numbers and booleans as their JSON text.
func TestLastText(t *testing.T) {
	l, d := setupSpec(t, `
name: t
input: {topic: raw, time_field: ts}
key: [k]
windows: [1m]
aggregations: [{fn: last, field: status, type: text}]
outputs: [{type: stdout}]
`)
	p := l.NewPool()
	r := d.NewRecord()
	s := l.NewSlot(0)
	for _, tc := range []struct {
		in, want string
	}{
		{`{"k":"a","ts":10,"status":"ok"}`, "ok"},
		{`{"k":"a","ts":5,"status":"older"}`, "ok"},        // older: ignored
		{`{"k":"a","ts":20,"status":404}`, "404"},          // numbers as their JSON text
		{`{"k":"a","ts":20,"status":"404 "}`, "404 "},      // a tie goes to the greater text
		{`{"k":"a","ts":20,"status":"100"}`, "404 "},       // ... not to the later arrival
		{`{"k":"a","ts":30,"status":true}`, "true"},        // booleans too
		{`{"k":"a","ts":40,"status":"caf\u00e9"}`, "café"}, // unescaped
	} {
		if err := d.Decode([]byte(tc.in), 0, r); err != nil {
			t.Fatal(err)
		}
		l.Update(s, r, p)
		if got := l.Texts(s, nil); len(got) != 1 || got[0] != tc.want {
			t.Fatalf("after %s: last = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`{"k":"a","ts":50,"status":{}}`, `{"k":"a","ts":50,"status":[1]}`, `{"k":"a","ts":50,"status":null}`} {
		if err := d.Decode([]byte(bad), 0, r); record.ReasonOf(err) != record.ReasonWrongType {
			t.Errorf("Decode(%s) = %v, want wrong_type", bad, err)
		}
	}
}
