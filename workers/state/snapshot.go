package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/spec"
)

// Snapshot format, version 1 (all integers little-endian):
//
//	"LAGS" | u16 version | u64 format fingerprint
//	i64 watermark | i64 max event time | i64 late | i64 records | i64 emitted
//	uvarint #series, then per series: uvarint length, key bytes   (ids are 0..n-1 in this order)
//	per window size (spec order): uvarint #open windows, then per window:
//	    i64 start | uvarint #slots | #slots × u32 series id | #slots × Stride × f64 values
//	    | #slots × u32 last offsets (if the layout has last)
//	    | #slots × SmallStride × u64 inline distinct hashes
//	    | per slot, per sketch column: uvarint length, sketch bytes
//	    | per slot, per text last: uvarint length, text bytes (only if the layout has text)
//	u32 CRC-32C of everything before it
//
// Column data is copied as raw memory on little-endian machines: restoring a gigabyte of state
// is memcpy, not a per-value decode.

const (
	snapMagic   = "LAGS"
	snapVersion = 1
	headerLen   = 4 + 2 + 8 + 5*8
)

// SnapshotChecksum returns the CRC-32C a snapshot carries at its end (of everything before
// it), which tells snapshots apart. A checksum over the whole snapshot, its own included, is
// CRC-32C's residue constant for every snapshot, so it is no use to show.
func SnapshotChecksum(data []byte) (uint32, bool) {
	if len(data) < headerLen+4 || string(data[:4]) != snapMagic {
		return 0, false
	}
	return binary.LittleEndian.Uint32(data[len(data)-4:]), true
}

// ErrCorrupt is wrapped by every Restore error caused by the bytes themselves (as opposed to a
// spec mismatch): the caller falls back to an older checkpoint.
var ErrCorrupt = errors.New("corrupt state snapshot")

// ErrMismatch is wrapped when a snapshot was written for a different key, windows or
// aggregations than the spec at hand.
var ErrMismatch = errors.New("state snapshot does not match the spec")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var littleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// Fingerprint identifies the state format of a spec: key fields, window sizes and aggregations.
// Allowed lateness and outputs may change without invalidating state.
func Fingerprint(s *spec.Spec, layout *agg.Layout) uint64 {
	var b []byte
	b = fmt.Appendf(b, "key=%q;windows=%v;layout=%d", s.Key, s.Windows, layout.Fingerprint())
	return xxhash.Sum64(b)
}

// AppendSnapshot appends the store's snapshot to dst. fp is Fingerprint of the store's spec.
func (st *Store) AppendSnapshot(dst []byte, fp uint64) ([]byte, error) {
	start := len(dst)
	dst = append(dst, snapMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, snapVersion)
	dst = binary.LittleEndian.AppendUint64(dst, fp)
	for _, v := range []int64{st.watermark, st.maxTime, st.late, st.records, st.emitted} {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
	}

	// Renumber live series densely in order of first appearance, so the snapshot holds no
	// freed ids and restore needs no hash of old ids.
	remap := make([]uint32, len(st.keys.entries))
	for i := range remap {
		remap[i] = math.MaxUint32
	}
	var order []uint32
	for si := range st.sizes {
		for _, b := range st.sizes[si].open {
			for ci, c := range b.chunks {
				for _, id := range c.series[:chunkUsed(b, ci)] {
					if remap[id] == math.MaxUint32 {
						remap[id] = uint32(len(order))
						order = append(order, id)
					}
				}
			}
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(order)))
	for _, id := range order {
		k := st.keys.key(id)
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
	}

	for si := range st.sizes {
		sz := &st.sizes[si]
		dst = binary.AppendUvarint(dst, uint64(len(sz.open)))
		for _, b := range sz.open {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(b.start))
			dst = binary.AppendUvarint(dst, uint64(b.n))
			for ci, c := range b.chunks {
				for _, id := range c.series[:chunkUsed(b, ci)] {
					dst = binary.LittleEndian.AppendUint32(dst, remap[id])
				}
			}
			var err error
			if dst, err = st.appendColumns(dst, b); err != nil {
				return nil, err
			}
		}
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli)), nil
}

