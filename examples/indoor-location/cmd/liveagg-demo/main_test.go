package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoCommandHeadless runs `liveagg-demo` as a user's pipe would see it: plain lines, the
// verification line, and the files it promises.
func TestDemoCommandHeadless(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd := newCmd()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"--records", "30000", "--rate", "-1", "--out", out, "--seed", "3"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	text := stdout.String()
	for _, want := range []string{"CRASH: killed l1-w", "(indoor-l1)", "(indoor-l2-site)", "restore", "verified: ", "0 lost, 0 duplicated", "top org rollups"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\x1b[") {
		t.Error("escape codes in output that is not a terminal")
	}
	for _, f := range []string{"indoor-l2-zone.jsonl", "indoor-l3-org.jsonl", "demo.log", "partitions/indoor-l2-site-location-partials-p0.jsonl"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", f, err)
		}
	}
}

func TestDemoCommandRejectsBothSizes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cmd := newCmd()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"--records", "10", "--duration", "1s", "--out", t.TempDir()})
	err := cmd.Execute()
	if exit, ok := err.(*exitError); !ok || exit.code != exitUsage || !strings.Contains(stderr.String(), "exclusive") {
		t.Fatalf("err %v, stderr %q: want a usage error naming the conflict", err, stderr.String())
	}
}
