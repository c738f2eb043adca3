package spec

import (
	"errors"
	"strings"
	"testing"
)

// A type error must not hide the other fields' problems: Parse reports it and every rule error
// of the fields that decoded, and no rule error about the field that did not decode.
func TestParseReportsTypeAndRuleErrorsTogether(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // paths, in this order
		// notWant are messages that would be a second report of the type error.
		notWant []string
	}{
		{
			name: "windows a scalar, and a name that breaks a rule",
			doc: `
name: Bad Name
input: {topic: raw, time_field: ts}
key: [org]
windows: 1m
aggregations: [{fn: count}]
outputs: [{type: stdout}]
`,
			want:    []string{"windows", "name"},
			notWant: []string{"windows: required"},
		},
		{
			name: "precision a word, and a sum without a field",
			doc: `
name: t
input: {topic: raw, time_field: ts}
key: [org]
windows: [1m]
aggregations: [{fn: distinct, field: d, precision: high}, {fn: sum}]
outputs: [{type: stdout}]
`,
			want:    []string{"aggregations[0].precision", "aggregations[1].field"},
			notWant: []string{"out of range"},
		},
		{
			name: "unknown field, empty key and no outputs",
			doc: `
name: t
input: {topic: raw, time_field: ts}
key: []
windows: [1m]
windows2: 1
aggregations: [{fn: count}]
`,
			want: []string{"windows2", "key", "outputs"},
		},
		{
			name: "input not an object, and a window that does not divide a day",
			doc: `
name: t
input: raw
key: [org]
windows: [7m]
aggregations: [{fn: count}]
outputs: [{type: stdout}]
`,
			want:    []string{"input", "windows[0]"},
			notWant: []string{"input.topic: required", "input.time_field: required"},
		},
		{
			name: "a bad duration in a list, and a bad output",
			doc: `
name: t
input: {topic: raw, time_field: ts}
key: [org]
windows: [1m, 15x]
aggregations: [{fn: count}]
outputs: [{type: cassandra, keyspace: k}]
`,
			want:    []string{"windows[1]", "outputs[0].table"},
			notWant: []string{"windows[1]: must be positive"},
		},
		{
			name: "the document is not an object: nothing else to check",
			doc:  "- a\n- b\n",
			want: []string{""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse = %v, want spec.Errors", err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Path)
				if e.Line == 0 {
					t.Errorf("%s has no line", e)
				}
			}
			if strings.Join(got, " | ") != strings.Join(tc.want, " | ") {
				t.Errorf("paths %q, want %q:\n%v", got, tc.want, err)
			}
			for _, nw := range tc.notWant {
				if strings.Contains(err.Error(), nw) {
					t.Errorf("error repeats the type error as %q:\n%v", nw, err)
				}
			}
		})
	}
}

// Decode is for callers that report type errors apart from rule errors: it must still stop at
// type errors and say nothing about rules.
func TestDecodeReportsOnlyTypeErrors(t *testing.T) {
	_, err := Decode([]byte("name: Bad Name\nwindows: 1m\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Path != "windows" {
		t.Fatalf("Decode = %v, want the one type error at windows", err)
	}
}

func TestRequiredListsReadOnce(t *testing.T) {
	tests := []struct {
		name, replace, with, want string
	}{
		{"no aggregations", "aggregations: [{fn: count}]", "aggregations: []", "aggregations: required: at least one of count, sum, min, max, avg, last, distinct, quantiles"},
		{"no outputs", "outputs: [{type: stdout}]", "outputs: []", "outputs: required: at least one of "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(valid, tc.replace, tc.with, 1)))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "one of one of") {
				t.Errorf("error %q, want %q said once", msg, tc.want)
			}
		})
	}
}
