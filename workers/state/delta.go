package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"slices"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/spec"
)

// Incremental snapshots, format version 2: a base holds the whole state, as a full snapshot
// does, and each delta holds only what changed since the base or delta before it. A chain (a
// base and its deltas, in order) restores exactly the state a full snapshot taken at the last
// delta would, so a checkpoint of a store where few series moved costs what they cost.
//
// Unlike a full snapshot, a chain keeps the store's own series ids and slot positions: a delta
// names a changed slot by its window and position, and a series by its id, which is what makes
// it small and its restore a copy into place rather than a lookup per series. Positions are
// stable because an open window only ever appends slots; ids are recycled when a series leaves
// every window, so a delta lists every id interned or freed since the link before it.
//
// Format (integers little-endian, as in version 1):
//
//	"LAGS" | u16 2 | u64 format fingerprint | u8 kind (1 base, 2 delta)
//	uvarint header length | header: u32 parent | u32 base | uvarint seq | (later fields)
//	i64 watermark | i64 max event time | i64 late | i64 records | i64 emitted
//	uvarint #ids
//	base:  per id: uvarint key length+1 (0: a free id), key bytes
//	delta: uvarint #changed ids, then per id (ascending): uvarint id, uvarint key length+1, key bytes
//	per window size (spec order): uvarint #open windows, then per window (by start):
//	  base:  i64 start | uvarint #slots | #slots × u32 series id | columns of every slot (as in version 1)
//	  delta: i64 start | uvarint slots in the previous link + 1 (0: a window new since) | uvarint #slots
//	         | new slots × u32 series id | uvarint #changed old slots | their u32 positions (ascending)
//	         | columns of the changed old slots then the new ones, each column in that order
//	u32 CRC-32C of everything before it
//
// parent is the checksum (the trailing CRC-32C) of the link the delta applies to, base that of
// the chain's base, seq the delta's place in the chain (1 for the first): a delta applied to
// anything but its parent is refused, so a chain cannot be restored out of order or with a
// link missing. A window of an earlier link that a delta does not list has closed. The header
// carries its length so that later versions can add fields older readers skip.

const (
	snapVersion2      = 2
	kindBase     byte = 1
	kindDelta    byte = 2
)

// ErrNoBase is returned by AppendDelta when the store has no chain to add to: it was never
// snapshotted with AppendBase, or was restored from a full snapshot, or ForgetChain was called.
var ErrNoBase = errors.New("no base snapshot to take a delta of")

// incremental is the store's chain: where the next delta attaches.
type incremental struct {
	on     bool   // a base was taken or restored: changes are tracked
	link   uint32 // checksum of the newest link, the next delta's parent
	base   uint32 // checksum of the chain's base
	deltas uint32 // deltas on the base
	list   []uint32
}

// HasChain reports whether AppendDelta can take a delta: the store took or restored a base.
func (st *Store) HasChain() bool { return st.inc.on }

// ChainLen is the number of deltas on the store's base.
func (st *Store) ChainLen() int { return int(st.inc.deltas) }

// ForgetChain makes the store forget its chain, so that its next incremental snapshot must be
// a base: a restore that fell back to an older point of a chain must not add deltas to it.
func (st *Store) ForgetChain() {
	st.inc = incremental{list: st.inc.list}
	st.keys.track, st.keys.dirty = false, nil
	for si := range st.sizes {
		for _, b := range st.sizes[si].open {
			b.known, b.clean, b.dirty = false, 0, nil
		}
	}
}

// markClean starts tracking changes from now: every slot and id is in the link just taken.
func (st *Store) markClean(link uint32) {
	st.inc.on, st.inc.link = true, link
	st.keys.track = true
	words := (len(st.keys.entries) + 63) / 64
	if cap(st.keys.dirty) >= words {
		st.keys.dirty = st.keys.dirty[:words]
		clear(st.keys.dirty)
	} else {
		st.keys.dirty = make([]uint64, words)
	}
	for si := range st.sizes {
		for _, b := range st.sizes[si].open {
			b.known, b.clean = true, uint32(b.n)
			words := (b.n + 63) / 64
			if cap(b.dirty) >= words {
				b.dirty = b.dirty[:words]
				clear(b.dirty)
			} else {
				b.dirty = make([]uint64, words)
			}
		}
	}
}

