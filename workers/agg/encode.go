package agg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The encoding of one slot, shared by partial outputs and snapshots:
//
//	Stride × float64 (little-endian; quantiles' inline values are among them)
//	last event time, Unix ms, zig-zag varint        (only if the layout has last)
//	per distinct: uvarint length, HyperLogLog binary; or, for an inline set (length 0),
//	              uvarint k, k × u64 hashes
//	per quantiles: uvarint length, DDSketch encoding without its index mapping (0 = inline)
//
// The layout is not in the bytes: a reader must hold the same layout, which snapshots and
// partial topics guarantee by carrying a layout fingerprint.

// ErrCorrupt is wrapped by every decoding error of slot bytes.
var ErrCorrupt = errors.New("corrupt slot encoding")

// AppendSlot appends the encoding of s to dst.
func (l *Layout) AppendSlot(dst []byte, s Slot) ([]byte, error) {
	for _, v := range s.Vals[:l.Stride] {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	if l.HasLast {
		dst = binary.AppendVarint(dst, s.Start+int64(*s.LastOff))
	}
	for i, sk := range s.HLL {
		if sk == nil {
			dst = binary.AppendUvarint(dst, 0)
			set := s.Small[i*SmallN : (i+1)*SmallN]
			k := 0
			for k < SmallN && set[k] != 0 {
				k++
			}
			dst = binary.AppendUvarint(dst, uint64(k))
			for _, h := range set[:k] {
				dst = binary.LittleEndian.AppendUint64(dst, h)
			}
			continue
		}
		// Length-prefix without a second buffer: reserve a fixed 4-byte little-endian length.
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		var err error
		dst, err = sk.AppendBinary(dst)
		if err != nil {
			return nil, fmt.Errorf("encode hyperloglog: %w", err)
		}
		dst = fixLength(dst, at)
	}
	for _, sk := range s.DDS {
		if sk == nil {
			dst = binary.AppendUvarint(dst, 0)
			continue
		}
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		sk.Encode(&dst, true)
		dst = fixLength(dst, at)
	}
	return dst, nil
}

// fixLength turns the 4 reserved bytes at dst[at:] into a 5-byte uvarint-compatible length:
// 0x80|b0, 0x80|b1, 0x80|b2, 0x80|b3, b4. Reserving 4 and inserting 1 keeps the encoder free of
// a scratch buffer at the cost of a memmove of the payload, which is small.
func fixLength(dst []byte, at int) []byte {
	n := uint64(len(dst) - at - 4)
	dst = append(dst, 0)
	copy(dst[at+5:], dst[at+4:len(dst)-1])
	dst[at] = byte(n) | 0x80
	dst[at+1] = byte(n>>7) | 0x80
	dst[at+2] = byte(n>>14) | 0x80
	dst[at+3] = byte(n>>21) | 0x80
	dst[at+4] = byte(n >> 28)
	return dst
}

// DecodeSlot reads one slot's encoding from src into s (initialised, with nil sketches) and
// returns the rest of src. Sketches come from the pool.
func (l *Layout) DecodeSlot(src []byte, s Slot, p *Pool) ([]byte, error) {
	need := 8 * l.Stride
	if len(src) < need {
		return nil, fmt.Errorf("%w: %d bytes for %d values", ErrCorrupt, len(src), l.Stride)
	}
	for i := range l.Stride {
		s.Vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
	}
	src = src[need:]
	if s.Vals[0] < 0 || math.IsNaN(s.Vals[0]) || s.Vals[0] != math.Trunc(s.Vals[0]) {
		return nil, fmt.Errorf("%w: count %v", ErrCorrupt, s.Vals[0])
	}
	if l.HasLast {
		t, n := binary.Varint(src)
		if n <= 0 {
			return nil, fmt.Errorf("%w: last event time", ErrCorrupt)
		}
		src = src[n:]
		off := t - s.Start
		if s.Vals[0] > 0 && (off < 0 || off > int64(^uint32(0))) {
			return nil, fmt.Errorf("%w: last event time %d outside the window starting %d", ErrCorrupt, t, s.Start)
		}
		if s.Vals[0] > 0 {
			*s.LastOff = uint32(off)
		}
	}
	for i := range l.Funcs {
		f := &l.Funcs[i]
		if f.Kind != Distinct && f.Kind != Quantiles {
			continue
		}
		n, k := binary.Uvarint(src)
		if k <= 0 || n > uint64(len(src)-k) {
			return nil, fmt.Errorf("%w: %s sketch length", ErrCorrupt, f.Name)
		}
		b := src[k : k+int(n)]
		src = src[k+int(n):]
		if n == 0 && f.Kind == Distinct {
			m, k := binary.Uvarint(src)
			if k <= 0 || m > SmallN || uint64(len(src)-k) < 8*m {
				return nil, fmt.Errorf("%w: %s inline set", ErrCorrupt, f.Name)
			}
			set := s.Small[f.SmallOff : f.SmallOff+SmallN]
			for i := range int(m) {
				if set[i] = binary.LittleEndian.Uint64(src[k+8*i:]); set[i] == 0 {
					return nil, fmt.Errorf("%w: %s inline hash 0", ErrCorrupt, f.Name)
				}
			}
			src = src[k+8*int(m):]
			continue
		}
		if n == 0 {
			continue
		}
		if err := p.DecodeSketch(f, s, b); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	return src, nil
}
