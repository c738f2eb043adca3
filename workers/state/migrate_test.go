package state

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/liveagg/liveagg/workers/spec"
)

const migrateOld = `
name: t
input: {topic: raw, time_field: ts}
key: [org, site, zone]
windows: [1m, 15m]
allowed_lateness: 30s
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: distinct, field: device}
  - {fn: last, field: rssi}
  - {fn: quantiles, field: rssi, quantiles: [0.5, 0.99]}
outputs: [{type: stdout}]
`

// migrateNew keeps, renames and reorders most of migrateOld's aggregations, drops min, and
// adds a max and a sum of rssi, whose open windows hold only the records after the switch.
const migrateNew = `
name: t
input: {topic: raw, time_field: ts}
key: [org, site, zone]
windows: [1m, 15m]
allowed_lateness: 30s
aggregations:
  - {fn: quantiles, field: rssi, name: rssi, quantiles: [0.5, 0.9]}
  - {fn: count}
  - {fn: max, field: rssi}
  - {fn: distinct, field: device, name: devices}
  - {fn: sum, field: dwell_ms, name: dwell}
  - {fn: last, field: rssi}
  - {fn: sum, field: rssi}
outputs: [{type: stdout}]
`

// TestMigrateMatchesOnePass switches a stream's spec at several points and checks every row
// the migrated store emits against one pass of the new spec over the whole stream: kept
// aggregations equal it exactly, added ones equal it in windows opened after the switch and
// hold exactly the records applied after the switch in windows open at it.
func TestMigrateMatchesOnePass(t *testing.T) {
	fo, fn := newFixture(t, migrateOld), newFixture(t, migrateNew)
	recs := events(7, 30_000)
	added := map[string]func(acc, x float64) float64{
		"max_rssi": math.Max,
		"sum_rssi": func(acc, x float64) float64 { return acc + x },
	}
	empty := map[string]float64{"max_rssi": math.Inf(-1), "sum_rssi": 0}
	cols := fn.layout.Columns()

	// One pass of the new spec, noting which records it applied.
	full := newCollector(t)
	ref := New(fn.spec, fn.layout, full.emit)
	applied := make([]bool, len(recs))
	r := fn.dec.NewRecord()
	for i, raw := range recs {
		if fn.dec.Decode(raw, 0, r) == nil {
			applied[i] = ref.Apply(r)
		}
	}
	ref.Flush()
	want := map[string]row{}
	for _, rw := range full.rows {
		want[rw.id()] = rw
	}

	for _, at := range []int{0, 1, 777, 15_000, 29_999} {
		old := New(fo.spec, fo.layout, nil)
		ro := fo.dec.NewRecord()
		for _, raw := range recs[:at] {
			if fo.dec.Decode(raw, 0, ro) == nil {
				old.Apply(ro)
			}
		}
		open := map[string]bool{} // size/start of the windows open at the switch
		for si := range old.sizes {
			for _, b := range old.sizes[si].open {
				open[row{size: old.sizes[si].size, start: b.start}.id()] = true
			}
		}
		snap, err := old.AppendSnapshot(nil, Fingerprint(fo.spec, fo.layout))
		if err != nil {
			t.Fatal(err)
		}
		got := newCollector(t)
		st, err := Migrate(fo.spec, fn.spec, snap, got.emit)
		if err != nil {
			t.Fatalf("switch at %d: %v", at, err)
		}
		// What the added aggregations hold in windows open at the switch: the records after it.
		after := map[string][]float64{}
		for i, raw := range recs[at:] {
			if fn.dec.Decode(raw, 0, r) != nil {
				continue
			}
			if ok := st.Apply(r); ok != applied[at+i] {
				t.Fatalf("switch at %d: record %d applied %v, one pass %v", at, at+i, ok, applied[at+i])
			}
			if !applied[at+i] {
				continue
			}
			for _, sz := range st.sizes {
				start := r.Time - mod(r.Time, sz.size)
				id := row{size: sz.size, start: start, key: string(joinKey(r.Key))}.id()
				vals, ok := after[id]
				if !ok {
					vals = []float64{empty["max_rssi"], empty["sum_rssi"]}
				}
				rssi := r.Num[fn.dec.NumIndex("rssi")]
				vals[0], vals[1] = added["max_rssi"](vals[0], rssi), added["sum_rssi"](vals[1], rssi)
				after[id] = vals
			}
		}
		st.Flush()
		if len(got.rows) == 0 {
			t.Fatalf("switch at %d: nothing emitted", at)
		}
		n := 0
		for _, g := range got.rows {
			w, ok := want[g.id()]
			if !ok {
				t.Fatalf("switch at %d: row %s is not in the one pass", at, g.id())
			}
			wasOpen := open[row{size: g.size, start: g.start}.id()]
			for j, c := range cols {
				exp := w.vals[j]
				if _, isAdded := added[c]; isAdded && wasOpen {
					v, ok := after[g.id()]
					if !ok {
						exp = empty[c]
					} else if c == "max_rssi" {
						exp = v[0]
					} else {
						exp = v[1]
					}
				}
				if !same(g.vals[j], exp) {
					t.Fatalf("switch at %d: row %s column %s = %v, want %v (open at the switch: %v)", at, g.id(), c, g.vals[j], exp, wasOpen)
				}
			}
			n++
		}
		// Every window the one pass emits after the switch's watermark is emitted too.
		for id, w := range want {
			if w.start+w.size > old.watermark && !got.seen[id] {
				t.Fatalf("switch at %d: row %s missing", at, id)
			}
		}
		t.Logf("switch at %d: %d rows checked, %d windows open at the switch", at, n, len(open))
	}
}

