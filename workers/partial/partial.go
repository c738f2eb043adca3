// Package partial is the wire format between the levels of a multilevel pipeline: one Kafka
// record per (series, window) holding the series' mergeable aggregation state, not its final
// values, so a next level can merge the partials of many input partitions (and many small
// windows into larger ones) exactly.
//
// A record's value, version 1:
//
//	"lap" magic, version byte 1
//	u64 LE   layout fingerprint: the aggregations that made the state (agg.Layout.Fingerprint)
//	uvarint  window size, ms;  varint window start, Unix ms
//	uvarint  n key fields; per field: uvarint len, name, uvarint len, value
//	u64 LE   bitmask of the key fields the record is partitioned by (its Kafka key)
//	rest     the slot, as agg.Layout.AppendSlot writes it
//
// The record's Kafka key is the values of the partitioning fields joined by "|", so every
// partial of one (partition key) lands in one partition of the intermediate topic. A next
// level whose key holds every partitioning field therefore sees all partials of each of its
// series in one partition; partials of any other shape are refused rather than merged wrong.
package partial

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/emit"
)

// Version is the encoding version this build writes and reads.
const Version = 1

const magic = "lap"

// ErrBad is wrapped by every error about a partial record that cannot be merged.
var ErrBad = errors.New("bad partial")

// Renderer returns the Kafka sink's Render hook for a partial output: it encodes row i of a
// window (whose States the owner attached) as a partial keyed by keyedBy, a subset of the
// window's key fields.
func Renderer(fingerprint uint64, keyedBy []string) func(w *emit.Window, i int, key, value []byte) ([]byte, []byte) {
	return func(w *emit.Window, i int, key, value []byte) ([]byte, []byte) {
		var mask uint64
		row := &w.Rows[i]
		for j, f := range w.KeyFields {
			if slices.Contains(keyedBy, f) {
				if mask != 0 {
					key = append(key, '|')
				}
				mask |= 1 << j
				key = append(key, row.Key[j]...)
			}
		}
		value = append(value, magic...)
		value = append(value, Version)
		value = binary.LittleEndian.AppendUint64(value, fingerprint)
		value = binary.AppendUvarint(value, uint64(w.Size))
		value = binary.AppendVarint(value, w.Start)
		value = binary.AppendUvarint(value, uint64(len(w.KeyFields)))
		for j, f := range w.KeyFields {
			value = binary.AppendUvarint(value, uint64(len(f)))
			value = append(value, f...)
			value = binary.AppendUvarint(value, uint64(len(row.Key[j])))
			value = append(value, row.Key[j]...)
		}
		value = binary.LittleEndian.AppendUint64(value, mask)
		value = append(value, w.States[i]...)
		return key, value
	}
}

// Partial is a decoded partial record. Its byte slices point into the record.
type Partial struct {
	Fingerprint uint64
	Size, Start int64
	Fields      []string
	Values      [][]byte
	KeyedBy     uint64
	State       []byte
}

