package specsrc

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/spec"
)

func TestCheckSample(t *testing.T) {
	const base = "name: web\ninput: {topic: access, time_field: ts%s}\nkey: [service, status]\nwindows: [1m]\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n"
	parse := func(input string) *spec.Spec {
		s, err := spec.Parse(fmt.Appendf(nil, base, input))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	samples := func(lines ...string) []Sample {
		var out []Sample
		for i, l := range lines {
			out = append(out, Sample{Where: fmt.Sprintf("r%d", i), Value: []byte(l)})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		input    string
		records  []Sample
		problems []string // substrings, one problem each, in any order
		absent   []string // Attr of each absent field
	}{
		{"every field there", ", partitioned_by: [host]", samples(
			`{"service":"a","status":"5xx","ts":1,"host":"h1"}`,
			`{"service":"b","status":"2xx","ts":2,"host":"h2"}`), nil, nil},
		{"nested partitioning field", ", partitioned_by: [meta.host]", samples(
			`{"service":"a","status":"5xx","ts":1,"meta":{"host":"h1"}}`), nil, nil},
		{"a partitioning field no record has", ", partitioned_by: [device]", samples(
			`{"service":"a","status":"5xx","ts":1,"host":"h1"}`,
			`{"service":"b","status":"2xx","ts":2,"host":"h2"}`),
			[]string{`r0: input.partitioned_by[0]: the record has no field "device"`, `r1: input.partitioned_by[0]`}, []string{"input.partitioned_by[0]"}},
		{"a partitioning field some records lack", ", partitioned_by: [host]", samples(
			`{"service":"a","status":"5xx","ts":1,"host":"h1"}`,
			`{"service":"b","status":"2xx","ts":2}`),
			[]string{`r1: input.partitioned_by[0]: the record has no field "host"`}, nil},
		{"a key field no record has", "", samples(
			`{"svc":"a","status":"5xx","ts":1}`, `{"svc":"b","status":"2xx","ts":2}`),
			[]string{"r0:", "r1:"}, []string{"key[0]"}},
		{"malformed records say nothing of the fields", ", partitioned_by: [host]", samples(
			`{"service":"a","status":"5xx","ts":1,"host":"h1"}`, `{"broken`),
			[]string{"r1:"}, nil},
		{"only malformed records: no field is called absent", ", partitioned_by: [host]", samples(`{"broken`, `nope`),
			[]string{"r0:", "r1:"}, nil},
		{"a few problems per kind, then a count", ", partitioned_by: [device]", samples(
			`{"service":"a","status":"1","ts":1}`, `{"service":"a","status":"2","ts":1}`, `{"service":"a","status":"3","ts":1}`,
			`{"service":"a","status":"4","ts":1}`, `{"service":"a","status":"5","ts":1}`),
			[]string{"r0:", "r1:", "r2:", "2 more records with partitioned_by:device"}, []string{"input.partitioned_by[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := CheckSample(parse(tc.input), tc.records)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Records != len(tc.records) {
				t.Errorf("checked %d records, want %d", rep.Records, len(tc.records))
			}
			if len(rep.Problems) != len(tc.problems) {
				t.Fatalf("problems %q, want one each for %q", rep.Problems, tc.problems)
			}
			for _, want := range tc.problems {
				if !slices.ContainsFunc(rep.Problems, func(p string) bool { return strings.Contains(p, want) }) {
					t.Errorf("no problem says %q: %q", want, rep.Problems)
				}
			}
			var absent []string
			for _, a := range rep.Absent {
				absent = append(absent, a.Attr)
			}
			if !slices.Equal(absent, tc.absent) {
				t.Errorf("absent %v, want %v", absent, tc.absent)
			}
		})
	}
	partials, err := spec.Parse([]byte("name: l2\ninput: {topic: p, format: partials}\nkey: [org]\nwindows: [1m]\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckSample(partials, samples(`{}`)); err == nil {
		t.Error("a partials spec's records were checked as JSON")
	}
}
