package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Every aggregation kind, a text last among them, over two window sizes, keyed so that series
// come and go.
const chainSpec = `
name: chain
input: {topic: raw, time_field: ts}
key: [org, zone]
windows: [1m, 5m]
allowed_lateness: 20s
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: max, field: rssi}
  - {fn: avg, field: rssi}
  - {fn: last, field: rssi}
  - {fn: last, field: device, type: text, name: last_device}
  - {fn: distinct, field: device}
  - {fn: quantiles, field: rssi, quantiles: [0.5, 0.9]}
outputs: [{type: stdout}]
`

// churn generates records whose series drift: each batch draws from a window of series ids
// that slides on, so series leave every open window (their ids are freed) and come back later
// (interned again, under another id). Times jitter backwards, some beyond the lateness.
type churn struct {
	rng   *rand.Rand
	now   int64
	first int // lowest live series id
}

func (c *churn) batch(n, width int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		c.now += int64(c.rng.IntN(40))
		id := c.first + c.rng.IntN(width)
		if c.rng.IntN(50) == 0 {
			id = c.rng.IntN(c.first + 1) // an old series returns
		}
		ts := c.now - int64(c.rng.IntN(25_000))
		out[i] = fmt.Appendf(nil, `{"org":"o%d","zone":"z%d","device":"d%d","ts":%d,"rssi":%d,"dwell_ms":%d}`,
			id%97, id, c.rng.IntN(12), ts, -30-c.rng.IntN(60), c.rng.IntN(5000))
	}
	c.first += c.rng.IntN(width/4 + 1)
	return out
}

// emitted records closed windows as text, in emission order.
type emitted struct{ rows []string }

func (e *emitted) emit(w *Window) {
	for i := range w.Len() {
		e.rows = append(e.rows, fmt.Sprintf("%d/%d/%s %v %q", w.Size, w.Start, w.Key(i),
			w.Results(i, nil), w.Layout().Texts(w.Slot(i), nil)))
	}
}

// A chain (a base and the deltas after it) restores exactly the state a full snapshot taken
// at its last link holds, byte for byte, over random workloads with windows closing, series
// freed and interned again, text lasts and sketches; a store restored from a chain continues
// it, and emits the same windows as one that never checkpointed.
func TestChainEqualsFullSnapshot(t *testing.T) {
	f := newFixture(t, chainSpec)
	fp := Fingerprint(f.spec, f.layout)
	for _, tc := range []struct {
		name        string
		seed        uint64
		width       int // live series at a time
		batch       int // records between two links
		baseEvery   int // a new base every so many links (0: one base)
		swapRestore int // continue from the restored store one link in so many
	}{
		{"few series, long chain", 1, 40, 300, 0, 3},
		{"many series, new bases", 2, 3000, 2000, 7, 2},
		{"idle links", 3, 200, 3, 0, 4},
		{"heavy churn", 4, 500, 4000, 5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 7))
			c := &churn{rng: rng, now: 1767225600000}
			var refOut, out emitted
			ref := New(f.spec, f.layout, refOut.emit) // never checkpointed
			st := New(f.spec, f.layout, out.emit)
			feed := func(recs [][]byte) {
				r := f.dec.NewRecord()
				for _, raw := range recs {
					if f.dec.Decode(raw, 0, r) == nil {
						ref.Apply(r)
						st.Apply(r)
					}
				}
			}
			feed(c.batch(tc.batch, tc.width))
			base, err := st.AppendBase(nil, fp)
			if err != nil {
				t.Fatal(err)
			}
			links := [][]byte{base}
			for step := 1; step <= 40; step++ {
				feed(c.batch(rng.IntN(tc.batch+1), tc.width))
				if rng.IntN(6) == 0 {
					wm := ref.Watermark() + int64(rng.IntN(90_000))
					ref.AdvanceWatermark(wm)
					st.AdvanceWatermark(wm)
				}
				var link []byte
				if tc.baseEvery > 0 && step%tc.baseEvery == 0 {
					link, err = st.AppendBase(nil, fp)
					links = links[:0]
				} else {
					link, err = st.AppendDelta(nil, fp)
				}
				if err != nil {
					t.Fatal(err)
				}
				links = append(links, link)
				want := dump(ref)
				if live := dump(st); live != want {
					t.Fatalf("step %d: the chained store's own snapshot differs from the reference", step)
				}
				got, n, err := RestoreChain(f.spec, f.layout, out.emit, links)
				if err != nil || n != len(links) {
					t.Fatalf("step %d: restored %d of %d links: %v", step, n, len(links), err)
				}
				if d := dump(got); d != want {
					t.Fatalf("step %d: base + %d deltas restore another state than the reference's (%d vs %d bytes of dump, first difference at %d)",
						step, len(links)-1, len(d), len(want), firstDiffByte([]byte(d), []byte(want)))
				}
				// And the chain holds what a full snapshot at this point holds.
				full, _ := st.AppendSnapshot(nil, fp)
				if fromFull, err := Restore(f.spec, f.layout, nil, full); err != nil || dump(fromFull) != want {
					t.Fatalf("step %d: the full snapshot restores another state: %v", step, err)
				}
				if g, w := logical(got.Stats()), logical(ref.Stats()); g != w {
					t.Fatalf("step %d: stats %+v, want %+v", step, g, w)
				}
				if rng.IntN(tc.swapRestore) == 0 {
					st = got // go on from the restored store: its deltas continue the chain
				}
			}
			ref.Flush()
			st.Flush()
			if len(refOut.rows) == 0 || !slices.Equal(out.rows, refOut.rows) {
				t.Fatalf("emitted %d rows through restores, %d without; first difference at %d",
					len(out.rows), len(refOut.rows), firstDiff(out.rows, refOut.rows))
			}
		})
	}
}

