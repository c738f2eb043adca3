package spec

import (
	"strings"
	"testing"
	"time"
)

const diffBase = `
name: rollups
version: 3
input: {topic: raw, time_field: ts, partitioned_by: [org]}
key: [org, site]
windows: [1m, 1h]
allowed_lateness: 30s
aggregations:
  - {fn: count}
  - {fn: sum, field: bytes}
  - {fn: distinct, field: user}
  - {fn: quantiles, field: latency}
outputs: [{type: stdout}]
`

func TestDiff(t *testing.T) {
	for _, c := range []struct {
		name    string
		from    string // replaced in diffBase by to
		to      string
		action  Action
		summary string // substring of Plan.Summary
	}{
		{"nothing", "", "", ActionNone, "carry state over unchanged"},
		{"version only", "version: 3", "version: 4", ActionNone, "carry state over unchanged"},
		{"lateness", "allowed_lateness: 30s", "allowed_lateness: 2m", ActionNone, "carry state over unchanged"},
		{"outputs", "outputs: [{type: stdout}]", "outputs: [{type: stdout}, {type: file, path: /tmp/x}]", ActionNone, "carry state over unchanged"},
		{"rename", "{fn: sum, field: bytes}", "{fn: sum, field: bytes, name: total}", ActionNone, "carry state over unchanged"},
		{"ranks", "{fn: quantiles, field: latency}", "{fn: quantiles, field: latency, quantiles: [0.5]}", ActionNone, "carry state over unchanged"},
		{"add max", "  - {fn: count}\n", "  - {fn: count}\n  - {fn: max, field: bytes}\n", ActionMigrate, "aggregations.max_bytes added (max)"},
		{"add sum of a kept field's avg", "  - {fn: count}\n", "  - {fn: count}\n  - {fn: avg, field: bytes}\n", ActionMigrate, "aggregations.avg_bytes added (avg)"},
		{"remove distinct", "  - {fn: distinct, field: user}\n", "", ActionMigrate, "aggregations.distinct_user removed"},
		{"reorder", "  - {fn: count}\n  - {fn: sum, field: bytes}\n", "  - {fn: sum, field: bytes}\n  - {fn: count}\n", ActionMigrate, "moved from position"},
		{"precision", "{fn: distinct, field: user}", "{fn: distinct, field: user, precision: 12}", ActionMigrate, "added (distinct)"},
		{"add avg of a new field", "  - {fn: count}\n", "  - {fn: count}\n  - {fn: avg, field: latency}\n", ActionFromOffsets, "aggregations.avg_latency added (avg)"},
		{"add last", "  - {fn: count}\n", "  - {fn: count}\n  - {fn: last, field: latency}\n", ActionFromOffsets, "added (last)"},
		{"windows", "windows: [1m, 1h]", "windows: [5m, 1h]", ActionFromOffsets, "windows 1m,1h -> 5m,1h"},
		{"key", "key: [org, site]", "key: [org, site, host]", ActionFromOffsets, "key [org,site] -> [org,site,host]"},
		{"partitioning, one stage still", "partitioned_by: [org]", "partitioned_by: [site]", ActionNone, "input.partitioned_by [org] -> [site]"},
		{"partitioning, one stage becomes two", "partitioned_by: [org]", "partitioned_by: [host]", ActionFromOffsets, "input.partitioned_by [org] -> [host]"},
		{"backfill", "windows: [1m, 1h]", "windows: [1m]\non_incompatible_change: backfill", ActionBackfill, "windows 1m,1h -> 1m"},
		{"topic", "topic: raw", "topic: raw2", ActionNewSpec, "input.topic raw -> raw2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			old, err := Parse([]byte(diffBase))
			if err != nil {
				t.Fatal(err)
			}
			doc := strings.Replace(diffBase, c.from, c.to, 1)
			if c.from == "" {
				doc = diffBase
			}
			next, err := Parse([]byte(doc))
			if err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			p := Diff(old, next)
			if p.Action != c.action || !strings.Contains(p.Summary(), c.summary) {
				t.Fatalf("Diff = %q, want %s with %q", p.Summary(), c.action, c.summary)
			}
			if p.Explain(old, next) == "" {
				t.Fatal("no explanation")
			}
		})
	}
}

func TestPlanCheck(t *testing.T) {
	old, err := Parse([]byte(diffBase))
	if err != nil {
		t.Fatal(err)
	}
	parse := func(from, to string) *Spec {
		s, err := Parse([]byte(strings.Replace(diffBase, from, to, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fromOffsets := parse("windows: [1m, 1h]", "windows: [5m, 1h]")
	backfill := parse("windows: [1m, 1h]", "windows: [5m, 1h]\non_incompatible_change: backfill")
	// 30s lateness + 1h largest old window + 1h common new boundary + 1h default skew.
	if got, want := RebuildSpan(old, fromOffsets), 3*time.Hour+30*time.Second; got != want {
		t.Fatalf("RebuildSpan = %s, want %s", got, want)
	}
	for _, c := range []struct {
		name string
		next *Spec
		h    History
		bad  string
	}{
		{"from offsets within retention", fromOffsets, History{Retention: 7 * 24 * time.Hour, Trimmed: []int32{0}}, ""},
		{"from offsets, unlimited retention", fromOffsets, History{}, ""},
		{"from offsets beyond retention", fromOffsets, History{Retention: time.Hour}, "keeps 1h0m0s"},
		{"backfill, nothing trimmed", backfill, History{Retention: time.Hour}, ""},
		{"backfill, records gone", backfill, History{Trimmed: []int32{2, 5}}, "partition(s) [2 5] are already gone"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Diff(old, c.next).Check(old, c.next, c.h)
			switch {
			case c.bad == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
				t.Fatalf("Check = %v, want %q", err, c.bad)
			}
		})
	}
}

// TestDiffPartitioning: a change of input.partitioned_by is incompatible only where the stages'
// state changes with it, which is what the workers do.
func TestDiffPartitioning(t *testing.T) {
	spec := func(partitioning, windows string) *Spec {
		doc := "name: s\ninput: {topic: raw, time_field: ts" + partitioning + "}\nkey: [org, site]\nwindows: [" + windows + "]\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n"
		s, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, c := range []struct {
		name     string
		from, to string
		windows  string
		action   Action
	}{
		{"one stage to one", ", partitioned_by: [org]", ", partitioned_by: [org, site]", "1m", ActionNone},
		{"two stages to two", "", ", partitioned_by: [host]", "1m, 1h", ActionNone},
		{"one stage to two, one window size", ", partitioned_by: [org]", "", "1m", ActionNone},
		{"one stage to two, two window sizes", ", partitioned_by: [org]", "", "1m, 1h", ActionFromOffsets},
		{"two stages to one", "", ", partitioned_by: [org]", "1m", ActionFromOffsets},
	} {
		t.Run(c.name, func(t *testing.T) {
			if p := Diff(spec(c.from, c.windows), spec(c.to, c.windows)); p.Action != c.action {
				t.Fatalf("Diff = %q, want %s", p.Summary(), c.action)
			}
		})
	}
}
