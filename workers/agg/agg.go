// Package agg implements liveagg's aggregation functions over a compact, columnar slot layout.
//
// One (series, window) is a Slot: a few float64s in a shared slab (count first, then one or more
// per function), an event-time offset for last, and pointers to sketches for distinct
// (HyperLogLog, github.com/axiomhq/hyperloglog) and quantiles (DDSketch,
// github.com/DataDog/sketches-go). There is no per-series object, so a million series cost a few
// slabs, not a million heap objects for the garbage collector to trace.
//
// Most slots are small: a zone sees a handful of devices in a minute. So distinct and quantiles
// start exact and inline, with room for SmallN values in the slot itself (hashes in
// Slot.Small, values in Slot.Vals), and only a slot that outgrows that gets its sketch, fed the
// inline values first. The sketch of a slot is therefore the same whichever way it was reached
// (record by record, or by merging partials), which keeps merge exact with respect to sketches.
//
// Every function has a mergeable partial state: Merge(partial(A), partial(B)) equals the state
// of A ∪ B, exactly for count, sum, min, max, avg and last (sums exactly while they are integers
// below 2^53; beyond that, within float64 rounding), and within the sketch's error bound for
// distinct and quantiles. That is what lets level 2 of a pipeline merge level 1's partials, and
// what lets a checkpoint be restored and extended.
//
// Each function lives in its own file (count.go, sum.go, ...); Layout dispatches among them.
package agg

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/cespare/xxhash/v2"

	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
)

// Kind is an aggregation function.
type Kind uint8

// Kinds, in the order of spec.Functions.
const (
	Count Kind = iota + 1
	Sum
	Min
	Max
	Avg
	Last
	Distinct
	Quantiles
)

var kindNames = map[string]Kind{
	spec.FnCount: Count, spec.FnSum: Sum, spec.FnMin: Min, spec.FnMax: Max, spec.FnAvg: Avg,
	spec.FnLast: Last, spec.FnDistinct: Distinct, spec.FnQuantiles: Quantiles,
}

