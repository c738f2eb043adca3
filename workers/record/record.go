// Package record decodes raw JSON events into just the fields an aggregation spec needs: the
// series key, the event time, numeric fields and the values counted by distinct.
//
// It is on the hot path of every worker, so it parses with valyala/fastjson (a reusable parser
// that builds no Go objects per record and allocates nothing once warm) instead of reflecting a
// whole object into a struct, and it hands back slices into the input rather than copies: a
// Record is valid until the next Decode or until the input buffer is reused.
//
// Bad input is data, not a crash: every failure is an *Error with a Reason, which the worker
// counts per reason and routes to the dead-letter topic.
package record

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/liveagg/liveagg/workers/spec"
)

// Reason classifies why a record was rejected; it is the dead-letter header and a metric label.
type Reason string

// Reasons a record is rejected. Late records are decided by the state store (ReasonLate).
const (
	ReasonTooLarge  Reason = "too_large"
	ReasonMalformed Reason = "malformed_json"
	ReasonMissing   Reason = "missing_field"
	ReasonWrongType Reason = "wrong_type"
	ReasonBadTime   Reason = "bad_time"
	ReasonFuture    Reason = "future_time"
	ReasonBadKey    Reason = "bad_key"
	ReasonBadUTF8   Reason = "invalid_utf8"
	ReasonLate      Reason = "late"
	ReasonBadState  Reason = "bad_partial"
	// ReasonPoison is a record that failed the worker PoisonAfter times in a row; the detail
	// holds the error.
	ReasonPoison Reason = "poison"
	// ReasonMisKeyed is a record whose Kafka key is not the canonical key of the fields the
	// spec says the topic is partitioned by (spec.Input.PartitionedBy).
	ReasonMisKeyed Reason = "mis_keyed"
)

// Reasons lists every Reason, for pre-registering metric label values.
var Reasons = []Reason{ReasonTooLarge, ReasonMalformed, ReasonMissing, ReasonWrongType,
	ReasonBadTime, ReasonFuture, ReasonBadKey, ReasonBadUTF8, ReasonLate, ReasonBadState, ReasonPoison, ReasonMisKeyed}

// Error is why one record could not be used.
type Error struct {
	Reason Reason
	// Field is the offending field, if one.
	Field string
	// Detail is a human-readable explanation.
	Detail string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
	}
	return fmt.Sprintf("%s: field %s: %s", e.Reason, e.Field, e.Detail)
}

// ReasonOf returns the Reason of a decode error, or "" if err is not an *Error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// KeySep separates key values in a series identifier. Key values may not contain it.
const KeySep = '\x1f'

// Record is the part of one event a spec uses. Slices point into the decoded input.
type Record struct {
	// Key holds the spec's key field values in spec order.
	Key [][]byte
	// Time is the event time in Unix milliseconds.
	Time int64
	// LogTime is the record's Kafka log timestamp in Unix milliseconds (0 when unknown).
	LogTime int64
	// Num holds numeric field values, indexed as Decoder.NumIndex says.
	Num []float64
	// Str holds the text of the fields distinct counts and text last keeps, indexed as
	// Decoder.StrIndex says.
	Str [][]byte
}

// Decoder extracts one spec's fields. It is not safe for concurrent use: each partition owner
// has its own, which is also what keeps it allocation-free.
type Decoder struct {
	p        fastjson.Parser
	keyNames []string
	keyPaths [][]string
	timeName string
	timePath []string
	unit     string
	numNames []string
	numPaths [][]string
	strNames []string
	strPaths [][]string
	// strText marks the text fields that are stored as text (last of text), which must be
	// valid UTF-8; distinct only hashes its values, whatever their bytes.
	strText   []bool
	maxBytes  int
	maxSkewMs int64
	// Scratch buffers per key and Str field hold numbers rendered as text, reused across
	// records so that numeric keys allocate nothing either.
	keyScratch [][]byte
	strScratch [][]byte
}

// NewDecoder builds a decoder for a JSON-input spec.
func NewDecoder(s *spec.Spec) (*Decoder, error) {
	if s.Input.Format != spec.FormatJSON {
		return nil, fmt.Errorf("record decoder: spec %s reads %s, not json", s.Name, s.Input.Format)
	}
	d := &Decoder{
		timeName:  s.Input.TimeField,
		timePath:  strings.Split(s.Input.TimeField, "."),
		unit:      s.Input.TimeUnit,
		maxBytes:  s.Input.MaxRecordBytes,
		maxSkewMs: s.Input.MaxFutureSkew.Millis(),
	}
	for _, k := range s.Key {
		d.keyNames = append(d.keyNames, k)
		d.keyPaths = append(d.keyPaths, strings.Split(k, "."))
	}
	for _, a := range s.Aggregations {
		switch {
		case a.Fn == spec.FnCount:
		case a.Fn == spec.FnDistinct, a.IsText():
			i := slices.Index(d.strNames, a.Field)
			if i < 0 {
				i = len(d.strNames)
				d.strNames = append(d.strNames, a.Field)
				d.strPaths = append(d.strPaths, strings.Split(a.Field, "."))
				d.strText = append(d.strText, false)
			}
			d.strText[i] = d.strText[i] || a.IsText()
		default:
			if !slices.Contains(d.numNames, a.Field) {
				d.numNames = append(d.numNames, a.Field)
				d.numPaths = append(d.numPaths, strings.Split(a.Field, "."))
			}
		}
	}
	d.keyScratch = make([][]byte, len(d.keyNames))
	d.strScratch = make([][]byte, len(d.strNames))
	return d, nil
}

