package state

import (
	"fmt"
	"testing"
)

// TestKeyTableLoad: a table bulk-loaded the way restore loads it finds every key under the
// id it was added with, goes on interning and releasing like one filled key by key, and
// names a key added twice.
func TestKeyTableLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		dup  int // index of a key repeated at the end; -1: none
	}{
		{"empty", 0, -1},
		{"one", 1, -1},
		{"below the initial size", 700, -1},
		{"many, and growing after", 200_000, -1},
		{"a duplicate", 5_000, 1234},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := func(i int) []byte { return fmt.Appendf(nil, "org-%d|site-%d", i%97, i) }
			kt := newKeyTable()
			kt.reserve(tc.n, 0)
			for i := range tc.n {
				if id := kt.add(key(i)); id != uint32(i) {
					t.Fatalf("key %d got id %d", i, id)
				}
			}
			if tc.dup >= 0 {
				kt.add(key(tc.dup))
			}
			dup := kt.load(false)
			if tc.dup >= 0 {
				if dup < 0 || string(kt.key(uint32(dup))) != string(key(tc.dup)) {
					t.Fatalf("load reported %d, want the repeated key %q", dup, key(tc.dup))
				}
				return
			}
			if dup >= 0 {
				t.Fatalf("load reported key %d as repeated", dup)
			}
			for i := range tc.n {
				if got := kt.find(key(i), hashKey(key(i))); got != i {
					t.Fatalf("find(key %d) = %d", i, got)
				}
			}
			// The loaded table goes on like any other: new keys, and releasing old ones.
			for i := tc.n; i < tc.n+1000; i++ {
				if _, added := kt.intern(key(i), hashKey(key(i))); !added {
					t.Fatalf("key %d was already there", i)
				}
			}
			for i := 0; i < tc.n; i += 2 {
				kt.entries[i].refs = 1
				kt.release(uint32(i))
			}
			for i := range tc.n + 1000 {
				want := i
				if i < tc.n && i%2 == 0 {
					want = -1
				}
				if got := kt.find(key(i), hashKey(key(i))); got != want {
					t.Fatalf("after releases, find(key %d) = %d, want %d", i, got, want)
				}
			}
		})
	}
}

// BenchmarkKeyTableLoad compares the two ways to fill a key table with a snapshot's million
// series keys: interning them one by one (what restore did, and ingest still does) and the
// bulk load restore now uses. Both sized as restore sizes them.
func BenchmarkKeyTableLoad(b *testing.B) {
	const n = 1_000_000
	keys := make([][]byte, n)
	total := 0
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "org-%04d|site-%03d|floor-%d|zone-%06d", i%97, i%300, i%7, i)
		total += len(keys[i])
	}
	b.Run("intern", func(b *testing.B) {
		for b.Loop() {
			kt := newKeyTable()
			for _, k := range keys {
				kt.intern(k, hashKey(k))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			kt := newKeyTable()
			kt.reserve(n, total)
			for _, k := range keys {
				kt.add(k)
			}
			if kt.load(false) >= 0 {
				b.Fatal("duplicate")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
}
