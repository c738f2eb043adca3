package agg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The encoding of one slot, for partial outputs:
//
//	Stride × float64 (little-endian; quantiles' inline values are among them)
//	last event time, Unix ms, zig-zag varint        (only if the layout has last)
//	per distinct: uvarint k, k × u64 inline hashes (k is 0 once the slot has its sketch)
//	the sketches, as AppendSketches writes them
//	per text last: uvarint length, the text's bytes        (only if the layout has text)
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
	for i := range l.NumHLL {
		set := s.Small[i*SmallN : (i+1)*SmallN]
		k := 0
		for k < SmallN && set[k] != 0 {
			k++
		}
		dst = binary.AppendUvarint(dst, uint64(k))
		for _, h := range set[:k] {
			dst = binary.LittleEndian.AppendUint64(dst, h)
		}
	}
	dst, _, err := l.AppendSketches(dst, nil, s)
	if err != nil {
		return nil, err
	}
	return l.AppendTexts(dst, s), nil
}

// AppendTexts appends a slot's text values, each as a uvarint length and its bytes.
// Snapshots and partials share it.
func (l *Layout) AppendTexts(dst []byte, s Slot) []byte {
	for _, t := range s.Text {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	return dst
}

// DecodeTexts reads what AppendTexts wrote into s and returns the rest of src.
func (l *Layout) DecodeTexts(src []byte, s Slot) ([]byte, error) {
	for i := range s.Text {
		n, k := binary.Uvarint(src)
		if k <= 0 || n > uint64(len(src)-k) {
			return nil, fmt.Errorf("%w: text value %d length", ErrCorrupt, i)
		}
		s.Text[i] = string(src[k : k+int(n)])
		src = src[k+int(n):]
	}
	return src, nil
}

// AppendSketches appends a slot's sketches, distinct ones then quantiles ones, each as a
// uvarint length and its bytes (length 0 for a function still inline). scratch is a buffer the
// caller may reuse across calls; the grown one is returned. Snapshots and partials share it.
func (l *Layout) AppendSketches(dst, scratch []byte, s Slot) ([]byte, []byte, error) {
	for _, sk := range s.HLL {
		if sk == nil {
			dst = binary.AppendUvarint(dst, 0)
			continue
		}
		var err error
		if scratch, err = sk.AppendBinary(scratch[:0]); err != nil {
			return nil, scratch, fmt.Errorf("encode hyperloglog: %w", err)
		}
		dst = binary.AppendUvarint(dst, uint64(len(scratch)))
		dst = append(dst, scratch...)
	}
	for _, sk := range s.DDS {
		if sk == nil {
			dst = binary.AppendUvarint(dst, 0)
			continue
		}
		scratch = scratch[:0]
		sk.Encode(&scratch, true)
		dst = binary.AppendUvarint(dst, uint64(len(scratch)))
		dst = append(dst, scratch...)
	}
	return dst, scratch, nil
}

// DecodeSketches reads what AppendSketches wrote into s (whose sketches are nil), taking
// sketches from the pool, and returns the rest of src.
func (l *Layout) DecodeSketches(src []byte, s Slot, p *Pool) ([]byte, error) {
	for _, kind := range []Kind{Distinct, Quantiles} {
		for i := range l.Funcs {
			f := &l.Funcs[i]
			if f.Kind != kind {
				continue
			}
			n, k := binary.Uvarint(src)
			if k <= 0 || n > uint64(len(src)-k) {
				return nil, fmt.Errorf("%w: %s sketch length", ErrCorrupt, f.Name)
			}
			b := src[k : k+int(n)]
			src = src[k+int(n):]
			if n == 0 {
				continue
			}
			if err := p.DecodeSketch(f, s, b); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
		}
	}
	return src, nil
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
	for i := range l.NumHLL {
		m, k := binary.Uvarint(src)
		if k <= 0 || m > SmallN || uint64(len(src)-k) < 8*m {
			return nil, fmt.Errorf("%w: inline set %d", ErrCorrupt, i)
		}
		set := s.Small[i*SmallN : (i+1)*SmallN]
		for j := range int(m) {
			if set[j] = binary.LittleEndian.Uint64(src[k+8*j:]); set[j] == 0 {
				return nil, fmt.Errorf("%w: inline hash 0", ErrCorrupt)
			}
		}
		src = src[k+8*int(m):]
	}
	src, err := l.DecodeSketches(src, s, p)
	if err != nil {
		return nil, err
	}
	return l.DecodeTexts(src, s)
}
