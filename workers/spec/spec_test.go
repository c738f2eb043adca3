package spec

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseYAMLAndJSONAgree(t *testing.T) {
	y, err := Parse(mustRead(t, "testdata/indoor-l1.yaml"))
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	j, err := Parse(mustRead(t, "testdata/indoor-l1.json"))
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	if !reflect.DeepEqual(y, j) {
		t.Fatalf("YAML and JSON forms differ:\n%+v\n%+v", y, j)
	}
	if got := []time.Duration{y.Windows[0].Std(), y.Windows[1].Std()}; got[0] != time.Minute || got[1] != 15*time.Minute {
		t.Errorf("windows = %v", got)
	}
	wantNames := []string{"count", "sum_dwell_ms", "min_rssi", "max_rssi", "distinct_device", "quantiles_rssi"}
	for i, a := range y.Aggregations {
		if a.Name != wantNames[i] {
			t.Errorf("aggregations[%d].name = %q, want %q", i, a.Name, wantNames[i])
		}
	}
}

func TestExampleSpecIsValid(t *testing.T) {
	if _, err := ParseFile("../../examples/indoor-location/level1.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	s, err := Parse(mustRead(t, "testdata/indoor-l1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("parse marshalled spec: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(s, back) {
		t.Fatalf("round trip changed the spec:\n%s", out)
	}
}

const valid = `
name: t
input: {topic: raw, time_field: ts}
key: [org]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: stdout}]
`

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string // applied to valid
		append  string
		want    []string // each must appear in the error
	}{
		{"unknown top-level field", [2]string{}, "windowz: [1m]", []string{"windowz: unknown field; allowed here: name, input"}},
		{"unknown nested field", [2]string{"{topic: raw,", "{topik: x, topic: raw,"}, "", []string{"input.topik: unknown field"}},
		{"sum needs field", [2]string{"[{fn: count}]", "[{fn: count}, {fn: min, field: x}, {fn: sum}]"}, "", []string{"aggregations[2].field: required for sum"}},
		{"count takes no field", [2]string{"{fn: count}", "{fn: count, field: x}"}, "", []string{"aggregations[0].field: not allowed for count"}},
		{"bad fn", [2]string{"{fn: count}", "{fn: median, field: x}"}, "", []string{`aggregations[0].fn: "median" is not supported: one of count, sum, min, max, avg, last, distinct, quantiles`}},
		{"bad duration", [2]string{"[1m]", "[1m, 15x]"}, "", []string{`windows[1]: "15x" is not a duration`}},
		{"window not dividing a day", [2]string{"[1m]", "[7m]"}, "", []string{"windows[0]: 7m must divide a day evenly"}},
		{"duplicate window", [2]string{"[1m]", "[1m, 60s]"}, "", []string{"windows[1]: 1m is listed twice"}},
		{"missing name", [2]string{"name: t", ""}, "", []string{"name: required"}},
		{"bad name", [2]string{"name: t", "name: Bad Name"}, "", []string{`name: "Bad Name" must be`}},
		{"missing topic", [2]string{"topic: raw, ", ""}, "", []string{"input.topic: required"}},
		{"bad format", [2]string{"time_field: ts}", "time_field: ts, format: avro}"}, "", []string{`input.format: "avro" is not supported: one of json, partials`}},
		{"bad time unit", [2]string{"time_field: ts}", "time_field: ts, time_unit: hours}"}, "", []string{`input.time_unit: "hours" is not supported: one of s, ms, us, ns, rfc3339`}},
		{"partials with time field", [2]string{"time_field: ts}", "time_field: ts, format: partials}"}, "", []string{"input.time_field: not allowed for format partials"}},
		{"precision range", [2]string{"{fn: count}", "{fn: distinct, field: d, precision: 30}"}, "", []string{"aggregations[0].precision: 30 is out of range: 4 to 18"}},
		{"quantile range", [2]string{"{fn: count}", "{fn: quantiles, field: r, quantiles: [0.5, 1.5]}"}, "", []string{"aggregations[0].quantiles[1]: 1.5 is out of range: 0 to 1"}},
		{"partitioned by a bad field", [2]string{"time_field: ts}", "time_field: ts, partitioned_by: [\"a b\"]}"}, "", []string{`input.partitioned_by[0]: "a b" is not a field name`}},
		{"idle timeout too short", [2]string{"time_field: ts}", "time_field: ts, idle_timeout: 100ms}"}, "", []string{"input.idle_timeout: 100ms is too short"}},
		{"partitioned twice", [2]string{"time_field: ts}", "time_field: ts, partitioned_by: [org, org]}"}, "", []string{`input.partitioned_by[1]: "org" is listed twice`}},
		{"text only for last", [2]string{"{fn: count}", "{fn: sum, field: r, type: text}"}, "", []string{"aggregations[0].type: text is only for last; sum computes numbers"}},
		{"bad value type", [2]string{"{fn: count}", "{fn: last, field: r, type: json}"}, "", []string{`aggregations[0].type: "json" is not supported: one of number, text`}},
		{"accuracy only for quantiles", [2]string{"{fn: count}", "{fn: sum, field: r, relative_accuracy: 0.1}"}, "", []string{"aggregations[0].relative_accuracy: only for quantiles"}},
		{"duplicate names", [2]string{"[{fn: count}]", "[{fn: sum, field: a}, {fn: sum, field: a}]"}, "", []string{`aggregations[1].name: "sum_a" is already the name of aggregations[0]`}},
		{"wrong type", [2]string{"key: [org]", "key: org"}, "", []string{"key: must be a list"}},
		{"wrong scalar type", [2]string{"{fn: count}", "{fn: distinct, field: d, precision: high}"}, "", []string{`aggregations[0].precision: must be a whole number, not "high"`}},
		{"duplicate key field", [2]string{"key: [org]", "key: [org, org]"}, "", []string{`key[1]: "org" is listed twice`}},
		{"cassandra needs table", [2]string{"{type: stdout}", "{type: cassandra, keyspace: k}"}, "", []string{"outputs[0].table: required for cassandra"}},
		{"s3 url", [2]string{"{type: stdout}", "{type: s3, url: 'http://x'}"}, "", []string{`outputs[0].url: "http://x" is not s3://bucket/prefix`}},
		{"partial key subset", [2]string{"{type: stdout}", "{type: kafka, topic: p, partial: true, key: [site]}"}, "", []string{`outputs[0].key[0]: "site" is not in the spec's key`}},
		{"partial needs kafka", [2]string{"{type: stdout}", "{type: stdout, partial: true, key: [org]}"}, "", []string{"outputs[0].partial: partial states go through kafka outputs only"}},
		{"key only for partial", [2]string{"{type: stdout}", "{type: kafka, topic: p, key: [org]}"}, "", []string{"outputs[0].key: only for partial outputs"}},
		{"output to input topic", [2]string{"{type: stdout}", "{type: kafka, topic: raw}"}, "", []string{`outputs[0].topic: "raw" is the input topic`}},
		{"field for wrong output type", [2]string{"{type: stdout}", "{type: stdout, table: t}"}, "", []string{"outputs[0].table: not allowed for stdout"}},
		{"negative lateness", [2]string{}, "allowed_lateness: -5s", []string{"allowed_lateness: must not be negative"}},
		{"not yaml", [2]string{"key: [org]", "key: [org"}, "", []string{"not valid YAML or JSON"}},
		{"two documents", [2]string{}, "---\nname: x", []string{"more than one document"}},
		{"several errors at once", [2]string{"key: [org]", "key: []"}, "windows2: 1", []string{"windows2: unknown field"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := valid
			if tc.replace[0] != "" {
				if !strings.Contains(doc, tc.replace[0]) {
					t.Fatalf("test bug: %q not in spec", tc.replace[0])
				}
				doc = strings.Replace(doc, tc.replace[0], tc.replace[1], 1)
			}
			doc += tc.append + "\n"
			_, err := Parse([]byte(doc))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", doc)
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T is not spec.Errors: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidSpecParses(t *testing.T) {
	s, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if s.Input.Format != FormatJSON || s.Input.TimeUnit != UnitMillis || s.Input.MaxRecordBytes != DefaultMaxRecordBytes {
		t.Errorf("defaults not applied: %+v", s.Input)
	}
}

func TestDurationFormats(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"30s", 30 * time.Second, "30s"},
		{"1m", time.Minute, "1m"},
		{"90s", 90 * time.Second, "90s"},
		{"1h", time.Hour, "1h"},
		{"2d", 48 * time.Hour, "2d"},
		{"1h30m", 90 * time.Minute, "90m"},
		{"1500ms", 1500 * time.Millisecond, "1.5s"},
	}
	for _, tc := range tests {
		d, err := ParseDuration(tc.in)
		if err != nil || d.Std() != tc.want || d.String() != tc.str {
			t.Errorf("ParseDuration(%q) = %v (%q), %v; want %v (%q)", tc.in, d.Std(), d.String(), err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "x", "-1d", "1.5d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add(mustReadF(f, "testdata/indoor-l1.yaml"))
	f.Add(mustReadF(f, "testdata/indoor-l1.json"))
	f.Add([]byte("windows: [&a 1m, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty spec.Errors: %v", err)
			}
			return
		}
		// Whatever parses must survive its own round trip.
		out, err := Marshal(s)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("marshalled spec does not parse: %v\n%s", err, out)
		}
	})
}