// dump is a store's logical state as text: its counters and watermark, and per open window
// (in order) every slot in position order with its series key, its results (sketches as their
// estimates), texts and last offset. A full snapshot is no canonical form of it: a sketch
// that went through its encoding (as every restored one did) may encode differently, with the
// same contents.
func dump(st *Store) string {
	var b strings.Builder
	fmt.Fprintf(&b, "wm %d max %d late %d records %d emitted %d\n", st.watermark, st.maxTime, st.late, st.records, st.emitted)
	for si := range st.sizes {
		for _, bk := range st.sizes[si].open {
			fmt.Fprintf(&b, "window %d+%d: %d slots\n", bk.start, st.sizes[si].size, bk.n)
			for pos := range uint32(bk.n) {
				s := st.slot(bk, pos)
				last := uint32(0)
				if s.LastOff != nil {
					last = *s.LastOff
				}
				fmt.Fprintf(&b, "  %q %v %q %d\n", st.keys.key(st.seriesAt(bk, pos)), st.layout.Results(s, nil), st.layout.Texts(s, nil), last)
			}
		}
	}
	return b.String()
}

// logical is a store's stats without its memory, which depends on its history.
func logical(s Stats) Stats {
	s.Bytes, s.KeyBytes = 0, 0
	return s
}

func firstDiffByte(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// chainWithPoints builds a chain of n deltas on a base and the full snapshot at every point.
func chainWithPoints(t *testing.T, f *fixture, seed uint64, n int) (links [][]byte, wants []string) {
	t.Helper()
	fp := Fingerprint(f.spec, f.layout)
	c := &churn{rng: rand.New(rand.NewPCG(seed, 9)), now: 1767225600000}
	st := New(f.spec, f.layout, nil)
	r := f.dec.NewRecord()
	feed := func(recs [][]byte) {
		for _, raw := range recs {
			if f.dec.Decode(raw, 0, r) == nil {
				st.Apply(r)
			}
		}
	}
	for i := 0; i <= n; i++ {
		feed(c.batch(800, 300))
		var link []byte
		var err error
		if i == 0 {
			link, err = st.AppendBase(nil, fp)
		} else {
			link, err = st.AppendDelta(nil, fp)
		}
		if err != nil {
			t.Fatal(err)
		}
		links, wants = append(links, link), append(wants, dump(st))
	}
	return links, wants
}

// A damaged, missing or misplaced delta is refused and the restore stops at the link before
// it, with that point's exact state; a damaged base restores nothing.
func TestChainFallsBackBeforeDamage(t *testing.T) {
	f := newFixture(t, chainSpec)
	fp := Fingerprint(f.spec, f.layout)
	links, wants := chainWithPoints(t, f, 5, 8)
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 60 {
		bad := slices.Clone(links)
		at := rng.IntN(len(bad))
		var what string
		switch trial % 4 {
		case 0:
			what = "a flipped byte"
			b := slices.Clone(bad[at])
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			bad[at] = b
		case 1:
			what = "a truncated link"
			bad[at] = bad[at][:rng.IntN(len(bad[at]))]
		case 2:
			if at == 0 {
				at = 1
			}
			what = "a missing delta"
			bad = slices.Delete(bad, at, at+1)
		case 3:
			if at == 0 {
				at = 1
			}
			if at == len(bad)-1 {
				at--
			}
			what = "two deltas swapped"
			bad[at], bad[at+1] = bad[at+1], bad[at]
		}
		st, n, err := RestoreChain(f.spec, f.layout, nil, bad)
		if at == 0 {
			if st != nil || err == nil {
				t.Fatalf("trial %d: %s in the base: restored %d links, err %v", trial, what, n, err)
			}
			continue
		}
		if what == "a missing delta" && at == len(links)-1 {
			// The chain ends a link earlier: a shorter chain, whole, of the point before.
			if err != nil || n != at || dump(st) != wants[at-1] {
				t.Fatalf("trial %d: the chain without its last delta: %d links, %v", trial, n, err)
			}
			continue
		}
		if st == nil || n != at || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("trial %d: %s at link %d: restored %d links, err %v", trial, what, at, n, err)
		}
		if dump(st) != wants[at-1] {
			t.Fatalf("trial %d: %s at link %d: the fallback state is not the state at link %d", trial, what, at, at-1)
		}
		if st.HasChain() {
			t.Fatalf("trial %d: a store restored short of its chain's end would add deltas to it", trial)
		}
		if _, err := st.AppendDelta(nil, fp); !errors.Is(err, ErrNoBase) {
			t.Fatalf("trial %d: AppendDelta after a fallback: %v", trial, err)
		}
	}
}

