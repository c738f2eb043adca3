package state

import (
	"strings"
	"testing"
)

// BenchmarkMigrate measures a migration in place (an aggregation added, one removed) against a
// plain restore of the same snapshot: the migration restores under the old layout and moves
// every slot, so its cost is paid once per partition at a spec change. MB/s is snapshot bytes
// per second; compare migrate with restore of the same spec.
func BenchmarkMigrate(b *testing.B) {
	for _, tc := range []struct{ name, doc, from, to string }{
		{"scalar", scalarSpec, "  - {fn: avg, field: rssi}\n", "  - {fn: sum, field: rssi}\n"},
		{"full", benchSpec, "  - {fn: max, field: rssi}\n", "  - {fn: distinct, field: zone}\n"},
	} {
		f, st := filled(b, tc.doc, 1_000_000)
		snap, err := st.AppendSnapshot(nil, Fingerprint(f.spec, f.layout))
		if err != nil {
			b.Fatal(err)
		}
		next := newFixture(b, strings.Replace(tc.doc, tc.from, tc.to, 1))
		b.Run(tc.name+"/restore", func(b *testing.B) {
			b.SetBytes(int64(len(snap)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Restore(f.spec, f.layout, nil, snap); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/migrate", func(b *testing.B) {
			b.SetBytes(int64(len(snap)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Migrate(f.spec, next.spec, snap, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