func (k Kind) String() string {
	for n, kk := range kindNames {
		if kk == k {
			return n
		}
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Func is one aggregation of a Layout, resolved to where its inputs and state live.
type Func struct {
	Kind  Kind
	Name  string
	Field string
	// Num is the field's index in record.Record.Num (sum, min, max, avg, last, quantiles).
	Num int
	// Str is the field's index in record.Record.Str (distinct).
	Str int
	// Off is the offset of the function's float state in Slot.Vals.
	Off int
	// Sketch is the index in Slot.HLL (distinct) or Slot.DDS (quantiles).
	Sketch int
	// SmallOff is the offset of a distinct's inline hashes in Slot.Small.
	SmallOff int
	// Text is a text last's index in Slot.Text (and its Str the field's index in
	// record.Record.Str); -1 for every other function.
	Text int
	// Precision of a distinct HyperLogLog.
	Precision uint8
	// RelativeAccuracy and Quantiles of a quantiles DDSketch.
	RelativeAccuracy float64
	Quantiles        []float64
	mapping          mapping.IndexMapping
	// sharedSum marks a sum or avg that reuses an earlier function's running sum of the same
	// field; only the first one updates and merges it.
	sharedSum bool
}

// FieldIndex resolves record field names to their indexes in a decoded record; record.Decoder
// implements it.
type FieldIndex interface {
	NumIndex(field string) int
	StrIndex(field string) int
}

type noFields struct{}

func (noFields) NumIndex(string) int { return -1 }
func (noFields) StrIndex(string) int { return -1 }

// Layout is the slot layout of one spec: which floats, offsets and sketches each function uses.
// It is immutable and shared by every partition of a worker.
type Layout struct {
	Funcs []Func
	// Stride is the number of float64s per slot; Vals[0] is always the record count.
	Stride int
	// HasLast says whether slots carry a last event-time offset.
	HasLast bool
	// NumHLL and NumDDS are the sketch columns per slot.
	NumHLL, NumDDS int
	// SmallStride is the number of inline distinct hashes per slot (SmallN per distinct).
	SmallStride int
	// NumText is the text values per slot: one per text last.
	NumText int
	columns []string
	kinds   []ColumnKind
	fp      uint64
}

// NewLayout resolves a spec's aggregations against the fields of a decoder.
//
// fields may be nil for a layout that only merges (a spec reading partials): its states arrive
// aggregated, so no function reads a record field.
func NewLayout(s *spec.Spec, fields FieldIndex) (*Layout, error) {
	mergeOnly := fields == nil
	if mergeOnly {
		fields = noFields{}
	}
	l := &Layout{Stride: 1}
	sumOff := map[string]int{}
	for i, a := range s.Aggregations {
		k, ok := kindNames[a.Fn]
		if !ok {
			return nil, fmt.Errorf("aggregations[%d]: unknown function %q", i, a.Fn)
		}
		f := Func{Kind: k, Name: a.AggName(), Field: a.Field, Num: -1, Str: -1, Text: -1}
		if a.Name != "" {
			f.Name = a.Name
		}
		switch k {
		case Count:
		case Distinct:
			f.Str = fields.StrIndex(a.Field)
			f.Sketch = l.NumHLL
			f.Precision = uint8(a.Precision)
			f.SmallOff = l.SmallStride
			l.SmallStride += SmallN
			l.NumHLL++
		case Quantiles:
			f.Num = fields.NumIndex(a.Field)
			f.Sketch = l.NumDDS
			f.RelativeAccuracy = a.RelativeAccuracy
			f.Quantiles = a.Quantiles
			m, err := mapping.NewLogarithmicMapping(a.RelativeAccuracy)
			if err != nil {
				return nil, fmt.Errorf("aggregations[%d]: %w", i, err)
			}
			f.mapping = m
			f.Off = l.Stride
			l.Stride += SmallN
			l.NumDDS++
		case Sum, Avg:
			// sum and avg of one field share one running sum; avg divides it by the count.
			f.Num = fields.NumIndex(a.Field)
			if off, ok := sumOff[a.Field]; ok {
				f.Off = off
				f.sharedSum = true
			} else {
				f.Off = l.Stride
				sumOff[a.Field] = f.Off
				l.Stride++
			}
		case Last:
			l.HasLast = true
			if a.IsText() {
				f.Str = fields.StrIndex(a.Field)
				f.Text = l.NumText
				l.NumText++
				break
			}
			f.Num = fields.NumIndex(a.Field)
			f.Off = l.Stride
			l.Stride++
		default: // Min, Max
			f.Num = fields.NumIndex(a.Field)
			f.Off = l.Stride
			l.Stride++
		}
		readsText := f.Kind == Distinct || f.Text >= 0
		if !mergeOnly && ((readsText && f.Str < 0) || (f.Kind != Count && !readsText && f.Num < 0)) {
			return nil, fmt.Errorf("aggregations[%d]: field %q is not decoded", i, a.Field)
		}
		l.Funcs = append(l.Funcs, f)
	}
	for _, f := range l.Funcs {
		switch {
		case f.Kind == Quantiles:
			for _, q := range f.Quantiles {
				l.columns = append(l.columns, f.Name+"_"+QuantileSuffix(q))
				l.kinds = append(l.kinds, ColumnReal)
			}
			continue
		case f.Kind == Count, f.Kind == Distinct:
			l.kinds = append(l.kinds, ColumnInteger)
		case f.Text >= 0:
			l.kinds = append(l.kinds, ColumnText)
		default:
			l.kinds = append(l.kinds, ColumnReal)
		}
		l.columns = append(l.columns, f.Name)
	}
	l.fp = l.fingerprint()
	return l, nil
}

// LayoutOf is the layout of a spec as its workers build it: resolved against the spec's record
// decoder, or merge-only for a spec reading partials. The provider and the CLI use it to
// derive columns and state formats without the worker runtime.
func LayoutOf(s *spec.Spec) (*Layout, error) {
	if s.Input.Format == spec.FormatPartials {
		return NewLayout(s, nil)
	}
	dec, err := record.NewDecoder(s)
	if err != nil {
		return nil, err
	}
	return NewLayout(s, dec)
}

// QuantileSuffix names a rank as a column suffix: 0.5 is p50, 0.99 p99, 0.999 p99_9.
func QuantileSuffix(q float64) string {
	s := strconv.FormatFloat(q*100, 'f', -1, 64)
	return "p" + strings.ReplaceAll(s, ".", "_")
}

// Columns are the names of the values Results writes, in order: one per function, and one per
// rank for quantiles.
func (l *Layout) Columns() []string { return l.columns }

// ColumnKind is what a column holds, for stores that type their columns.
type ColumnKind uint8

// Column kinds.
const (
	// ColumnReal is a float64: sum, min, max, avg, last of numbers, quantiles.
	ColumnReal ColumnKind = iota
	// ColumnInteger is a whole number: count and distinct.
	ColumnInteger
	// ColumnText is text: last of text.
	ColumnText
)

// ColumnKinds says what each of Columns holds, in the same order. Results holds NaN for a
// text column; its value is in Texts.
func (l *Layout) ColumnKinds() []ColumnKind { return l.kinds }

// Slot is one (series, window)'s state, scattered over a chunk's columns.
type Slot struct {
	// Vals holds Layout.Stride floats; Vals[0] is the record count.
	Vals []float64
	// LastOff is the event time of the last value, in ms after Start (nil without last).
	LastOff *uint32
	// Start is the window start in Unix ms, the base of LastOff.
	Start int64
	// HLL and DDS are the sketches of distinct and quantiles, nil while the slot is small.
	HLL []*HLL
	DDS []*DDS
	// Small holds SmallN inline hashes per distinct, used while its HLL is nil (0 is empty).
	Small []uint64
	// Text holds one value per text last ("" while the slot is empty).
	Text []string
}

// SmallN is how many values distinct and quantiles keep inline, exactly, before a slot gets a
// sketch. Four covers most (series, window) slots of real streams at 32 bytes each.
const SmallN = 4

// Init prepares an empty slot; every slot is initialised before its first Update or Merge.
func (l *Layout) Init(s Slot) {
	clear(s.Vals)
	clear(s.Small)
	clear(s.Text)
	for _, f := range l.Funcs {
		switch f.Kind {
		case Min:
			s.Vals[f.Off] = math.Inf(1)
		case Max:
			s.Vals[f.Off] = math.Inf(-1)
		}
	}
	if s.LastOff != nil {
		*s.LastOff = 0
	}
}

// Results appends the final value of every column to dst.
func (l *Layout) Results(s Slot, dst []float64) []float64 {
	n := s.Vals[0]
	for _, f := range l.Funcs {
		switch f.Kind {
		case Count:
			dst = append(dst, n)
		case Last:
			if f.Text >= 0 {
				dst = append(dst, math.NaN()) // its value is in Texts
			} else {
				dst = append(dst, s.Vals[f.Off])
			}
		case Sum, Min, Max:
			dst = append(dst, s.Vals[f.Off])
		case Avg:
			dst = append(dst, avgResult(s.Vals[f.Off], n))
		case Distinct:
			dst = append(dst, distinctResult(s.HLL[f.Sketch], s.Small[f.SmallOff:f.SmallOff+SmallN]))
		case Quantiles:
			dst = quantilesResult(dst, s.DDS[f.Sketch], s.Vals[f.Off:f.Off+SmallN], int(n), f.Quantiles)
		}
	}
	return dst
}

// Texts appends the value of every text column to dst, in column order.
func (l *Layout) Texts(s Slot, dst []string) []string {
	for _, f := range l.Funcs {
		if f.Text >= 0 {
			dst = append(dst, s.Text[f.Text])
		}
	}
	return dst
}

// Fingerprint identifies the layout's state format: two layouts with the same fingerprint read
// each other's slots. Names are left out (renaming a column does not change state).
func (l *Layout) Fingerprint() uint64 {
	if l.fp != 0 {
		return l.fp // computed once by NewLayout: every partial a next level reads checks it
	}
	return l.fingerprint()
}

func (l *Layout) fingerprint() uint64 {
	var b []byte
	b = fmt.Appendf(b, "stride=%d small=%d/%d last=%v;", l.Stride, l.SmallStride, SmallN, l.HasLast)
	if l.NumText > 0 {
		// Only layouts with text say so, so that every other layout keeps its fingerprint
		// (and its checkpoints and partials stay readable).
		b = fmt.Appendf(b, "text=%d;", l.NumText)
	}
	for _, f := range l.Funcs {
		b = fmt.Appendf(b, "%d:%s:%d:%d:%d:%g:%v;", f.Kind, f.Field, f.Off, f.SmallOff, f.Precision, f.RelativeAccuracy, f.Quantiles)
		if f.Text >= 0 {
			b = fmt.Appendf(b, "text:%d;", f.Text)
		}
	}
	return xxhash.Sum64(b)
}

// NewSlot allocates a standalone, initialised slot for the window starting at start: for
// decoding partials and merging outside a store.
func (l *Layout) NewSlot(start int64) Slot {
	s := Slot{
		Vals:  make([]float64, l.Stride),
		Start: start,
		HLL:   make([]*HLL, l.NumHLL),
		DDS:   make([]*DDS, l.NumDDS),
		Small: make([]uint64, l.SmallStride),
		Text:  make([]string, l.NumText),
	}
	if l.HasLast {
		s.LastOff = new(uint32)
	}
	l.Init(s)
	return s
}