// A chain is only ever restored for the spec shape that wrote it, and a full snapshot takes no
// deltas.
func TestChainRefusesOtherSpecAndMixedLinks(t *testing.T) {
	f := newFixture(t, chainSpec)
	links, _ := chainWithPoints(t, f, 6, 2)
	other := newFixture(t, strings.Replace(chainSpec, "[1m, 5m]", "[1m, 10m]", 1))
	if _, _, err := RestoreChain(other.spec, other.layout, nil, links); !errors.Is(err, ErrMismatch) {
		t.Fatalf("another spec's chain: %v, want ErrMismatch", err)
	}
	full, _ := New(f.spec, f.layout, nil).AppendSnapshot(nil, Fingerprint(f.spec, f.layout))
	if _, n, err := RestoreChain(f.spec, f.layout, nil, [][]byte{full, links[1]}); n != 1 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a delta on a full snapshot: %d links, %v", n, err)
	}
	if _, _, err := RestoreChain(f.spec, f.layout, nil, links[1:]); err == nil {
		t.Fatal("a chain starting with a delta restored")
	}
	for i, l := range links {
		h, err := ReadLink(l)
		if err != nil || (i == 0) != (h.Kind == "base") || h.Seq != uint32(i) {
			t.Fatalf("link %d: %+v, %v", i, h, err)
		}
		if i > 0 {
			prev, _ := ReadLink(links[i-1])
			if h.Parent != prev.Checksum {
				t.Fatalf("link %d names parent %08x, the link before is %08x", i, h.Parent, prev.Checksum)
			}
		}
	}
}

// EncodedSize sizes a snapshot's buffer: never far below what the encodings take (the buffer
// would grow by doubling) nor far above (it would hold memory for nothing; sketches, whose
// sizes are not exposed, are counted high).
func TestEncodedSizeIsClose(t *testing.T) {
	for _, doc := range []string{chainSpec, strings.Replace(chainSpec, "  - {fn: distinct, field: device}\n", "", 1)} {
		f := newFixture(t, doc)
		fp := Fingerprint(f.spec, f.layout)
		c := &churn{rng: rand.New(rand.NewPCG(8, 8)), now: 1767225600000}
		st := New(f.spec, f.layout, nil)
		r := f.dec.NewRecord()
		for range 5 {
			for _, raw := range c.batch(5000, 2000) {
				if f.dec.Decode(raw, 0, r) == nil {
					st.Apply(r)
				}
			}
			est := st.EncodedSize()
			full, _ := st.AppendSnapshot(nil, fp)
			base, _ := st.AppendBase(nil, fp)
			for _, got := range []int{len(full), len(base)} {
				if ratio := float64(est) / float64(got); ratio < 0.9 || ratio > 2 {
					t.Fatalf("estimate %d for %d bytes (%.2f)", est, got, ratio)
				}
			}
		}
	}
}
