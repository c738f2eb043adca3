package spec

import (
	"fmt"
	"strings"
	"testing"
)

func TestPlanRefuse(t *testing.T) {
	parse := func(doc string) *Spec {
		s, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const base = "name: s\ninput: {topic: raw, time_field: ts%s}\nkey: [%s]\nwindows: [%s]\naggregations: [{fn: count}]\noutputs: [%s]\n%s"
	final, partial := "{type: stdout}", "{type: kafka, topic: p, partial: true, key: [org]}"
	spec := func(partitioning, key, windows, output, extra string) *Spec {
		return parse(fmt.Sprintf(base, partitioning, key, windows, output, extra))
	}
	for _, tc := range []struct {
		name     string
		old, new *Spec
		refused  string // substring of the refusal, "" for none
	}{
		{"one stage, windows, backfill", spec(", partitioned_by: [org]", "org", "1m", final, ""), spec(", partitioned_by: [org]", "org", "5m", final, "on_incompatible_change: backfill"), ""},
		{"two stages, windows, backfill", spec("", "org", "1m", final, ""), spec("", "org", "5m", final, "on_incompatible_change: backfill"), "backfill cannot be honoured"},
		{"partials, windows, backfill", spec("", "org", "1m", partial, ""), spec("", "org", "5m", partial, "on_incompatible_change: backfill"), "backfill cannot be honoured"},
		{"two stages, windows, from offsets", spec("", "org", "1m", final, ""), spec("", "org", "5m", final, ""), ""},
		{"two stages, key", spec("", "org, site", "1m", final, ""), spec("", "org", "1m", final, ""), "key of a spec run in two stages"},
		{"two stages become one with another key", spec("", "org, site", "1m", final, ""), spec(", partitioned_by: [org]", "org", "1m", final, ""), "key of a spec run in two stages"},
		{"one stage, key", spec(", partitioned_by: [org]", "org, site", "1m", final, ""), spec(", partitioned_by: [org]", "org", "1m", final, ""), ""},
		{"partials, key", spec("", "org, site", "1m", partial, ""), spec("", "org", "1m", partial, ""), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Diff(tc.old, tc.new).Refuse(tc.old, tc.new)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("Refuse = %v, want %q", err, tc.refused)
			}
		})
	}
}