func mustReadF(f *testing.F, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func TestErrorsCarryLines(t *testing.T) {
	doc := "name: t\ninput: {topic: raw, time_field: ts}\nkey: [org]\nwindows: [1m]\naggregations:\n  - fn: count\n  - fn: sum\noutputs: [{type: stdout}]\n"
	_, err := Parse([]byte(doc))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("Parse = %v", err)
	}
	if errs[0].Path != "aggregations[1].field" || errs[0].Line != 7 {
		t.Fatalf("error %+v, want aggregations[1].field at line 7", errs[0])
	}
}

// A level-1 spec whose outputs are all partial may read a topic partitioned any way: the next
// level merges the partials.
func TestPartitionedOutsideTheKeyWithPartialOutputs(t *testing.T) {
	_, err := Parse([]byte(`
name: l1
input: {topic: raw, time_field: ts, partitioned_by: [device]}
key: [org, zone]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: kafka, topic: partials, partial: true, key: [org]}]
`))
	if err != nil {
		t.Fatal(err)
	}
}

// An aggregation whose column is also a key field's, a window column or another aggregation's
// fails validation on its name: the Cassandra sink would otherwise fail creating the table.
func TestAggregationColumnsDoNotClash(t *testing.T) {
	tests := []struct{ name, key, aggs, want string }{
		{"named like a key field", "[org, site]", "[{fn: count}, {fn: max, field: v, name: site}]",
			`aggregations[1].name: "site" is also the column of key field "site"`},
		{"named like a nested key field's column", "[org, geo.zone]", "[{fn: sum, field: v, name: geo_zone}]",
			`aggregations[0].name: "geo_zone" is also the column of key field "geo.zone"`},
		{"defaulted like a key field", "[org, sum_v]", "[{fn: sum, field: v}]",
			`aggregations[0].name: "sum_v" is also the column of key field "sum_v"`},
		{"quantile column like a key field", "[org, lat_p99_9]", "[{fn: quantiles, field: l, name: lat, quantiles: [0.5, 0.999]}]",
			`aggregations[0].name: "lat" writes the column lat_p99_9, which is also the column of key field "lat_p99_9"`},
		{"default quantile column like a key field", "[org, lat_p50]", "[{fn: quantiles, field: l, name: lat}]",
			`aggregations[0].name: "lat" writes the column lat_p50`},
		{"named like another aggregation's quantile column", "[org]", "[{fn: quantiles, field: l, name: lat}, {fn: max, field: l, name: lat_p90}]",
			`aggregations[1].name: "lat_p90" is also a column of aggregations[0]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(strings.Replace(valid, "key: [org]", "key: "+tc.key, 1), "aggregations: [{fn: count}]", "aggregations: "+tc.aggs, 1)
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%s) = %v, want an error with %q", doc, err, tc.want)
			}
		})
	}
	// Clashes validateAggregations reports are not reported twice.
	doc := strings.Replace(valid, "aggregations: [{fn: count}]", "aggregations: [{fn: sum, field: a}, {fn: sum, field: a}, {fn: max, field: a, name: window_start}]", 1)
	_, err := Parse([]byte(doc))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("want the two errors of validateAggregations alone, got %v", err)
	}
	// Distinct columns pass.
	doc = strings.Replace(strings.Replace(valid, "key: [org]", "key: [org, geo.zone]", 1), "aggregations: [{fn: count}]", "aggregations: [{fn: count}, {fn: quantiles, field: l, name: lat}, {fn: max, field: geo.zone}]", 1)
	if _, err := Parse([]byte(doc)); err != nil {
		t.Fatal(err)
	}
}

// TestStages: which specs run in two stages, and what each stage reads, keeps and writes.
func TestStages(t *testing.T) {
	const base = "name: web\ninput: {topic: access, time_field: ts%s}\nkey: [service, status]\nwindows: [%s]\nallowed_lateness: 30s\naggregations: [{fn: count}, {fn: distinct, field: ip}]\noutputs: [%s]\n"
	const final = "{type: cassandra, keyspace: k, table: t}"
	for _, tc := range []struct {
		name, input, windows, outputs string
		stages                        int
		partialWindow                 string
	}{
		{"keying unknown", "", "1m, 15m", final, 2, "1m"},
		{"keyed by the key", ", partitioned_by: [service, status]", "1m", final, 1, ""},
		{"keyed by a subset of the key", ", partitioned_by: [service]", "1m", final, 1, ""},
		{"keyed by a finer field", ", partitioned_by: [host]", "1m", final, 2, "1m"},
		{"keyed partly outside the key", ", partitioned_by: [service, host]", "1m", final, 2, "1m"},
		{"windows without a common multiple of each other", "", "90s, 1m", final, 2, "30s"},
		{"partial outputs only", "", "1m", "{type: kafka, topic: p, partial: true, key: [service]}", 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(fmt.Sprintf(base, tc.input, tc.windows, tc.outputs)))
			if err != nil {
				t.Fatal(err)
			}
			stages := s.Stages()
			if len(stages) != tc.stages || s.NeedsRepartition() != (tc.stages == 2) {
				t.Fatalf("%d stages (repartition %v), want %d", len(stages), s.NeedsRepartition(), tc.stages)
			}
			if tc.stages == 1 {
				if stages[0] != s {
					t.Error("a one-stage spec runs as written")
				}
				return
			}
			first, second := stages[0], stages[1]
			topic := RepartitionTopic("web")
			if first.Input.Topic != "access" || len(first.Windows) != 1 || first.Windows[0].String() != tc.partialWindow ||
				first.AllowedLateness != s.AllowedLateness || len(first.Outputs) != 1 || !first.Outputs[0].Partial || first.Outputs[0].Topic != topic {
				t.Errorf("first stage: %+v", first)
			}
			if second.Input.Topic != topic || second.Input.Format != FormatPartials || second.AllowedLateness != 0 ||
				!slices.Equal(second.Windows, s.Windows) || len(second.Outputs) != 1 || second.Outputs[0].Type != OutputCassandra {
				t.Errorf("second stage: %+v", second)
			}
			for i, st := range stages {
				if st.Name != "web" || !slices.Equal(st.Key, s.Key) || len(st.Aggregations) != 2 {
					t.Errorf("stage %d changed the name, key or aggregations: %+v", i+1, st)
				}
				if err := st.Validate(); err != nil {
					t.Errorf("stage %d does not validate: %v", i+1, err)
				}
			}
			if len(s.Outputs) != 1 || s.Outputs[0].Type != OutputCassandra || s.Input.Topic != "access" {
				t.Error("deriving the stages changed the spec")
			}
		})
	}
}