func appendHeader2(dst []byte, fp uint64, kind byte, parent, base, seq uint32) []byte {
	dst = append(dst, snapMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, snapVersion2)
	dst = binary.LittleEndian.AppendUint64(dst, fp)
	dst = append(dst, kind)
	var h [16]byte
	hb := binary.LittleEndian.AppendUint32(h[:0], parent)
	hb = binary.LittleEndian.AppendUint32(hb, base)
	hb = binary.AppendUvarint(hb, uint64(seq))
	dst = binary.AppendUvarint(dst, uint64(len(hb)))
	return append(dst, hb...)
}

func (st *Store) appendScalars(dst []byte) []byte {
	for _, v := range []int64{st.watermark, st.maxTime, st.late, st.records, st.emitted} {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
	}
	return dst
}

func appendEntry(dst []byte, t *keyTable, id uint32) []byte {
	if t.entries[id].refs == 0 {
		return binary.AppendUvarint(dst, 0) // free
	}
	k := t.key(id)
	dst = binary.AppendUvarint(dst, uint64(len(k))+1)
	return append(dst, k...)
}

// AppendBase appends a base snapshot of the store to dst and starts a chain on it: from now on
// the store tracks what changes, for AppendDelta. fp is Fingerprint of the store's spec.
func (st *Store) AppendBase(dst []byte, fp uint64) ([]byte, error) {
	start := len(dst)
	dst = appendHeader2(dst, fp, kindBase, 0, 0, 0)
	dst = st.appendScalars(dst)
	dst = binary.AppendUvarint(dst, uint64(len(st.keys.entries)))
	for id := range st.keys.entries {
		dst = appendEntry(dst, st.keys, uint32(id))
	}
	for si := range st.sizes {
		sz := &st.sizes[si]
		dst = binary.AppendUvarint(dst, uint64(len(sz.open)))
		for _, b := range sz.open {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(b.start))
			dst = binary.AppendUvarint(dst, uint64(b.n))
			for ci, c := range b.chunks {
				dst = appendUint32s(dst, c.series[:chunkUsed(b, ci)])
			}
			var err error
			if dst, err = st.appendColumns(dst, b); err != nil {
				return nil, err
			}
		}
	}
	sum := crc32.Checksum(dst[start:], castagnoli)
	dst = binary.LittleEndian.AppendUint32(dst, sum)
	st.markClean(sum)
	st.inc.base, st.inc.deltas = sum, 0
	return dst, nil
}

// AppendDelta appends to dst what changed in the store since its last base or delta: the
// counters and watermark, the ids interned or freed, and per open window its new slots and the
// old ones updated; a window it does not list has closed. It returns ErrNoBase when the store
// has no chain.
func (st *Store) AppendDelta(dst []byte, fp uint64) ([]byte, error) {
	if !st.inc.on {
		return nil, ErrNoBase
	}
	start := len(dst)
	dst = appendHeader2(dst, fp, kindDelta, st.inc.link, st.inc.base, st.inc.deltas+1)
	dst = st.appendScalars(dst)
	dst = binary.AppendUvarint(dst, uint64(len(st.keys.entries)))
	dirty := st.keys.dirty
	changed := 0
	for _, w := range dirty {
		changed += bits.OnesCount64(w)
	}
	dst = binary.AppendUvarint(dst, uint64(changed))
	for wi, w := range dirty {
		for w != 0 {
			id := uint32(wi*64 + bits.TrailingZeros64(w))
			w &= w - 1
			dst = binary.AppendUvarint(dst, uint64(id))
			dst = appendEntry(dst, st.keys, id)
		}
	}
	for si := range st.sizes {
		sz := &st.sizes[si]
		dst = binary.AppendUvarint(dst, uint64(len(sz.open)))
		for _, b := range sz.open {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(b.start))
			prev := uint64(0)
			if b.known {
				prev = uint64(b.clean) + 1
			}
			dst = binary.AppendUvarint(dst, prev)
			dst = binary.AppendUvarint(dst, uint64(b.n))
			for pos := b.clean; pos < uint32(b.n); pos++ {
				dst = binary.LittleEndian.AppendUint32(dst, st.seriesAt(b, pos))
			}
			list := st.inc.list[:0]
			for wi, w := range b.dirty {
				for w != 0 {
					list = append(list, uint32(wi*64+bits.TrailingZeros64(w)))
					w &= w - 1
				}
			}
			dst = binary.AppendUvarint(dst, uint64(len(list)))
			for _, pos := range list {
				dst = binary.LittleEndian.AppendUint32(dst, pos)
			}
			for pos := b.clean; pos < uint32(b.n); pos++ {
				list = append(list, pos)
			}
			st.inc.list = list
			var err error
			if dst, err = st.appendListed(dst, b, list); err != nil {
				return nil, err
			}
		}
	}
	sum := crc32.Checksum(dst[start:], castagnoli)
	dst = binary.LittleEndian.AppendUint32(dst, sum)
	st.markClean(sum)
	st.inc.deltas++
	return dst, nil
}

