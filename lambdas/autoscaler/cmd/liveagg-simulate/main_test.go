package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulateAutoscaleCommand(t *testing.T) {
	png := filepath.Join(t.TempDir(), "plot.png")
	out, errOut, err := run(t, "--days", "2", "--format", "json", "--plot", png)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 5 {
		t.Fatalf("%d policies:\n%s", len(lines), out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["policy"] != "learning" {
		t.Fatalf("first line %q: %v", lines[0], err)
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Fatalf("plot: %v", err)
	}
	if !strings.Contains(errOut, "done") {
		t.Errorf("no progress on stderr: %q", errOut)
	}

	csv := filepath.Join(t.TempDir(), "rate.csv")
	var b strings.Builder
	b.WriteString("time,records_per_second\n")
	for m := range 600 {
		b.WriteString("2026-03-02T")
		b.WriteString(pad2(m/60) + ":" + pad2(m%60) + ":00Z,")
		b.WriteString([]string{"50000", "90000"}[m/300])
		b.WriteString("\n")
	}
	if err := os.WriteFile(csv, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = run(t, "--trace", csv, "--plot", "")
	if err != nil || !strings.Contains(out, "learning") || !strings.Contains(errOut, "600 minutes") {
		t.Fatalf("csv trace: %v\n%s\n%s", err, out, errOut)
	}
	if _, _, err := run(t, "--format", "xml", "--plot", ""); err == nil {
		t.Fatal("--format xml accepted")
	}
}

func pad2(n int) string {
	if n < 10 {
		return "0" + string(rune('0'+n))
	}
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}

// run executes the command with args and returns what it printed.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

// --suite runs every stress trace: a table each, the summary with the goals, a PNG each.
func TestSimulateSuiteCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plots")
	out, errOut, err := run(t, "--suite", "--days", "2", "--plot-dir", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, name := range []string{"smooth", "step-changes", "holiday", "dst-shift", "ramp-and-crash", "noisy", "flash-crowds", "production", "sharp-peak"} {
		if !strings.Contains(out, "\n"+name+": ") || !strings.Contains(out, "| "+name+" | ") {
			t.Errorf("no table or summary row for %s", name)
		}
		if st, err := os.Stat(filepath.Join(dir, name+".png")); err != nil || st.Size() == 0 {
			t.Errorf("plot of %s: %v", name, err)
		}
	}
	if !strings.Contains(out, "goals met") && !strings.Contains(out, "MISSED") {
		t.Errorf("no goals in the summary:\n%s", out)
	}
	for _, bad := range [][]string{{"--suite", "--trace", "x.csv"}, {"--suite", "--format", "json"}} {
		if _, _, err := run(t, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
