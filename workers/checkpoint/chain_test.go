package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
)

// A spec of every kind but distinct, whose sketches do not encode canonically: with it, a full
// snapshot is a canonical form of the state, so restored states compare byte for byte.
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
  - {fn: last, field: rssi}
  - {fn: last, field: device, type: text, name: last_device}
  - {fn: quantiles, field: rssi, quantiles: [0.5]}
outputs: [{type: stdout}]
`

type chainFixture struct {
	spec   *spec.Spec
	layout *agg.Layout
	dec    *record.Decoder
	fp     uint64
}

func newChainFixture(t *testing.T) *chainFixture {
	t.Helper()
	s, err := spec.Parse([]byte(chainSpec))
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
	return &chainFixture{spec: s, layout: l, dec: d, fp: state.Fingerprint(s, l)}
}

// feed applies n random records whose series drift, so windows close and ids are recycled.
func (f *chainFixture) feed(st *state.Store, rng *rand.Rand, now *int64, n int) {
	r := f.dec.NewRecord()
	first := int(*now/1000) % 100_000
	for range n {
		*now += int64(rng.IntN(60))
		id := first + rng.IntN(150)
		raw := fmt.Appendf(nil, `{"org":"o%d","zone":"z%d","device":"d%d","ts":%d,"rssi":%d,"dwell_ms":%d}`,
			id%13, id, rng.IntN(9), *now-int64(rng.IntN(15_000)), -30-rng.IntN(60), rng.IntN(5000))
		if f.dec.Decode(raw, 0, r) == nil {
			st.Apply(r)
		}
	}
}

// decoder restores with state.RestoreChain and keeps the store.
func (f *chainFixture) decoder(out **state.Store) Decoder {
	return States(func(states [][]byte) (int, error) {
		st, n, err := state.RestoreChain(f.spec, f.layout, nil, states)
		if errors.Is(err, state.ErrMismatch) {
			return 0, fmt.Errorf("%w: %w", ErrAbortRestore, err)
		}
		if n > 0 {
			*out = st
		}
		return n, err
	})
}

// saveLink writes the store's next link (a base or a delta) through the lease.
func (f *chainFixture) saveLink(t *testing.T, ctx context.Context, l *Lease, st *state.Store, kind Kind, offset int64) Entry {
	t.Helper()
	var data []byte
	var err error
	var parent uint32
	if kind == Base {
		data, err = st.AppendBase(nil, f.fp)
	} else {
		parent = st.ChainLink()
		data, err = st.AppendDelta(nil, f.fp)
	}
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Save(ctx, Checkpoint{Offset: offset, EmitSeq: uint64(offset), State: data, Kind: kind, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func runChainSuite(t *testing.T, open func(t *testing.T) *Store) {
	ctx := context.Background()
	key := Key{Spec: "chain", Topic: "raw", Partition: 1}

	t.Run("chains grow, a new base retires the chain before the previous one", func(t *testing.T) {
		s := open(t)
		f := newChainFixture(t)
		l, err := s.Claim(ctx, key, "w1")
		if err != nil {
			t.Fatal(err)
		}
		rng, now := rand.New(rand.NewPCG(1, 1)), int64(1767225600000)
		st := state.New(f.spec, f.layout, nil)
		var chains [][]Entry
		off := int64(0)
		for c := range 3 {
			var chain []Entry
			for i := range 4 {
				f.feed(st, rng, &now, 300)
				off += 100
				kind := Delta
				if i == 0 {
					kind = Base
				}
				chain = append(chain, f.saveLink(t, ctx, l, st, kind, off))
			}
			chains = append(chains, chain)
			m := l.Manifest()
			if m.Version != manifestVersion2 || len(m.Chain) != 4 || m.Current.Object != chain[3].Object {
				t.Fatalf("chain %d: manifest %+v", c, m)
			}
			if c > 0 && (len(m.PrevChain) != 4 || m.Previous.Object != chains[c-1][3].Object) {
				t.Fatalf("chain %d: previous chain %+v", c, m.PrevChain)
			}
		}
		for _, e := range chains[0] {
			if _, err := s.Fetch(ctx, e); err == nil {
				t.Fatalf("%s of the chain before the previous one was not retired", e.Object)
			}
		}
		for _, e := range slices.Concat(chains[1], chains[2]) {
			if _, err := s.Fetch(ctx, e); err != nil {
				t.Fatalf("%s is named by the manifest and unreadable: %v", e.Object, err)
			}
		}
		// A new owner restores the current chain whole, and may continue it.
		want, _ := st.AppendSnapshot(nil, f.fp)
		l2, err := s.Claim(ctx, key, "w2")
		if err != nil {
			t.Fatal(err)
		}
		var got *state.Store
		res, err := l2.Restore(ctx, f.decoder(&got))
		if err != nil || !res.Tip || res.Links != 4 || res.Offset != off {
			t.Fatalf("Restore = %+v, %v", res, err)
		}
		if snap, _ := got.AppendSnapshot(nil, f.fp); !bytes.Equal(snap, want) {
			t.Fatal("the restored chain holds another state")
		}
		f.feed(got, rng, &now, 100)
		f.saveLink(t, ctx, l2, got, Delta, off+100)
		if m := l2.Manifest(); len(m.Chain) != 5 || m.Chain[4].Generation != l2.Generation() || m.Chain[0].Generation != l.Generation() {
			t.Fatalf("a new owner's delta does not extend the chain: %+v", m.Chain)
		}
		// The zombie's delta is fenced, and it retires nothing.
		f.feed(st, rng, &now, 100)
		data, _ := st.AppendDelta(nil, f.fp)
		if _, err := l.Save(ctx, Checkpoint{Offset: off + 50, State: data, Kind: Delta, Parent: chains[2][3].Link}); err != nil && !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie delta: %v", err)
		} else if err == nil {
			t.Fatal("a zombie's delta was saved")
		}
		data, _ = st.AppendBase(nil, f.fp)
		if _, err := l.Save(ctx, Checkpoint{Offset: off + 60, State: data, Kind: Base}); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie base: %v", err)
		}
		for _, e := range slices.Concat(chains[1], chains[2]) {
			if _, err := s.Fetch(ctx, e); err != nil {
				t.Fatalf("after the zombie's saves, %s is unreadable: %v", e.Object, err)
			}
		}
		// A delta must extend the current chain.
		if _, err := l2.Save(ctx, Checkpoint{Offset: off + 200, State: data, Kind: Delta, Parent: 12345}); !errors.Is(err, ErrNotChained) {
			t.Fatalf("a delta on another parent: %v", err)
		}
	})

	t.Run("a base sweeps what earlier generations orphaned", func(t *testing.T) {
		s := open(t)
		f := newChainFixture(t)
		l, err := s.Claim(ctx, key, "w1")
		if err != nil {
			t.Fatal(err)
		}
		rng, now := rand.New(rand.NewPCG(2, 2)), int64(1767225600000)
		st := state.New(f.spec, f.layout, nil)
		f.feed(st, rng, &now, 200)
		f.saveLink(t, ctx, l, st, Base, 10)
		orphan := path.Join(key.dir(), "data", fmt.Sprintf("%016d-%020d-%06d.delta", l.Generation(), 20, 99))
		if err := s.b.put(ctx, orphan, []byte("died before its manifest swap")); err != nil {
			t.Fatal(err)
		}
		l2, err := s.Claim(ctx, key, "w2")
		if err != nil {
			t.Fatal(err)
		}
		own := path.Join(key.dir(), "data", fmt.Sprintf("%016d-%020d-%06d.delta", l2.Generation()+1, 30, 1))
		if err := s.b.put(ctx, own, []byte("a later generation's")); err != nil {
			t.Fatal(err)
		}
		f.saveLink(t, ctx, l2, st, Base, 40)
		names, _ := s.b.list(ctx, key.dir()+"/data/")
		if slices.Contains(names, orphan) || !slices.Contains(names, own) {
			t.Fatalf("after the sweep: %v", names)
		}
	})

	t.Run("after a fallback, the point restored is kept as the fallback and the damage goes", func(t *testing.T) {
		s := open(t)
		f := newChainFixture(t)
		l, err := s.Claim(ctx, key, "w1")
		if err != nil {
			t.Fatal(err)
		}
		rng, now := rand.New(rand.NewPCG(4, 4)), int64(1767225600000)
		st := state.New(f.spec, f.layout, nil)
		var links []Entry
		for i := range 4 {
			f.feed(st, rng, &now, 200)
			kind := Delta
			if i == 0 {
				kind = Base
			}
			links = append(links, f.saveLink(t, ctx, l, st, kind, int64(100*(i+1))))
		}
		if err := s.b.put(ctx, links[2].Object, []byte("damaged")); err != nil {
			t.Fatal(err)
		}
		l2, err := s.Claim(ctx, key, "w2")
		if err != nil {
			t.Fatal(err)
		}
		var got *state.Store
		res, err := l2.Restore(ctx, f.decoder(&got))
		if err != nil || res.Tip || res.Offset != 200 {
			t.Fatalf("Restore = %+v, %v; want the point before the damage, at 200", res, err)
		}
		f.feed(got, rng, &now, 100)
		f.saveLink(t, ctx, l2, got, Base, 300)
		m := l2.Manifest()
		if len(m.PrevChain) != 2 || m.PrevChain[1].Object != links[1].Object {
			t.Fatalf("previous chain after the fallback: %+v", m.PrevChain)
		}
		for _, e := range links[2:] {
			if _, err := s.Fetch(ctx, e); err == nil || !strings.Contains(err.Error(), "missing") {
				t.Fatalf("%s, past the damage, was kept: %v", e.Object, err)
			}
		}
	})

	t.Run("200 random damages: every one refused or fallen back from, never a wrong restore", func(t *testing.T) {
		s := open(t)
		chainDamages(t, s, key, 200)
	})
}

// chainDamages builds two chains, then damages a base or a delta in one of many ways, trial
// after trial, and checks that a new owner restores exactly the newest point before the damage
// (the state at that point, byte for byte, and its offset), or nothing when no point is left.
func chainDamages(t *testing.T, s *Store, key Key, trials int) {
	ctx := context.Background()
	f := newChainFixture(t)
	l, err := s.Claim(ctx, key, "writer")
	if err != nil {
		t.Fatal(err)
	}
	rng, now := rand.New(rand.NewPCG(3, 3)), int64(1767225600000)
	st := state.New(f.spec, f.layout, nil)
	want := map[int64][]byte{} // the full snapshot at each checkpoint's offset
	for i := range 12 {
		f.feed(st, rng, &now, 400)
		kind := Delta
		if i == 0 || i == 5 {
			kind = Base
		}
		off := int64(1000 * (i + 1))
		f.saveLink(t, ctx, l, st, kind, off)
		want[off], _ = st.AppendSnapshot(nil, f.fp)
	}
	man := l.Manifest()
	cur, prev := man.Chains()
	if len(cur) != 7 || len(prev) != 5 {
		t.Fatalf("chains of %d and %d links", len(cur), len(prev))
	}
	manName := path.Join(key.dir(), "MANIFEST")
	origMan, _, err := s.b.get(ctx, manName)
	if err != nil {
		t.Fatal(err)
	}
	orig := map[string][]byte{}
	for _, e := range slices.Concat(cur, prev) {
		if orig[e.Object], _, err = s.b.get(ctx, e.Object); err != nil {
			t.Fatal(err)
		}
	}
	// newest is the point a restore must land on when the links in bad are damaged.
	newest := func(bad map[string]bool) (int64, bool) {
		for _, chain := range [][]Entry{cur, prev} {
			n := len(chain)
			for i, e := range chain {
				if bad[e.Object] {
					n = i
					break
				}
			}
			if n > 0 {
				return chain[n-1].Offset, true
			}
		}
		return 0, false
	}
	// rewriteEntry makes the manifest's size and CRC-32C agree with a replaced object, so that
	// only the link checksum and the state's own checks can see the damage.
	// With link, the link checksum too: then only the state's own checks are left.
	rewriteEntry := func(m *Manifest, obj string, data []byte, link bool) {
		for _, ch := range [][]Entry{m.Chain, m.PrevChain} {
			for i := range ch {
				if ch[i].Object == obj {
					ch[i].Size, ch[i].CRC32C = int64(len(data)), crc32.Checksum(data, castagnoli)
					if link {
						ch[i].Link = binary.LittleEndian.Uint32(data[len(data)-4:])
					}
				}
			}
		}
	}
	kinds := map[string]int{}
	fellBack, refused := 0, 0
	for trial := range trials {
		links := slices.Concat(cur, prev)
		targets := []Entry{links[rng.IntN(len(links))]}
		if rng.IntN(4) == 0 {
			targets = append(targets, cur[0]) // the current base too: the previous chain must serve
		}
		m := man
		m.Chain, m.PrevChain = slices.Clone(man.Chain), slices.Clone(man.PrevChain)
		bad := map[string]bool{}
		var what []string
		for _, e := range targets {
			data := slices.Clone(orig[e.Object])
			kind := rng.IntN(7)
			switch kind {
			case 0: // a flipped byte
				data[rng.IntN(len(data))] ^= byte(1 + rng.IntN(255))
			case 1: // truncated
				data = data[:rng.IntN(len(data))]
			case 2: // garbage appended
				data = append(data, "garbage"...)
			case 3: // deleted
				data = nil
			case 4: // another link's bytes in its place
				oi := rng.IntN(len(links))
				if links[oi].Object == e.Object {
					oi = (oi + 1) % len(links)
				}
				other := links[oi]
				data = slices.Clone(orig[other.Object])
			case 5: // another link's bytes, and a manifest whose size and CRC-32C agree (a
				// collision): the link checksum and the chain's order checks must see it
				oi := rng.IntN(len(links))
				if links[oi].Object == e.Object {
					oi = (oi + 1) % len(links)
				}
				other := links[oi]
				data = slices.Clone(orig[other.Object])
				// For a delta, the link checksum agrees too: the delta's parent, base and
				// sequence must still refuse it. (A base swapped for another base with every
				// checksum agreeing is what a writer wrote, not damage.)
				rewriteEntry(&m, e.Object, data, e.Kind == Delta)
			case 6: // cut short with the checksums fixed, the state's own and the manifest's: a
				// writer that lost the end of its buffer. (A changed value with forged checksums
				// is valid data to any reader; no check can see it, so it is not tried.)
				body := slices.Clone(data[:1+rng.IntN(len(data)-5)])
				data = binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
				rewriteEntry(&m, e.Object, data, true)
			}
			kinds[fmt.Sprint(kind)]++
			what = append(what, fmt.Sprintf("%s damage %d", path.Base(e.Object), kind))
			if data == nil {
				if err := s.b.remove(ctx, e.Object, -1); err != nil {
					t.Fatal(err)
				}
			} else if err := s.b.put(ctx, e.Object, data); err != nil {
				t.Fatal(err)
			}
			bad[e.Object] = true
		}
		body, _ := json.Marshal(m)
		if err := s.b.put(ctx, manName, body); err != nil {
			t.Fatal(err)
		}

		rl, err := s.Claim(ctx, key, fmt.Sprintf("restorer-%d", trial))
		if err != nil {
			t.Fatal(err)
		}
		var got *state.Store
		res, err := rl.Restore(ctx, f.decoder(&got))
		wantOff, any := newest(bad)
		switch {
		case !any:
			if err == nil {
				t.Fatalf("trial %d (%s): restored offset %d with every point damaged", trial, strings.Join(what, ", "), res.Offset)
			}
			refused++
		case err != nil:
			// A damage that passes every check would be a wrong restore; one that is caught
			// leaves an older point, never none.
			t.Fatalf("trial %d (%s): no restore, want offset %d: %v", trial, strings.Join(what, ", "), wantOff, err)
		default:
			snap, _ := got.AppendSnapshot(nil, f.fp)
			if res.Offset != wantOff || !bytes.Equal(snap, want[res.Offset]) {
				t.Fatalf("trial %d (%s): restored offset %d (state matches its offset: %v), want %d",
					trial, strings.Join(what, ", "), res.Offset, bytes.Equal(snap, want[res.Offset]), wantOff)
			}
			if tip := !bad[cur[len(cur)-1].Object] && wantOff == cur[len(cur)-1].Offset; res.Tip != tip {
				t.Fatalf("trial %d: restore says tip %v, want %v", trial, res.Tip, tip)
			}
			fellBack++
		}
		// Undo the damage for the next trial.
		for _, e := range targets {
			if err := s.b.put(ctx, e.Object, orig[e.Object]); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.b.put(ctx, manName, origMan); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d damages: %d fell back to an older point (state verified), %d refused; damage kinds %v", trials, fellBack, refused, kinds)
}