// appendListed appends the slots of b at the listed positions, column by column.
func (st *Store) appendListed(dst []byte, b *bucket, list []uint32) ([]byte, error) {
	l := st.layout
	for _, pos := range list {
		dst = appendFloats(dst, st.slot(b, pos).Vals)
	}
	if l.HasLast {
		for _, pos := range list {
			dst = binary.LittleEndian.AppendUint32(dst, *st.slot(b, pos).LastOff)
		}
	}
	for _, pos := range list {
		dst = appendUint64s(dst, st.slot(b, pos).Small)
	}
	if l.NumHLL+l.NumDDS > 0 {
		var err error
		for _, pos := range list {
			if dst, st.scratch, err = l.AppendSketches(dst, st.scratch, st.slot(b, pos)); err != nil {
				return nil, fmt.Errorf("delta: %w", err)
			}
		}
	}
	if l.NumText > 0 {
		for _, pos := range list {
			dst = l.AppendTexts(dst, st.slot(b, pos))
		}
	}
	return dst, nil
}

// Link describes one snapshot of a chain, as read from its header.
type Link struct {
	// Version is the snapshot format: 1 for a full snapshot, 2 for a base or delta.
	Version int
	// Kind is "full", "base" or "delta".
	Kind string
	// Checksum is the snapshot's own (its trailing CRC-32C); a delta names its parent's.
	Checksum uint32
	// Parent and Base are the checksums of the link a delta applies to and of its chain's
	// base; Seq is its place in the chain (1 for the first delta). All zero for a base.
	Parent, Base uint32
	Seq          uint32
	// Fingerprint is the state format of the spec that wrote it (see Fingerprint).
	Fingerprint uint64
}

// ReadLink reads and checks a snapshot's header and checksum without decoding its state, for
// tools that verify a chain's order without the spec.
func ReadLink(data []byte) (Link, error) {
	h, _, err := parseLink(data)
	return h, err
}

// parseLink checks a snapshot's checksum and reads its header; body is what follows the
// header, up to the checksum.
func parseLink(data []byte) (Link, []byte, error) {
	var h Link
	if len(data) < 4+2+8+4 {
		return h, nil, fmt.Errorf("%w: %d bytes is shorter than a header", ErrCorrupt, len(data))
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return h, nil, fmt.Errorf("%w: checksum %08x, stored %08x", ErrCorrupt, got, sum)
	}
	if string(body[:4]) != snapMagic {
		return h, nil, fmt.Errorf("%w: not a liveagg state snapshot", ErrCorrupt)
	}
	h.Checksum = sum
	h.Version = int(binary.LittleEndian.Uint16(body[4:]))
	h.Fingerprint = binary.LittleEndian.Uint64(body[6:])
	switch h.Version {
	case snapVersion:
		h.Kind = "full"
		return h, body[14:], nil
	case snapVersion2:
	default:
		return h, nil, fmt.Errorf("%w: version %d, this build reads %d and %d", ErrCorrupt, h.Version, snapVersion, snapVersion2)
	}
	r := reader{b: body[14:]}
	kind := r.bytes(1)
	hb := r.bytes(r.uvarint())
	if r.err != nil {
		return h, nil, r.err
	}
	switch kind[0] {
	case kindBase:
		h.Kind = "base"
	case kindDelta:
		h.Kind = "delta"
	default:
		return h, nil, fmt.Errorf("%w: snapshot kind %d", ErrCorrupt, kind[0])
	}
	hr := reader{b: hb}
	if len(hb) < 8 {
		return h, nil, fmt.Errorf("%w: link header of %d bytes", ErrCorrupt, len(hb))
	}
	h.Parent = binary.LittleEndian.Uint32(hb)
	h.Base = binary.LittleEndian.Uint32(hb[4:])
	hr.b = hb[8:]
	seq := hr.uvarint()
	if hr.err != nil || seq > math.MaxUint32 {
		return h, nil, fmt.Errorf("%w: link sequence", ErrCorrupt)
	}
	h.Seq = uint32(seq)
	if (h.Kind == "base") != (seq == 0) {
		return h, nil, fmt.Errorf("%w: a %s with sequence %d", ErrCorrupt, h.Kind, seq)
	}
	return h, r.b, nil
}