// NumIndex is the index in Record.Num of a numeric field, or -1.
func (d *Decoder) NumIndex(field string) int { return slices.Index(d.numNames, field) }

// StrIndex is the index in Record.Str of a text field (distinct, text last), or -1.
func (d *Decoder) StrIndex(field string) int { return slices.Index(d.strNames, field) }

// NewRecord returns a Record sized for this decoder, to be reused across Decode calls.
func (d *Decoder) NewRecord() *Record {
	return &Record{
		Key: make([][]byte, len(d.keyPaths)),
		Num: make([]float64, len(d.numPaths)),
		Str: make([][]byte, len(d.strPaths)),
	}
}

// Decode fills r from one JSON event. logTimeMs is the Kafka log timestamp in Unix
// milliseconds (0 when there is none), the reference for the future-time check: unlike the
// wall clock, it replays identically. On error r is unspecified and the error is an *Error.
func (d *Decoder) Decode(value []byte, logTimeMs int64, r *Record) error {
	if len(value) > d.maxBytes {
		return &Error{Reason: ReasonTooLarge, Detail: fmt.Sprintf("%d bytes, limit %d", len(value), d.maxBytes)}
	}
	v, err := d.p.ParseBytes(value)
	if err != nil {
		return &Error{Reason: ReasonMalformed, Detail: err.Error()}
	}
	if v.Type() != fastjson.TypeObject {
		return &Error{Reason: ReasonMalformed, Detail: "not a JSON object"}
	}
	for i, path := range d.keyPaths {
		f := v.Get(path...)
		if f == nil {
			return &Error{Reason: ReasonMissing, Field: d.keyNames[i], Detail: "key field is missing"}
		}
		var b []byte
		switch f.Type() {
		case fastjson.TypeString:
			b, _ = f.StringBytes()
		case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
			// Numbers and booleans key as their JSON text.
			d.keyScratch[i] = rawScalar(f, d.keyScratch[i][:0])
			b = d.keyScratch[i]
		default:
			return &Error{Reason: ReasonWrongType, Field: d.keyNames[i], Detail: "key field must be a string, number or boolean, not " + f.Type().String()}
		}
		if bytes.IndexByte(b, KeySep) >= 0 {
			return &Error{Reason: ReasonBadKey, Field: d.keyNames[i], Detail: "key value contains the control character U+001F"}
		}
		// Keys become text columns and JSON strings downstream; a store that validates text
		// (Cassandra does) would refuse the row on every replay, so bad text stops here.
		if !validText(b) {
			return &Error{Reason: ReasonBadUTF8, Field: d.keyNames[i], Detail: "key value is not valid UTF-8"}
		}
		r.Key[i] = b
	}
	t, err := d.eventTime(v)
	if err != nil {
		return err
	}
	if logTimeMs > 0 && d.maxSkewMs > 0 && t > logTimeMs+d.maxSkewMs {
		return &Error{Reason: ReasonFuture, Field: d.timeName,
			Detail: fmt.Sprintf("event time %s is more than %s after the log time %s",
				time.UnixMilli(t).UTC().Format(time.RFC3339), time.Duration(d.maxSkewMs)*time.Millisecond,
				time.UnixMilli(logTimeMs).UTC().Format(time.RFC3339))}
	}
	r.Time, r.LogTime = t, logTimeMs
	for i, path := range d.numPaths {
		f := v.Get(path...)
		if f == nil {
			return &Error{Reason: ReasonMissing, Field: d.numNames[i], Detail: "field is missing"}
		}
		var x float64
		switch f.Type() {
		case fastjson.TypeNumber:
			x, err = f.Float64()
		case fastjson.TypeString:
			// Many producers write numbers as strings ("amount":"12.50"); a string that is a
			// number in JSON's syntax counts as that number.
			b, _ := f.StringBytes()
			x, err = parseNumericString(b)
			if err != nil {
				return &Error{Reason: ReasonWrongType, Field: d.numNames[i], Detail: "must be a number or a numeric string, not the string " + preview(b)}
			}
		default:
			return &Error{Reason: ReasonWrongType, Field: d.numNames[i], Detail: "must be a number, not " + f.Type().String()}
		}
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return &Error{Reason: ReasonWrongType, Field: d.numNames[i], Detail: "number out of the float64 range"}
		}
		r.Num[i] = x
	}
	for i, path := range d.strPaths {
		f := v.Get(path...)
		if f == nil {
			return &Error{Reason: ReasonMissing, Field: d.strNames[i], Detail: "field is missing"}
		}
		switch f.Type() {
		case fastjson.TypeString:
			r.Str[i], _ = f.StringBytes()
			if d.strText[i] && !validText(r.Str[i]) {
				return &Error{Reason: ReasonBadUTF8, Field: d.strNames[i], Detail: "text value is not valid UTF-8"}
			}
		case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
			d.strScratch[i] = rawScalar(f, d.strScratch[i][:0])
			r.Str[i] = d.strScratch[i]
		default:
			return &Error{Reason: ReasonWrongType, Field: d.strNames[i], Detail: "must be a string, number or boolean, not " + f.Type().String()}
		}
	}
	return nil
}

