package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/spec"
)

// NoTime is the watermark of a store that has seen no record yet.
const NoTime int64 = noTime

// ErrNotMigratable is wrapped by Migrate when the change from the snapshot's spec to the new
// one is not a migration in place (spec.Diff says what it is instead).
var ErrNotMigratable = errors.New("state cannot be migrated in place")

// Migrate restores a snapshot written under spec old and carries it over to spec new, which
// spec.Diff must rate ActionNone or ActionMigrate: same key, windows and input, aggregations
// added, removed, renamed or reordered. Every series and open window is kept; each kept
// aggregation's state moves to its new place, a removed one's is dropped, and an added one
// starts empty in every open window (so there it holds only what is applied after the
// switch), except count, which is the window's record count for every aggregation, and a sum
// or avg that shares a kept running sum of its field.
//
// The watermark, the newest time and the counters carry over too, so the migrated store
// decides lateness and closes windows exactly as the old one would have.
func Migrate(old, new *spec.Spec, data []byte, emit EmitFunc) (*Store, error) {
	p := spec.Diff(old, new)
	if p.Action != spec.ActionNone && p.Action != spec.ActionMigrate {
		return nil, fmt.Errorf("%w: %s", ErrNotMigratable, p.Summary())
	}
	lo, err := agg.LayoutOf(old)
	if err != nil {
		return nil, fmt.Errorf("migrate: layout of the checkpoint's spec: %w", err)
	}
	ln, err := agg.LayoutOf(new)
	if err != nil {
		return nil, fmt.Errorf("migrate: layout of the spec: %w", err)
	}
	src, err := Restore(old, lo, nil, data)
	if err != nil {
		return nil, err
	}
	return migrateStore(src, new, ln, p.Kept, emit)
}

// MigrateStore is Migrate of a store already restored under spec old (from a chain of
// incremental checkpoints, say).
func MigrateStore(src *Store, old, new *spec.Spec, emit EmitFunc) (*Store, error) {
	p := spec.Diff(old, new)
	if p.Action != spec.ActionNone && p.Action != spec.ActionMigrate {
		return nil, fmt.Errorf("%w: %s", ErrNotMigratable, p.Summary())
	}
	ln, err := agg.LayoutOf(new)
	if err != nil {
		return nil, fmt.Errorf("migrate: layout of the spec: %w", err)
	}
	return migrateStore(src, new, ln, p.Kept, emit)
}

// columnSource says, per function of the new layout, which function of the old layout its
// state comes from (-1: none, it starts empty). Functions that share another's running sum
// get -1 too: the owner of the column brings it.
func columnSources(lo, ln *agg.Layout, kept map[int]int) []int {
	src := make([]int, len(ln.Funcs))
	for i, f := range ln.Funcs {
		src[i] = -1
		if shared(ln, i) {
			continue
		}
		if j, ok := kept[i]; ok {
			src[i] = j
			continue
		}
		if f.Kind == agg.Sum || f.Kind == agg.Avg {
			// An added sum or avg owning its column: a kept sum or avg of the same field
			// already holds the running sum of the whole window.
			for ni, j := range kept {
				g := ln.Funcs[ni]
				if (g.Kind == agg.Sum || g.Kind == agg.Avg) && g.Field == f.Field {
					src[i] = j
					break
				}
			}
		}
	}
	return src
}

// shared says whether function i of l reads a running sum an earlier function owns.
func shared(l *agg.Layout, i int) bool {
	f := l.Funcs[i]
	if f.Kind != agg.Sum && f.Kind != agg.Avg {
		return false
	}
	for _, g := range l.Funcs[:i] {
		if (g.Kind == agg.Sum || g.Kind == agg.Avg) && g.Off == f.Off {
			return true
		}
	}
	return false
}

func migrateStore(old *Store, s *spec.Spec, ln *agg.Layout, kept map[int]int, emit EmitFunc) (*Store, error) {
	lo := old.layout
	st := New(s, ln, emit)
	st.watermark, st.maxTime = old.watermark, old.maxTime
	st.late, st.records, st.emitted = old.late, old.records, old.emitted
	if len(st.sizes) != len(old.sizes) {
		return nil, fmt.Errorf("%w: %d window sizes, the snapshot has %d", ErrNotMigratable, len(st.sizes), len(old.sizes))
	}
	sources := columnSources(lo, ln, kept)
	scratch := new([]byte) // one buffer for every sketch's encoding
	// Every live series is interned at once, as Restore does: ids maps an old id to its new one.
	ids := make([]uint32, len(old.keys.entries))
	st.keys.reserve(len(old.keys.entries), len(old.keys.arena))
	for oid, e := range old.keys.entries {
		if e.refs > 0 {
			ids[oid] = st.keys.add(old.keys.key(uint32(oid)))
		}
	}
	if dup := st.keys.load(false); dup >= 0 {
		return nil, fmt.Errorf("%w: series %q twice in the snapshot", ErrCorrupt, st.keys.key(uint32(dup)))
	}
	st.cursors = make([]cursor, len(st.keys.entries)*len(st.sizes))
	for si := range old.sizes {
		osz, nsz := &old.sizes[si], &st.sizes[si]
		if osz.size != nsz.size {
			return nil, fmt.Errorf("%w: window %d is %dms, the snapshot's %dms", ErrNotMigratable, si, nsz.size, osz.size)
		}
		for _, ob := range osz.open {
			nb := st.bucketFor(nsz, ob.start)
			for pos := range uint32(ob.n) {
				id := ids[old.seriesAt(ob, pos)]
				npos := st.addSlot(nb, id)
				st.cursors[int(id)*len(st.sizes)+si] = cursor{seq: nb.seq, pos: npos}
				if err := moveSlot(ln, lo, st.slot(nb, npos), old.slot(ob, pos), sources, st.pool, scratch); err != nil {
					return nil, fmt.Errorf("migrate window %d+%d: %w", ob.start, osz.size, err)
				}
			}
		}
	}
	return st, nil
}

