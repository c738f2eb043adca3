package record

import (
	"errors"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/spec"
)

func testSpec(t testing.TB, unit string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte(`
name: t
input: {topic: raw, time_field: ts, time_unit: ` + unit + `, max_future_skew: 1h, max_record_bytes: 400}
key: [org, loc.zone]
windows: [1m]
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: max, field: rssi}
  - {fn: distinct, field: device}
outputs: [{type: stdout}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const logTime = 1_764_000_000_000 // ms

func TestDecodeValid(t *testing.T) {
	d, err := NewDecoder(testSpec(t, "ms"))
	if err != nil {
		t.Fatal(err)
	}
	r := d.NewRecord()
	in := `{"org":"acme","loc":{"zone":7},"ts":1764000000123,"dwell_ms":"250","rssi":-61.5,"device":"d\u00e9v-1","extra":[1,2,{"x":null}]}`
	if err := d.Decode([]byte(in), logTime, r); err != nil {
		t.Fatal(err)
	}
	if string(r.Key[0]) != "acme" || string(r.Key[1]) != "7" {
		t.Errorf("key = %q", r.Key)
	}
	if r.Time != 1764000000123 {
		t.Errorf("time = %d", r.Time)
	}
	if r.Num[d.NumIndex("dwell_ms")] != 250 || r.Num[d.NumIndex("rssi")] != -61.5 {
		t.Errorf("num = %v", r.Num)
	}
	if got := string(r.Str[d.StrIndex("device")]); got != "dév-1" {
		t.Errorf("device = %q", got)
	}
}

func TestDecodeTimeUnits(t *testing.T) {
	tests := []struct {
		unit, ts string
		want     int64
	}{
		{"s", "1764000000", 1764000000000},
		{"s", "1764000000.25", 1764000000250},
		{"ms", "1764000000123", 1764000000123},
		{"us", "1764000000123456", 1764000000123},
		{"ns", "1764000000123456789", 1764000000123},
		{"ms", "-1500", -1500},
		{"us", "-1500", -2},
		{"rfc3339", `"2025-11-24T16:00:00.123Z"`, 1764000000123},
		{"rfc3339", `"2025-11-24T17:00:00.123+01:00"`, 1764000000123},
	}
	for _, tc := range tests {
		d, err := NewDecoder(testSpec(t, tc.unit))
		if err != nil {
			t.Fatal(err)
		}
		r := d.NewRecord()
		in := `{"org":"a","loc":{"zone":"z"},"ts":` + tc.ts + `,"dwell_ms":1,"rssi":1,"device":"d"}`
		if err := d.Decode([]byte(in), 0, r); err != nil {
			t.Errorf("%s %s: %v", tc.unit, tc.ts, err)
			continue
		}
		if r.Time != tc.want {
			t.Errorf("%s %s: time = %d, want %d", tc.unit, tc.ts, r.Time, tc.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := `{"org":"a","loc":{"zone":"z"},"ts":1764000000000,"dwell_ms":1,"rssi":1,"device":"d"}`
	tests := []struct {
		name   string
		in     string
		reason Reason
		field  string
	}{
		{"truncated", good[:40], ReasonMalformed, ""},
		{"empty", ``, ReasonMalformed, ""},
		{"not an object", `[1,2]`, ReasonMalformed, ""},
		{"trailing garbage", good + `x`, ReasonMalformed, ""},
		{"too large", `{"org":"` + strings.Repeat("a", 500) + `"}`, ReasonTooLarge, ""},
		{"missing key", strings.Replace(good, `"org":"a",`, ``, 1), ReasonMissing, "org"},
		{"missing nested key", strings.Replace(good, `"loc":{"zone":"z"}`, `"loc":{}`, 1), ReasonMissing, "loc.zone"},
		{"object key", strings.Replace(good, `"org":"a"`, `"org":{"a":1}`, 1), ReasonWrongType, "org"},
		{"null key", strings.Replace(good, `"org":"a"`, `"org":null`, 1), ReasonWrongType, "org"},
		{"separator in key", strings.Replace(good, `"org":"a"`, `"org":"a\u001fb"`, 1), ReasonBadKey, "org"},
		{"missing time", strings.Replace(good, `"ts":1764000000000,`, ``, 1), ReasonMissing, "ts"},
		{"string time", strings.Replace(good, `"ts":1764000000000`, `"ts":"soon"`, 1), ReasonBadTime, "ts"},
		{"huge time", strings.Replace(good, `"ts":1764000000000`, `"ts":1e300`, 1), ReasonBadTime, "ts"},
		{"far future", strings.Replace(good, `"ts":1764000000000`, `"ts":1864000000000`, 1), ReasonFuture, "ts"},
		{"text number", strings.Replace(good, `"dwell_ms":1`, `"dwell_ms":"soon"`, 1), ReasonWrongType, "dwell_ms"},
		{"hex string number", strings.Replace(good, `"dwell_ms":1`, `"dwell_ms":"0x10"`, 1), ReasonWrongType, "dwell_ms"},
		{"NaN string number", strings.Replace(good, `"dwell_ms":1`, `"dwell_ms":"NaN"`, 1), ReasonWrongType, "dwell_ms"},
		{"huge string number", strings.Replace(good, `"dwell_ms":1`, `"dwell_ms":"1e999"`, 1), ReasonWrongType, "dwell_ms"},
		{"invalid UTF-8 in a key", strings.Replace(good, `"org":"a"`, "\"org\":\"m\xff\xfe\"", 1), ReasonBadUTF8, "org"},

		{"huge number", strings.Replace(good, `"dwell_ms":1`, `"dwell_ms":1e999`, 1), ReasonWrongType, "dwell_ms"},
		{"missing number", strings.Replace(good, `"rssi":1,`, ``, 1), ReasonMissing, "rssi"},
		{"array distinct", strings.Replace(good, `"device":"d"`, `"device":[1]`, 1), ReasonWrongType, "device"},
		{"missing distinct", strings.Replace(good, `,"device":"d"`, ``, 1), ReasonMissing, "device"},
	}
	d, err := NewDecoder(testSpec(t, "ms"))
	if err != nil {
		t.Fatal(err)
	}
	r := d.NewRecord()
	if err := d.Decode([]byte(good), logTime, r); err != nil {
		t.Fatalf("the good record fails: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Decode([]byte(tc.in), logTime, r)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) = %v, want *Error", tc.in, err)
			}
			if e.Reason != tc.reason || e.Field != tc.field {
				t.Fatalf("Decode(%q) = %v (reason %s field %q), want reason %s field %q", tc.in, err, e.Reason, e.Field, tc.reason, tc.field)
			}
			if ReasonOf(err) != tc.reason {
				t.Fatalf("ReasonOf = %q", ReasonOf(err))
			}
		})
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	d, err := NewDecoder(testSpec(t, "ms"))
	if err != nil {
		t.Fatal(err)
	}
	r := d.NewRecord()
	in := []byte(`{"org":"acme","loc":{"zone":7},"ts":1764000000123,"dwell_ms":250,"rssi":-61,"device":42}`)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.Decode(in, logTime, r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocates %.1f times per record, want 0", allocs)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"org":"a","loc":{"zone":"z"},"ts":1764000000000,"dwell_ms":1,"rssi":1,"device":"d"}`), int64(logTime))
	f.Add([]byte(`{"org":1e5,"loc":{"zone":true},"ts":-1,"dwell_ms":-0.0,"rssi":1e308,"device":null}`), int64(0))
	f.Add([]byte(`{"org":"\ud800","loc":{"zone":"\u001f"},"ts":"x"}`), int64(1))
	f.Add([]byte(`{"a":[[[[[[[[[[[[]]]]]]]]]]]]}`), int64(0))
	d, err := NewDecoder(testSpec(f, "ms"))
	if err != nil {
		f.Fatal(err)
	}
	r := d.NewRecord()
	f.Fuzz(func(t *testing.T, in []byte, lt int64) {
		err := d.Decode(in, lt, r)
		if err == nil {
			for _, k := range r.Key {
				if strings.ContainsRune(string(k), KeySep) {
					t.Fatalf("accepted a key with the separator: %q", k)
				}
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Reason == "" {
			t.Fatalf("error without a reason: %v", err)
		}
	})
}

func TestCanonicalKey(t *testing.T) {
	parts := [][]byte{[]byte("acme"), []byte("7"), []byte("")}
	tests := []struct {
		key  string
		idx  []int
		want bool
	}{
		{"acme", []int{0}, true},
		{"7", []int{1}, true},
		{"acme\x1f7", []int{0, 1}, true},
		{"7\x1facme", []int{1, 0}, true},
		{"acme\x1f7\x1f", []int{0, 1, 2}, true},
		{"", []int{2}, true},
		{"acm", []int{0}, false},
		{"acmee", []int{0}, false},
		{"acme7", []int{0, 1}, false},
		{"acme\x1f7", []int{0}, false},
		{"", []int{0}, false},
		{`{"org":"acme"}`, []int{0}, false},
	}
	for _, tc := range tests {
		if got := IsCanonicalKey([]byte(tc.key), parts, tc.idx); got != tc.want {
			t.Errorf("IsCanonicalKey(%q, %v) = %v, want %v", tc.key, tc.idx, got, tc.want)
		}
		if tc.want {
			if got := string(AppendCanonicalKey(nil, parts, tc.idx)); got != tc.key {
				t.Errorf("AppendCanonicalKey(%v) = %q, want %q", tc.idx, got, tc.key)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { IsCanonicalKey([]byte("acme\x1f7"), parts, []int{0, 1}) }); n != 0 {
		t.Errorf("IsCanonicalKey allocates %v times", n)
	}
}

// Text kept as text (last of text) must be valid UTF-8; distinct only hashes its values, so a
// record with odd bytes there still counts.
func TestUTF8OnlyWhereTextIsKept(t *testing.T) {
	s, err := spec.Parse([]byte(`
name: t
input: {topic: raw, time_field: ts}
key: [k]
windows: [1m]
aggregations: [{fn: distinct, field: device}, {fn: last, field: status, type: text}]
outputs: [{type: stdout}]
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(s)
	if err != nil {
		t.Fatal(err)
	}
	r := d.NewRecord()
	if err := d.Decode([]byte("{\"k\":\"a\",\"ts\":1,\"device\":\"d\xc3\",\"status\":\"ok\"}"), 0, r); err != nil {
		t.Errorf("odd bytes in a distinct field: %v", err)
	}
	err = d.Decode([]byte("{\"k\":\"a\",\"ts\":1,\"device\":\"d\",\"status\":\"o\xffk\"}"), 0, r)
	if ReasonOf(err) != ReasonBadUTF8 {
		t.Errorf("invalid UTF-8 in a text last: %v, want invalid_utf8", err)
	}
}