// appendColumns appends every slot of b, column by column: values, last offsets, inline
// hashes, sketches, texts.
func (st *Store) appendColumns(dst []byte, b *bucket) ([]byte, error) {
	l := st.layout
	for ci, c := range b.chunks {
		dst = appendFloats(dst, c.vals[:chunkUsed(b, ci)*l.Stride])
	}
	if l.HasLast {
		for ci, c := range b.chunks {
			dst = appendUint32s(dst, c.lastOff[:chunkUsed(b, ci)])
		}
	}
	for ci, c := range b.chunks {
		dst = appendUint64s(dst, c.small[:chunkUsed(b, ci)*l.SmallStride])
	}
	if l.NumHLL+l.NumDDS > 0 {
		var err error
		if dst, err = st.appendSketches(dst, b); err != nil {
			return nil, err
		}
	}
	if l.NumText > 0 {
		for pos := range uint32(b.n) {
			dst = l.AppendTexts(dst, st.slot(b, pos))
		}
	}
	return dst, nil
}

// chunkUsed is the number of used slots of b's chunk ci.
func chunkUsed(b *bucket, ci int) int { return min(chunkSlots, b.n-ci*chunkSlots) }

func (st *Store) appendSketches(dst []byte, b *bucket) ([]byte, error) {
	var err error
	for pos := range uint32(b.n) {
		if dst, st.scratch, err = st.layout.AppendSketches(dst, st.scratch, st.slot(b, pos)); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	return dst, nil
}

func appendFloats(dst []byte, v []float64) []byte {
	if len(v) == 0 {
		return dst
	}
	if littleEndian {
		return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*8)...)
	}
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
	}
	return dst
}

func appendUint64s(dst []byte, v []uint64) []byte {
	if len(v) == 0 {
		return dst
	}
	if littleEndian {
		return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*8)...)
	}
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint64(dst, x)
	}
	return dst
}

func appendUint32s(dst []byte, v []uint32) []byte {
	if len(v) == 0 {
		return dst
	}
	if littleEndian {
		return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*4)...)
	}
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint32(dst, x)
	}
	return dst
}

func readFloats(dst []float64, src []byte) {
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)*8), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
	}
}

func readUint64s(dst []uint64, src []byte) {
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)*8), src)
		return
	}
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint64(src[8*i:])
	}
}

func readUint32s(dst []uint32, src []byte) {
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)*4), src)
		return
	}
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint32(src[4*i:])
	}
}

// Restore builds a store from a snapshot. It checks the checksum before building anything and
// builds a fresh store, so a corrupt snapshot is reported (wrapping ErrCorrupt) and never
// half-loaded.
func Restore(s *spec.Spec, layout *agg.Layout, emit EmitFunc, data []byte) (*Store, error) {
	if len(data) < headerLen+4 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than a header", ErrCorrupt, len(data))
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: checksum %08x, stored %08x", ErrCorrupt, got, sum)
	}
	if string(body[:4]) != snapMagic {
		return nil, fmt.Errorf("%w: not a liveagg state snapshot", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(body[4:]); v != snapVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrCorrupt, v, snapVersion)
	}
	if fp, want := binary.LittleEndian.Uint64(body[6:]), Fingerprint(s, layout); fp != want {
		return nil, fmt.Errorf("%w: spec %s changed its key, windows or aggregations since the snapshot was taken", ErrMismatch, s.Name)
	}
	st := New(s, layout, emit)
	r := reader{b: body[14:]}
	st.watermark, st.maxTime = r.i64(), r.i64()
	st.late, st.records, st.emitted = r.i64(), r.i64(), r.i64()

	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: %d series in %d bytes", ErrCorrupt, n, len(r.b))
	}
	ids := make([]uint32, n)
	st.keys.reserve(int(n), keyListBytes(r.b, n))
	for i := range ids {
		k := r.bytes(r.uvarint())
		if r.err != nil {
			return nil, r.err
		}
		ids[i] = st.keys.add(k)
	}
	if dup := st.keys.load(false); dup >= 0 {
		return nil, fmt.Errorf("%w: series %q listed twice", ErrCorrupt, st.keys.key(uint32(dup)))
	}
	st.cursors = make([]cursor, len(st.keys.entries)*len(st.sizes))
	for si := range st.sizes {
		sz := &st.sizes[si]
		nb := r.uvarint()
		for range nb {
			if r.err != nil {
				return nil, r.err
			}
			if err := st.restoreBucket(sz, si, &r, ids); err != nil {
				return nil, err
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over", ErrCorrupt, len(r.b))
	}
	for id, e := range st.keys.entries {
		if e.refs == 0 && e.len != 0 {
			return nil, fmt.Errorf("%w: series %q is in no window", ErrCorrupt, st.keys.key(uint32(id)))
		}
	}
	return st, nil
}

// keyListBytes is the total length of the n length-prefixed keys at the start of b, as far as
// b holds them (a corrupt list is reported by the read that follows).
func keyListBytes(b []byte, n uint64) int {
	total := 0
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			break
		}
		total += int(l)
		b = b[k+int(l):]
	}
	return total
}