func joinKey(parts [][]byte) []byte {
	var b []byte
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0x1f)
		}
		b = append(b, p...)
	}
	return b
}

func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func TestMigrateRefusesIncompatible(t *testing.T) {
	fo := newFixture(t, migrateOld)
	snap, err := New(fo.spec, fo.layout, nil).AppendSnapshot(nil, Fingerprint(fo.spec, fo.layout))
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*spec.Spec){
		"windows": func(s *spec.Spec) { s.Windows = s.Windows[:1] },
		"key":     func(s *spec.Spec) { s.Key = s.Key[:2] },
		"added avg": func(s *spec.Spec) {
			s.Aggregations = append(s.Aggregations, spec.Aggregation{Fn: spec.FnAvg, Field: "rssi", Name: "avg_rssi"})
		},
		"added last": func(s *spec.Spec) {
			s.Aggregations = append(s.Aggregations, spec.Aggregation{Fn: spec.FnLast, Field: "dwell_ms", Name: "last_dwell_ms"})
		},
		"partitioning":  func(s *spec.Spec) { s.Input.PartitionedBy = []string{"org"} },
		"partials from": func(s *spec.Spec) { s.Input.Format = spec.FormatPartials },
	} {
		t.Run(name, func(t *testing.T) {
			ns := *fo.spec
			ns.Key, ns.Windows, ns.Aggregations = slices.Clone(ns.Key), slices.Clone(ns.Windows), slices.Clone(ns.Aggregations)
			edit(&ns)
			if _, err := Migrate(fo.spec, &ns, snap, nil); !errors.Is(err, ErrNotMigratable) {
				t.Fatalf("Migrate = %v, want ErrNotMigratable", err)
			}
		})
	}
}

func TestRebuildStart(t *testing.T) {
	m := func(d string) spec.Duration {
		v, err := spec.ParseDuration(d)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ws := func(ds ...string) (out []spec.Duration) {
		for _, d := range ds {
			out = append(out, m(d))
		}
		return out
	}
	const minute = 60_000
	for _, c := range []struct {
		name     string
		old, new []spec.Duration
		wm, want int64
	}{
		{"1m to 5m", ws("1m"), ws("5m"), 17*minute + 30_000, 15 * minute},
		{"1m,1h to 5m", ws("1m", "1h"), ws("5m"), 137 * minute, 120 * minute},
		{"5m to 1m,15m", ws("5m"), ws("1m", "15m"), 22 * minute, 15 * minute},
		{"on a boundary", ws("1m"), ws("1m"), 10 * minute, 10 * minute},
		{"negative time", ws("1m"), ws("5m"), -90_000, -5 * minute},
		{"no record yet", ws("1m"), ws("5m"), NoTime, NoTime},
	} {
		if got := RebuildStart(c.old, c.new, c.wm); got != c.want {
			t.Errorf("%s: RebuildStart = %d, want %d", c.name, got, c.want)
		}
	}
}

// A damaged snapshot is reported as such by Migrate, so a worker falls back to an older
// checkpoint instead of halting.
func TestMigrateCorrupt(t *testing.T) {
	fo, fn := newFixture(t, migrateOld), newFixture(t, migrateNew)
	snap, err := New(fo.spec, fo.layout, nil).AppendSnapshot(nil, Fingerprint(fo.spec, fo.layout))
	if err != nil {
		t.Fatal(err)
	}
	snap[len(snap)/2] ^= 0xff
	if _, err := Migrate(fo.spec, fn.spec, snap, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Migrate of a damaged snapshot = %v, want ErrCorrupt", err)
	}
}