// RestoreChain builds a store from a chain: links[0] is a base (or a full snapshot, alone), and
// each later link a delta on the one before. Every link is verified (checksum, format, that it
// is the delta of the link before it, and that it fits the state it applies to) and nothing is
// half-loaded: when a delta does not apply, RestoreChain returns the store of the links before
// it, their number, and the delta's error (wrapping ErrCorrupt), so the caller resumes from
// that older point. With no usable point at all (the base is damaged, or the spec does not
// match) it returns a nil store and the error.
//
// A store restored from a whole chain continues it: its next AppendDelta attaches to the last
// link. One restored from part of a chain does not (see ForgetChain).
func RestoreChain(s *spec.Spec, layout *agg.Layout, emit EmitFunc, links [][]byte) (*Store, int, error) {
	if len(links) == 0 {
		return nil, 0, fmt.Errorf("%w: an empty chain", ErrCorrupt)
	}
	if h, _, err := parseLink(links[0]); err == nil && h.Version == snapVersion {
		st, err := Restore(s, layout, emit, links[0])
		if err != nil {
			return nil, 0, err
		}
		if len(links) > 1 {
			return st, 1, fmt.Errorf("%w: deltas on a full snapshot", ErrCorrupt)
		}
		return st, 1, nil
	}
	var first error
	for k := len(links); k > 0; {
		st, bad, err := decodeChain(s, layout, emit, links[:k])
		if err == nil {
			if k < len(links) {
				st.ForgetChain()
			}
			return st, k, first
		}
		if first == nil {
			first = err
		}
		if errors.Is(err, ErrMismatch) || bad == 0 {
			return nil, 0, err
		}
		k = bad
	}
	return nil, 0, first
}

// decodeChain decodes links in order; on error, bad is the index of the link blamed.
func decodeChain(s *spec.Spec, layout *agg.Layout, emit EmitFunc, links [][]byte) (st *Store, bad int, err error) {
	st = New(s, layout, emit)
	fp := Fingerprint(s, layout)
	for i, data := range links {
		if err := st.decodeLink(data, fp, uint32(i)); err != nil {
			if errors.Is(err, ErrMismatch) {
				return nil, i, fmt.Errorf("%w: spec %s changed its key, windows or aggregations since the snapshot was taken", ErrMismatch, s.Name)
			}
			return nil, i, fmt.Errorf("link %d of %d: %w", i+1, len(links), err)
		}
	}
	if err := st.finishChain(); err != nil {
		return nil, len(links) - 1, fmt.Errorf("chain of %d links: %w", len(links), err)
	}
	return st, 0, nil
}

func (st *Store) decodeLink(data []byte, fp uint64, seq uint32) error {
	h, body, err := parseLink(data)
	if err != nil {
		return err
	}
	if h.Version != snapVersion2 {
		return fmt.Errorf("%w: a full snapshot inside a chain", ErrCorrupt)
	}
	if h.Fingerprint != fp {
		return ErrMismatch
	}
	switch {
	case seq == 0 && h.Kind != "base":
		return fmt.Errorf("%w: a chain starts with a %s", ErrCorrupt, h.Kind)
	case seq > 0 && h.Kind != "delta":
		return fmt.Errorf("%w: a %s after the chain's start", ErrCorrupt, h.Kind)
	case seq > 0 && (h.Parent != st.inc.link || h.Base != st.inc.base || h.Seq != seq):
		return fmt.Errorf("%w: delta %d (parent %08x, base %08x) does not follow link %d (%08x, base %08x)",
			ErrCorrupt, h.Seq, h.Parent, h.Base, seq-1, st.inc.link, st.inc.base)
	}
	r := reader{b: body}
	st.watermark, st.maxTime = r.i64(), r.i64()
	st.late, st.records, st.emitted = r.i64(), r.i64(), r.i64()
	if seq == 0 {
		err = st.decodeBase(&r)
	} else {
		err = st.decodeDelta(&r)
	}
	if err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes left over", ErrCorrupt, len(r.b))
	}
	st.inc.on, st.inc.link, st.inc.deltas = true, h.Checksum, seq
	if seq == 0 {
		st.inc.base = h.Checksum
	}
	return nil
}

