package emit

import (
	"encoding/json"
	"testing"

	"github.com/liveagg/liveagg/workers/agg"
)

// Whatever text a key or a text value holds, a row renders as JSON that parses back to it.
func TestAppendJSONIsValidForAnyText(t *testing.T) {
	texts := []string{"plain", `quo"te`, `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1e\x7f", "café ☕", "\u2028", "bad \xff utf8"}
	for _, s := range texts {
		w := &Window{Spec: "s", Size: 60_000, Start: 0, KeyFields: []string{"k"}, Columns: []string{"count", "last_status"},
			Kinds: []agg.ColumnKind{agg.ColumnInteger, agg.ColumnText},
			Rows:  []Row{{Key: []string{s}, Values: []float64{3, 0}, Texts: []string{s}}}}
		line := w.AppendJSON(nil, 0)
		var back map[string]any
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatalf("%q renders as invalid JSON %s: %v", s, line, err)
		}
		want := s
		if s == "bad \xff utf8" {
			want = "bad \ufffd utf8"
		}
		if back["k"] != want || back["last_status"] != want || back["count"] != float64(3) {
			t.Errorf("%q renders as %s", s, line)
		}
	}
}
