package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/checkpoint"
)

// saveCheckpoints writes two checkpoints of one partition into a file:// store.
func saveCheckpoints(t *testing.T, location string) checkpoint.Entry {
	t.Helper()
	ctx := context.Background()
	st, err := checkpoint.Open(location)
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.Claim(ctx, checkpoint.Key{Spec: "s1", Topic: "raw", Partition: 3}, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Save(ctx, checkpoint.Checkpoint{Offset: 100, EmitSeq: 4, State: []byte("state-one")}); err != nil {
		t.Fatal(err)
	}
	e, err := l.Save(ctx, checkpoint.Checkpoint{Offset: 250, EmitSeq: 9, State: []byte("state-two"), Sinks: map[string]string{"file:/x": "1234"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := New(&stdout, &stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return stdout.String(), stderr.String(), err
}

func TestCheckpointLsAndInspect(t *testing.T) {
	dir := t.TempDir()
	loc := "file://" + dir
	cur := saveCheckpoints(t, loc)

	out, _, err := runCLI(t, "checkpoint", "ls", loc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "s1") || !strings.Contains(out, "250") || !strings.Contains(out, "w1") {
		t.Fatalf("ls output lacks the partition, its offset or owner:\n%s", out)
	}

	out, _, err = runCLI(t, "checkpoint", "inspect", loc, "s1/raw/3")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"offset:     250", "offset:     100", "emit_seq:   9", "file:/x at 1234", "verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}

	// A damaged current checkpoint: inspect says so and exits 1.
	path := strings.TrimPrefix(loc, "file://") + "/" + cur.Object
	if err := os.WriteFile(path, []byte("state-tw0"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCLI(t, "checkpoint", "inspect", loc, "s1/raw/3")
	if exit, ok := err.(*ExitError); !ok || exit.Code != ExitInvalid || !strings.Contains(out, "BROKEN") {
		t.Fatalf("err %v: want exit 1 and BROKEN for a damaged checkpoint:\n%s", err, out)
	}

	for _, args := range [][]string{{"checkpoint", "inspect", loc, "s1/raw"}, {"checkpoint", "inspect", loc, "s1/raw/7"}} {
		if _, stderr, err := runCLI(t, args...); err == nil || stderr == "" {
			t.Errorf("%v: want a usage error, got %v", args, err)
		}
	}
}
