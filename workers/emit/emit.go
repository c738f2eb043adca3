// Package emit is the hand-off between the state store and the sinks: a closed window copied
// out of the store (which recycles its memory as soon as the window is emitted), with its
// place in the partition's output sequence, and the renderings sinks share.
package emit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/state"
)

// Window is one closed window of one input partition, ready for sinks.
type Window struct {
	Spec      string
	Topic     string
	Partition int32
	// Seq numbers the partition's emitted windows from 0. Replay from a checkpoint re-emits
	// the same windows with the same numbers, which is how sinks skip what they already wrote.
	Seq uint64
	// Offset is the input offset of the record whose event time closed the window (the next
	// offset to read after it, for windows closed by a flush).
	Offset      int64
	Size, Start int64 // ms
	KeyFields   []string
	Columns     []string
	// Kinds says what each column holds; a text column's values are in Row.Texts.
	Kinds []agg.ColumnKind
	Rows  []Row
	// States holds each row's encoded aggregation state, for partial outputs; nil unless
	// AttachStates was called.
	States [][]byte
}

// Row is one series of a window.
type Row struct {
	Key    []string // values of KeyFields
	Values []float64
	// Texts holds the values of the text columns, in column order (nil without any).
	Texts []string
}

// TextAt returns the text of column j (a ColumnText column) of row i.
func (w *Window) TextAt(i, j int) string {
	t := 0
	for k := range j {
		if w.Kinds[k] == agg.ColumnText {
			t++
		}
	}
	return w.Rows[i].Texts[t]
}

// End is the window's exclusive end, Unix ms.
func (w *Window) End() int64 { return w.Start + w.Size }

// Copy materialises a state window. Keys are split on record.KeySep.
func Copy(sw *state.Window, spec, topic string, partition int32, keyFields []string, seq uint64, offset int64) *Window {
	w := CopyKeys(sw, spec, topic, partition, keyFields, seq, offset)
	vals := make([]float64, 0, sw.Len()*len(w.Columns))
	l := sw.Layout()
	var texts []string
	for i := range sw.Len() {
		start := len(vals)
		vals = sw.Results(i, vals)
		w.Rows[i].Values = vals[start:len(vals):len(vals)]
		if l.NumText > 0 {
			start := len(texts)
			texts = l.Texts(sw.Slot(i), texts)
			w.Rows[i].Texts = texts[start:len(texts):len(texts)]
		}
	}
	return w
}

// CopyKeys materialises a state window's keys only, without final values: for a spec whose
// outputs all take partial states, where computing values (quantiles walk their sketches)
// would be work nobody reads. Attach the states with AttachStates.
func CopyKeys(sw *state.Window, spec, topic string, partition int32, keyFields []string, seq uint64, offset int64) *Window {
	w := &Window{
		Spec: spec, Topic: topic, Partition: partition, Seq: seq, Offset: offset,
		Size: sw.Size, Start: sw.Start, KeyFields: keyFields, Columns: sw.Layout().Columns(), Kinds: sw.Layout().ColumnKinds(),
		Rows: make([]Row, sw.Len()),
	}
	for i := range sw.Len() {
		w.Rows[i].Key = strings.Split(string(sw.Key(i)), string(record.KeySep))
	}
	return w
}

// AttachStates encodes the state of every row of sw (the window w was copied from) for
// partial outputs.
func (w *Window) AttachStates(sw *state.Window) error {
	l := sw.Layout()
	var buf []byte
	ends := make([]int, sw.Len())
	for i := range sw.Len() {
		var err error
		if buf, err = l.AppendSlot(buf, sw.Slot(i)); err != nil {
			return fmt.Errorf("encode partial state: %w", err)
		}
		ends[i] = len(buf)
	}
	w.States = make([][]byte, len(ends))
	prev := 0
	for i, e := range ends {
		w.States[i] = buf[prev:e:e]
		prev = e
	}
	return nil
}

// AppendJSON appends row i as one JSON object: spec, window, key fields, then values. Counts
// and other whole numbers print without a fraction; NaN (quantiles of an empty sketch) prints
// as null.
func (w *Window) AppendJSON(dst []byte, i int) []byte {
	r := &w.Rows[i]
	dst = append(dst, `{"spec":`...)
	dst = AppendString(dst, w.Spec)
	dst = append(dst, `,"window_start":"`...)
	dst = time.UnixMilli(w.Start).UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","window_size":"`...)
	dst = append(dst, (time.Duration(w.Size) * time.Millisecond).String()...)
	dst = append(dst, '"')
	for j, f := range w.KeyFields {
		dst = append(dst, ',')
		dst = AppendString(dst, f)
		dst = append(dst, ':')
		dst = AppendString(dst, r.Key[j])
	}
	t := 0
	for j, c := range w.Columns {
		dst = append(dst, ',')
		dst = AppendString(dst, c)
		dst = append(dst, ':')
		switch {
		case j >= len(r.Values):
			// A window copied without final values (its outputs all take partial states).
			dst = append(dst, "null"...)
		case w.Kinds != nil && w.Kinds[j] == agg.ColumnText:
			dst = AppendString(dst, r.Texts[t])
			t++
		default:
			dst = AppendNumber(dst, r.Values[j])
		}
	}
	return append(dst, '}')
}

// AppendString appends s as a JSON string. Unlike strconv.Quote it escapes control characters
// the JSON way (\u0001, not \x01), so any key or text a record carried renders as valid JSON;
// bytes that are not UTF-8 become U+FFFD.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r < 0x20 || r == 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}

// AppendNumber renders a float for JSON: integers without a fraction, NaN and Inf as null.
func AppendNumber(dst []byte, v float64) []byte {
	switch {
	case v != v || v > 1e308 || v < -1e308:
		return append(dst, "null"...)
	case v == float64(int64(v)) && v < 1e15 && v > -1e15:
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}