// readEntry gives id its key from a link (refs 1 marks it live until finishChain counts), or
// frees it.
func (st *Store) readEntry(r *reader, id uint32) {
	n := r.uvarint()
	if n == 0 {
		st.keys.entries[id] = keyEntry{}
		return
	}
	k := r.bytes(n - 1)
	if r.err != nil {
		return
	}
	st.keys.entries[id] = keyEntry{off: uint32(len(st.keys.arena)), len: uint32(len(k)), refs: 1}
	st.keys.arena = append(st.keys.arena, k...)
}

func (st *Store) decodeBase(r *reader) error {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) || n > math.MaxUint32 {
		return fmt.Errorf("%w: %d series ids in %d bytes", ErrCorrupt, n, len(r.b))
	}
	st.keys.entries = make([]keyEntry, n)
	st.keys.arena = slices.Grow(st.keys.arena, len(r.b)/4)
	for id := range uint32(n) {
		st.readEntry(r, id)
		if r.err != nil {
			return r.err
		}
	}
	for si := range st.sizes {
		sz := &st.sizes[si]
		nb := r.uvarint()
		for range nb {
			if r.err != nil {
				return r.err
			}
			start := r.i64()
			if err := st.checkWindow(sz, start); err != nil {
				return err
			}
			b := st.bucketFor(sz, start)
			ns := r.uvarint()
			if r.err != nil || ns > uint64(len(r.b))/4 {
				return fmt.Errorf("%w: window of %d slots", ErrCorrupt, ns)
			}
			if err := st.addRawSlots(b, r.bytes(4*ns)); err != nil {
				return err
			}
			if err := st.readColumns(sz, b, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkWindow checks a window start read from a link: aligned, and after the last one read.
func (st *Store) checkWindow(sz *sizeState, start int64) error {
	if mod(start, sz.size) != 0 {
		return fmt.Errorf("%w: window start %d is not aligned to %d", ErrCorrupt, start, sz.size)
	}
	if len(sz.open) > 0 && sz.open[len(sz.open)-1].start >= start {
		return fmt.Errorf("%w: windows out of order", ErrCorrupt)
	}
	return nil
}

// addRawSlots appends empty slots for the series ids in raw (u32 each) to b. References,
// cursors and the slot count are finishChain's.
func (st *Store) addRawSlots(b *bucket, raw []byte) error {
	ids := uint32(len(st.keys.entries))
	for i := 0; i+4 <= len(raw); i += 4 {
		id := binary.LittleEndian.Uint32(raw[i:])
		if id >= ids {
			return fmt.Errorf("%w: series id %d of %d", ErrCorrupt, id, ids)
		}
		pos := uint32(b.n)
		if b.n == len(b.chunks)*chunkSlots {
			b.chunks = append(b.chunks, st.newChunk())
		}
		b.chunks[pos/chunkSlots].series[pos%chunkSlots] = id
		b.n++
	}
	return nil
}

func (st *Store) decodeDelta(r *reader) error {
	n := r.uvarint()
	if r.err != nil || n < uint64(len(st.keys.entries)) || n-uint64(len(st.keys.entries)) > uint64(len(r.b)) || n > math.MaxUint32 {
		return fmt.Errorf("%w: %d series ids after %d", ErrCorrupt, n, len(st.keys.entries))
	}
	st.keys.entries = append(st.keys.entries, make([]keyEntry, int(n)-len(st.keys.entries))...)
	changed := r.uvarint()
	if r.err != nil || changed > n {
		return fmt.Errorf("%w: %d changed series ids of %d", ErrCorrupt, changed, n)
	}
	last := int64(-1)
	for range changed {
		id := r.uvarint()
		if r.err != nil || id >= n || int64(id) <= last {
			return fmt.Errorf("%w: changed series id %d", ErrCorrupt, id)
		}
		last = int64(id)
		st.readEntry(r, uint32(id))
		if r.err != nil {
			return r.err
		}
	}
	for si := range st.sizes {
		sz := &st.sizes[si]
		old := sz.open
		open := make([]*bucket, 0, len(old)+2)
		oi := 0
		nb := r.uvarint()
		if r.err != nil || nb > uint64(len(r.b)) {
			return fmt.Errorf("%w: %d windows", ErrCorrupt, nb)
		}
		for range nb {
			start := r.i64()
			prev, ns := r.uvarint(), r.uvarint()
			if r.err != nil {
				return r.err
			}
			if mod(start, sz.size) != 0 || (len(open) > 0 && open[len(open)-1].start >= start) {
				return fmt.Errorf("%w: window start %d unaligned or out of order", ErrCorrupt, start)
			}
			for oi < len(old) && old[oi].start < start {
				st.dropBucket(old[oi]) // closed since the link before
				oi++
			}
			var b *bucket
			if prev == 0 {
				if oi < len(old) && old[oi].start == start {
					return fmt.Errorf("%w: window %d listed as new is in the link before", ErrCorrupt, start)
				}
				b = &bucket{seq: sz.nextSeq, start: start}
				sz.nextSeq++
			} else {
				if oi >= len(old) || old[oi].start != start {
					return fmt.Errorf("%w: window %d is not in the link before", ErrCorrupt, start)
				}
				b = old[oi]
				oi++
				if prev-1 != uint64(b.n) {
					return fmt.Errorf("%w: window %d had %d slots, the delta says %d", ErrCorrupt, start, b.n, prev-1)
				}
			}
			old0 := uint64(b.n)
			if ns < old0 || ns-old0 > uint64(len(r.b))/4 {
				return fmt.Errorf("%w: window %d of %d slots after %d", ErrCorrupt, start, ns, old0)
			}
			if err := st.addRawSlots(b, r.bytes(4*(ns-old0))); err != nil {
				return err
			}
			nd := r.uvarint()
			if r.err != nil || nd > old0 {
				return fmt.Errorf("%w: %d changed slots of %d", ErrCorrupt, nd, old0)
			}
			raw := r.bytes(4 * nd)
			if r.err != nil {
				return r.err
			}
			list := st.inc.list[:0]
			for i := range nd {
				pos := binary.LittleEndian.Uint32(raw[4*i:])
				if uint64(pos) >= old0 || (i > 0 && pos <= list[i-1]) {
					return fmt.Errorf("%w: changed slot %d of %d", ErrCorrupt, pos, old0)
				}
				list = append(list, pos)
			}
			for pos := uint32(old0); pos < uint32(ns); pos++ {
				list = append(list, pos)
			}
			st.inc.list = list
			open = append(open, b)
			if err := st.readListed(sz, b, list, int(nd), r); err != nil {
				return err
			}
		}
		for ; oi < len(old); oi++ {
			st.dropBucket(old[oi])
		}
		sz.open = open
	}
	return nil
}

// readListed reads what appendListed wrote into b's slots at the listed positions: the first
// nOld of them hold older values (and sketches, released first), the rest are new.
func (st *Store) readListed(sz *sizeState, b *bucket, list []uint32, nOld int, r *reader) error {
	l := st.layout
	n := uint64(len(list))
	valsRaw := r.bytes(8 * n * uint64(l.Stride))
	var lastRaw []byte
	if l.HasLast {
		lastRaw = r.bytes(4 * n)
	}
	smallRaw := r.bytes(8 * n * uint64(l.SmallStride))
	if r.err != nil {
		return r.err
	}
	for i, pos := range list {
		s := st.slot(b, pos)
		if i < nOld {
			st.pool.Release(s)
		}
		readFloats(s.Vals, valsRaw[8*i*l.Stride:])
		if cnt := s.Vals[0]; cnt < 1 || cnt != math.Trunc(cnt) {
			return fmt.Errorf("%w: slot count %v", ErrCorrupt, cnt)
		}
		if l.HasLast {
			*s.LastOff = binary.LittleEndian.Uint32(lastRaw[4*i:])
			if int64(*s.LastOff) >= sz.size {
				return fmt.Errorf("%w: last offset %d beyond window size %d", ErrCorrupt, *s.LastOff, sz.size)
			}
		}
		readUint64s(s.Small, smallRaw[8*i*l.SmallStride:])
	}
	if l.NumHLL+l.NumDDS > 0 {
		for _, pos := range list {
			rest, err := l.DecodeSketches(r.b, st.slot(b, pos), st.pool)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			r.b = rest
		}
	}
	if l.NumText > 0 {
		for _, pos := range list {
			rest, err := l.DecodeTexts(r.b, st.slot(b, pos))
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			r.b = rest
		}
	}
	return nil
}

// dropBucket recycles a window that closed between two links of a chain being restored.
func (st *Store) dropBucket(b *bucket) {
	for pos := range uint32(b.n) {
		st.pool.Release(st.slot(b, pos))
	}
	for _, c := range b.chunks {
		clear(c.text)
	}
	st.freeChunks = append(st.freeChunks, b.chunks...)
	b.chunks, b.n = nil, 0
}

// finishChain derives what links do not carry from what they do: references, cursors, the
// hash of keys, free ids, and checks that the chain describes a consistent state: every slot's
// series is live, none is twice in a window, every live series is in a window.
func (st *Store) finishChain() error {
	e := st.keys.entries
	nsz := len(st.sizes)
	st.cursors = make([]cursor, len(e)*nsz)
	st.slots = 0
	st.nextClose = 1<<63 - 1
	for si := range st.sizes {
		sz := &st.sizes[si]
		for i, b := range sz.open {
			b.seq = uint32(i + 1)
			b.index = nil
		}
		sz.nextSeq = uint32(len(sz.open) + 1)
		for _, b := range sz.open {
			for pos := range uint32(b.n) {
				id := st.seriesAt(b, pos)
				if e[id].refs == 0 {
					return fmt.Errorf("%w: a slot of window %d names the free series id %d", ErrCorrupt, b.start, id)
				}
				cur := &st.cursors[int(id)*nsz+si]
				if cur.seq == b.seq {
					return fmt.Errorf("%w: series %q twice in window %d", ErrCorrupt, st.keys.key(id), b.start)
				}
				*cur = cursor{seq: b.seq, pos: pos}
				e[id].refs++
			}
			st.slots += b.n
		}
		if len(sz.open) > 0 {
			st.nextClose = min(st.nextClose, sz.open[0].start+sz.size)
		}
	}
	liveBytes := 0
	st.keys.free = st.keys.free[:0]
	for id := len(e) - 1; id >= 0; id-- {
		switch e[id].refs {
		case 0:
			st.keys.free = append(st.keys.free, uint32(id))
		case 1:
			return fmt.Errorf("%w: series %q is in no window", ErrCorrupt, st.keys.key(uint32(id)))
		default:
			e[id].refs--
			liveBytes += int(e[id].len)
		}
	}
	if dup := st.keys.load(true); dup >= 0 {
		return fmt.Errorf("%w: series %q has two ids", ErrCorrupt, st.keys.key(uint32(dup)))
	}
	st.keys.garbage = len(st.keys.arena) - liveBytes
	if st.keys.garbage > 1<<20 && st.keys.garbage*2 > len(st.keys.arena) {
		st.keys.compact()
	}
	if keep := st.slots/chunkSlots + 2*nsz; len(st.freeChunks) > keep {
		clear(st.freeChunks[keep:])
		st.freeChunks = st.freeChunks[:keep]
	}
	st.markClean(st.inc.link)
	return nil
}

// ChainLink is the checksum of the store's newest base or delta: the parent its next delta names.
func (st *Store) ChainLink() uint32 { return st.inc.link }

// EncodedSize is about the size of the store's full snapshot or base: exact but for sketches,
// counted at 100 bytes each. A caller sizes its buffer by it, so that encoding gigabytes does
// not grow the buffer by doubling (and hold twice the state at the peak).
func (st *Store) EncodedSize() int {
	l := st.layout
	n := 64 + st.keys.keyBytesLive() + 3*st.keys.live + 5*len(st.keys.entries)
	perSlot := 4 + 8*l.Stride + 8*l.SmallStride + (l.NumHLL+l.NumDDS)*2
	if l.HasLast {
		perSlot += 4
	}
	for si := range st.sizes {
		for _, b := range st.sizes[si].open {
			n += 24 + b.n*perSlot
			if l.NumText > 0 {
				for pos := range uint32(b.n) {
					for _, t := range st.slot(b, pos).Text {
						n += len(t) + 2
					}
				}
			}
		}
	}
	return n + 100*st.pool.Live()
}
