package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Which output files `liveagg-simulate` leaves in the working folder: a script asking for
// JSON gets JSON lines on stdout and no PNG beside them, unless it names one.
func TestSimulateAutoscalePlotByFormat(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantFiles []string
	}{
		{"table draws the default plot", []string{"--format", "table"}, []string{"liveagg-autoscale.png"}},
		{"json draws nothing", []string{"--format", "json"}, nil},
		{"json draws a plot asked for", []string{"--format", "json", "--plot", "asked.png"}, []string{"asked.png"}},
		{"table with no plot", []string{"--format", "table", "--plot", ""}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			out, errOut, err := run(t, append([]string{"--days", "1"}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for _, e := range ents {
				files = append(files, e.Name())
				if st, err := os.Stat(filepath.Join(dir, e.Name())); err != nil || st.Size() == 0 {
					t.Errorf("%s is empty: %v", e.Name(), err)
				}
			}
			if strings.Join(files, ",") != strings.Join(tc.wantFiles, ",") {
				t.Errorf("files %v, want %v", files, tc.wantFiles)
			}
			if tc.args[1] == "json" {
				for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var v map[string]any
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Errorf("stdout line %d is not JSON: %q", i+1, line)
					}
				}
			}
		})
	}
}