// Parse decodes a partial record's value into p, reusing p's slices.
func Parse(b []byte, p *Partial) error {
	if len(b) < len(magic)+1+8 || string(b[:len(magic)]) != magic {
		return fmt.Errorf("%w: not a liveagg partial (no magic)", ErrBad)
	}
	if v := b[len(magic)]; v != Version {
		return fmt.Errorf("%w: encoding version %d, this build reads %d", ErrBad, v, Version)
	}
	b = b[len(magic)+1:]
	p.Fingerprint = binary.LittleEndian.Uint64(b)
	b = b[8:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size == 0 || size > 1<<40 {
		return fmt.Errorf("%w: window size", ErrBad)
	}
	b = b[n:]
	start, n := binary.Varint(b)
	if n <= 0 {
		return fmt.Errorf("%w: window start", ErrBad)
	}
	b = b[n:]
	p.Size, p.Start = int64(size), start
	nf, n := binary.Uvarint(b)
	if n <= 0 || nf > 64 {
		return fmt.Errorf("%w: key field count", ErrBad)
	}
	b = b[n:]
	// The field names repeat from partial to partial: keep the strings when they match, so a
	// partial costs no allocation for its names.
	old := p.Fields
	p.Fields, p.Values = p.Fields[:0], p.Values[:0]
	for i := range int(nf) {
		var name, val []byte
		var err error
		if name, b, err = chunk(b); err != nil {
			return err
		}
		if val, b, err = chunk(b); err != nil {
			return err
		}
		if i < len(old) && old[i] == string(name) {
			p.Fields = append(p.Fields, old[i])
		} else {
			p.Fields = append(p.Fields, string(name))
		}
		p.Values = append(p.Values, val)
	}
	if len(b) < 8 {
		return fmt.Errorf("%w: truncated before the partition mask", ErrBad)
	}
	p.KeyedBy = binary.LittleEndian.Uint64(b)
	p.State = b[8:]
	return nil
}

func chunk(b []byte) ([]byte, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return nil, nil, fmt.Errorf("%w: truncated key field", ErrBad)
	}
	return b[n : n+int(l)], b[n+int(l):], nil
}

// Projection maps partials onto a next level's key: it finds the next level's key fields in
// each partial and checks that the partial's partitioning fits that key.
type Projection struct {
	key   []string
	cache map[string]*layoutOf // partial field list -> where this key's fields are in it
	last  *layoutOf            // the previous partial's: nearly every partial has the same
}

// layoutOf is where a projection's key fields sit in partials with one list of fields.
type layoutOf struct {
	fields  []string
	idx     []int  // index in fields per key field
	allowed uint64 // bit per field the partials may be partitioned by: the key's
}

// NewProjection returns the projection onto key.
func NewProjection(key []string) *Projection {
	return &Projection{key: key, cache: map[string]*layoutOf{}}
}

// Key appends to parts the partial's values of the projection's key fields, in key order.
func (pr *Projection) Key(p *Partial, parts [][]byte) ([][]byte, error) {
	lo := pr.last
	if lo == nil || !slices.Equal(lo.fields, p.Fields) {
		sig := strings.Join(p.Fields, "\x1f")
		if lo = pr.cache[sig]; lo == nil {
			idx, err := pr.index(p)
			if err != nil {
				return parts, err
			}
			lo = &layoutOf{fields: slices.Clone(p.Fields), idx: idx}
			for _, i := range idx {
				lo.allowed |= 1 << i
			}
			pr.cache[sig] = lo
		}
		pr.last = lo
	}
	if p.KeyedBy&(uint64(1)<<len(p.Fields)-1)&^lo.allowed != 0 {
		return parts, fmt.Errorf("%w: partials are partitioned by %v, which is not within this spec's key %v: one series' partials would arrive on several partitions and be emitted once per partition; key the partial output by a subset of %v", ErrBad, keyedBy(p), pr.key, pr.key)
	}
	for _, i := range lo.idx {
		parts = append(parts, p.Values[i])
	}
	return parts, nil
}

func (pr *Projection) index(p *Partial) ([]int, error) {
	idx := make([]int, len(pr.key))
	for i, k := range pr.key {
		j := slices.Index(p.Fields, k)
		if j < 0 {
			return nil, fmt.Errorf("%w: partial has key fields %v, without %q of this spec's key", ErrBad, p.Fields, k)
		}
		idx[i] = j
	}
	return idx, nil
}

func keyedBy(p *Partial) []string {
	var out []string
	for i, f := range p.Fields {
		if p.KeyedBy&(1<<i) != 0 {
			out = append(out, f)
		}
	}
	return out
}

// CheckLayout says whether a partial's state was made by the same aggregations as layout.
func CheckLayout(p *Partial, layout *agg.Layout) error {
	if p.Fingerprint != layout.Fingerprint() {
		return fmt.Errorf("%w: made by different aggregations (layout %016x, this spec's %016x): a next level must list the same aggregations as the level before it", ErrBad, p.Fingerprint, layout.Fingerprint())
	}
	return nil
}