// validText is utf8.Valid with the ASCII case, nearly every key, checked inline first.
func validText(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
}

// IsCanonicalKey says whether key is the canonical key of the fields at idx in parts (a
// decoded record's Key): their values' text joined by KeySep, so one field's canonical key is
// its value as the record has it (a string as it is, a number or boolean as its JSON text).
// It allocates nothing: the worker checks every record of a spec that declares its input's
// partitioning.
func IsCanonicalKey(key []byte, parts [][]byte, idx []int) bool {
	pos := 0
	for n, i := range idx {
		if n > 0 {
			if pos >= len(key) || key[pos] != KeySep {
				return false
			}
			pos++
		}
		p := parts[i]
		if len(key)-pos < len(p) || !bytes.Equal(key[pos:pos+len(p)], p) {
			return false
		}
		pos += len(p)
	}
	return pos == len(key)
}

// AppendCanonicalKey appends the canonical key of the fields at idx in parts to dst.
func AppendCanonicalKey(dst []byte, parts [][]byte, idx []int) []byte {
	for n, i := range idx {
		if n > 0 {
			dst = append(dst, KeySep)
		}
		dst = append(dst, parts[i]...)
	}
	return dst
}

// parseNumericString reads a string holding a JSON number (no spaces, no hex, no "NaN"/"Inf").
func parseNumericString(b []byte) (float64, error) {
	if len(b) == 0 || len(b) > 64 {
		return 0, errNotNumeric
	}
	for _, c := range b {
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			return 0, errNotNumeric
		}
	}
	return strconv.ParseFloat(string(b), 64)
}

var errNotNumeric = errors.New("not a numeric string")

// preview quotes at most 32 bytes of a value for an error message.
func preview(b []byte) string {
	const n = 32
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}

// rawScalar appends a number's or boolean's JSON text to dst: fastjson keeps a number's text as
// parsed, and MarshalTo of a scalar appends exactly that text.
func rawScalar(f *fastjson.Value, dst []byte) []byte {
	return f.MarshalTo(dst)
}

// timeLimit keeps event times where millisecond arithmetic cannot overflow: years 1677-2262.
const timeLimit = math.MaxInt64 / 1_000_000

func (d *Decoder) eventTime(v *fastjson.Value) (int64, error) {
	f := v.Get(d.timePath...)
	if f == nil {
		return 0, &Error{Reason: ReasonMissing, Field: d.timeName, Detail: "event-time field is missing"}
	}
	if d.unit == spec.UnitRFC3339 {
		if f.Type() != fastjson.TypeString {
			return 0, &Error{Reason: ReasonBadTime, Field: d.timeName, Detail: "must be an RFC 3339 string, not " + f.Type().String()}
		}
		b, _ := f.StringBytes()
		t, err := time.Parse(time.RFC3339Nano, string(b))
		if err != nil {
			return 0, &Error{Reason: ReasonBadTime, Field: d.timeName, Detail: fmt.Sprintf("%q is not RFC 3339", b)}
		}
		return t.UnixMilli(), nil
	}
	if f.Type() != fastjson.TypeNumber {
		return 0, &Error{Reason: ReasonBadTime, Field: d.timeName, Detail: "must be a number of " + d.unit + ", not " + f.Type().String()}
	}
	var ms int64
	if n, err := f.Int64(); err == nil {
		switch d.unit {
		case spec.UnitSeconds:
			if n > timeLimit/1000 || n < -timeLimit/1000 {
				return 0, badTimeRange(d.timeName)
			}
			ms = n * 1000
		case spec.UnitMillis:
			ms = n
		case spec.UnitMicros:
			ms = floorDiv(n, 1000)
		case spec.UnitNanos:
			ms = floorDiv(n, 1_000_000)
		}
	} else {
		x, err := f.Float64()
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, badTimeRange(d.timeName)
		}
		x = math.Floor(x * unitScale(d.unit))
		if x > timeLimit || x < -timeLimit {
			return 0, badTimeRange(d.timeName)
		}
		ms = int64(x)
	}
	if ms > timeLimit || ms < -timeLimit {
		return 0, badTimeRange(d.timeName)
	}
	return ms, nil
}

// unitScale converts a time unit to milliseconds.
func unitScale(unit string) float64 {
	switch unit {
	case spec.UnitSeconds:
		return 1000
	case spec.UnitMicros:
		return 1e-3
	case spec.UnitNanos:
		return 1e-6
	}
	return 1
}

func badTimeRange(field string) error {
	return &Error{Reason: ReasonBadTime, Field: field, Detail: "event time is outside the years 1677-2262"}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