// moveSlot copies an old slot's kept state into an initialised new slot.
func moveSlot(ln, lo *agg.Layout, ns, os agg.Slot, sources []int, pool *agg.Pool, scratch *[]byte) error {
	ns.Vals[0] = os.Vals[0]
	if ns.LastOff != nil && os.LastOff != nil {
		*ns.LastOff = *os.LastOff
	}
	for i := range ln.Funcs {
		j := sources[i]
		if j < 0 {
			continue
		}
		f, g := &ln.Funcs[i], &lo.Funcs[j]
		switch f.Kind {
		case agg.Count:
		case agg.Sum, agg.Avg, agg.Min, agg.Max:
			ns.Vals[f.Off] = os.Vals[g.Off]
		case agg.Last:
			if f.Text >= 0 {
				ns.Text[f.Text] = os.Text[g.Text]
			} else {
				ns.Vals[f.Off] = os.Vals[g.Off]
			}
		case agg.Distinct:
			copy(ns.Small[f.SmallOff:f.SmallOff+agg.SmallN], os.Small[g.SmallOff:g.SmallOff+agg.SmallN])
			if sk := os.HLL[g.Sketch]; sk != nil {
				enc, err := sk.AppendBinary((*scratch)[:0])
				if err != nil {
					return fmt.Errorf("%s: encode: %w", f.Name, err)
				}
				*scratch = enc
				if err := pool.DecodeSketch(f, ns, enc); err != nil {
					return err
				}
			}
		case agg.Quantiles:
			copy(ns.Vals[f.Off:f.Off+agg.SmallN], os.Vals[g.Off:g.Off+agg.SmallN])
			if sk := os.DDS[g.Sketch]; sk != nil {
				*scratch = (*scratch)[:0]
				sk.Encode(scratch, true)
				if err := pool.DecodeSketch(f, ns, *scratch); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// SnapshotTimes reads the watermark and the newest time (ms) from a snapshot's header, without
// restoring it: enough to place the switch to a new version.
func SnapshotTimes(data []byte) (watermark, maxTime int64, err error) {
	if len(data) < headerLen+4 || string(data[:4]) != snapMagic {
		return 0, 0, fmt.Errorf("%w: not a liveagg state snapshot", ErrCorrupt)
	}
	return int64(binary.LittleEndian.Uint64(data[14:])), int64(binary.LittleEndian.Uint64(data[22:])), nil
}

// SnapshotFingerprint is the format fingerprint a snapshot was written with (Fingerprint of its
// spec), read from its header.
func SnapshotFingerprint(data []byte) (uint64, bool) {
	if len(data) < headerLen+4 || string(data[:4]) != snapMagic {
		return 0, false
	}
	return binary.LittleEndian.Uint64(data[6:]), true
}

// RebuildStart is where a new version whose state cannot be carried over starts its windows,
// given the old version's window sizes and its watermark at the switch (ms): the latest instant
// that is a window boundary of every new size and at or before the start of the old version's
// window holding the watermark, for every old size. Every old window starting before it had
// closed at the switch, and every new window starting at or after it can be rebuilt whole from
// the records from there on. A watermark before any record (math.MinInt64) gives MinInt64: the
// new version has no history to rebuild.
func RebuildStart(oldWindows, newWindows []spec.Duration, watermark int64) int64 {
	if watermark == noTime {
		return noTime
	}
	b := watermark
	for _, w := range oldWindows {
		b = min(b, watermark-mod(watermark, w.Millis()))
	}
	l := int64(1)
	for _, w := range newWindows {
		l = lcm(l, w.Millis())
	}
	return b - mod(b, l)
}

// NewFrom returns an empty store for the first windows of a new version that starts at from
// (ms, see RebuildStart): records with an earlier event time are not the new version's and
// Apply rejects them as late.
func NewFrom(s *spec.Spec, layout *agg.Layout, emit EmitFunc, from int64) *Store {
	st := New(s, layout, emit)
	if from != noTime {
		st.watermark = from
	}
	return st
}

func lcm(a, b int64) int64 {
	g, x := a, b
	for x != 0 {
		g, x = x, g%x
	}
	return a / g * b
}