func (st *Store) restoreBucket(sz *sizeState, si int, r *reader, ids []uint32) error {
	start := r.i64()
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		return fmt.Errorf("%w: window of %d slots", ErrCorrupt, n)
	}
	if mod(start, sz.size) != 0 {
		return fmt.Errorf("%w: window start %d is not aligned to %d", ErrCorrupt, start, sz.size)
	}
	if len(sz.open) > 0 && sz.open[len(sz.open)-1].start >= start {
		return fmt.Errorf("%w: windows out of order", ErrCorrupt)
	}
	b := st.bucketFor(sz, start)
	seriesRaw := r.bytes(4 * n)
	if r.err != nil {
		return r.err
	}
	for i := range n {
		ref := binary.LittleEndian.Uint32(seriesRaw[4*i:])
		if uint64(ref) >= uint64(len(ids)) {
			return fmt.Errorf("%w: series %d of %d", ErrCorrupt, ref, len(ids))
		}
		id := ids[ref]
		cur := &st.cursors[int(id)*len(st.sizes)+si]
		if cur.seq == b.seq {
			return fmt.Errorf("%w: series listed twice in one window", ErrCorrupt)
		}
		*cur = cursor{seq: b.seq, pos: st.addSlot(b, id)}
	}
	return st.readColumns(sz, b, r)
}

// readColumns reads what appendColumns wrote into b's slots, which are in place and empty.
// Column data goes back chunk by chunk, as raw memory where the machine allows.
func (st *Store) readColumns(sz *sizeState, b *bucket, r *reader) error {
	l := st.layout
	n := uint64(b.n)
	valsRaw := r.bytes(8 * n * uint64(l.Stride))
	var lastRaw []byte
	if l.HasLast {
		lastRaw = r.bytes(4 * n)
	}
	smallRaw := r.bytes(8 * n * uint64(l.SmallStride))
	if r.err != nil {
		return r.err
	}
	for ci, c := range b.chunks {
		used := chunkUsed(b, ci)
		off := ci * chunkSlots
		readFloats(c.vals[:used*l.Stride], valsRaw[8*off*l.Stride:])
		if l.HasLast {
			readUint32s(c.lastOff[:used], lastRaw[4*off:])
		}
		readUint64s(c.small[:used*l.SmallStride], smallRaw[8*off*l.SmallStride:])
		for i := range used {
			if cnt := c.vals[i*l.Stride]; cnt < 1 || cnt != math.Trunc(cnt) {
				return fmt.Errorf("%w: slot count %v", ErrCorrupt, cnt)
			}
			if l.HasLast && int64(c.lastOff[i]) >= sz.size {
				return fmt.Errorf("%w: last offset %d beyond window size %d", ErrCorrupt, c.lastOff[i], sz.size)
			}
		}
	}
	if l.NumHLL+l.NumDDS > 0 {
		for pos := range uint32(n) {
			rest, err := l.DecodeSketches(r.b, st.slot(b, pos), st.pool)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			r.b = rest
		}
	}
	if l.NumText > 0 {
		for pos := range uint32(n) {
			rest, err := l.DecodeTexts(r.b, st.slot(b, pos))
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			r.b = rest
		}
	}
	return nil
}

// reader decodes the snapshot, remembering the first error so the code reads straight through.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated at %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *reader) i64() int64 {
	if len(r.b) < 8 {
		r.fail("integer")
		return 0
	}
	v := int64(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail("bytes")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
