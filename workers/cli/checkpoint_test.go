package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
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

// saveChains writes two incremental chains of one partition (a base and 3 deltas, then a base
// and 2 deltas) of a real store's state into a file:// store, and returns the current chain.
func saveChains(t *testing.T, location string) []checkpoint.Entry {
	t.Helper()
	ctx := context.Background()
	s, err := spec.Parse([]byte(`
name: s2
input: {topic: raw, time_field: ts}
key: [org]
windows: [1m]
aggregations: [{fn: count}, {fn: last, field: zone, type: text}]
outputs: [{type: stdout}]
`))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := record.NewDecoder(s)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := agg.NewLayout(s, dec)
	if err != nil {
		t.Fatal(err)
	}
	fp := state.Fingerprint(s, layout)
	store, err := checkpoint.Open(location)
	if err != nil {
		t.Fatal(err)
	}
	l, err := store.Claim(ctx, checkpoint.Key{Spec: "s2", Topic: "raw", Partition: 0}, "w1")
	if err != nil {
		t.Fatal(err)
	}
	st := state.New(s, layout, nil)
	r := dec.NewRecord()
	for i := range 6 {
		for j := range 50 {
			raw := fmt.Appendf(nil, `{"org":"o%d","zone":"z%d","ts":%d}`, j%(10+i), i, 1767225600000+int64(i*50+j))
			if err := dec.Decode(raw, 0, r); err != nil {
				t.Fatal(err)
			}
			st.Apply(r)
		}
		cp := checkpoint.Checkpoint{Offset: int64(100 * (i + 1)), EmitSeq: uint64(i)}
		if i == 0 || i == 3 {
			cp.Kind = checkpoint.Base
			cp.State, err = st.AppendBase(nil, fp)
		} else {
			cp.Kind, cp.Parent = checkpoint.Delta, st.ChainLink()
			cp.State, err = st.AppendDelta(nil, fp)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Save(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	return l.Manifest().Chain
}

func TestCheckpointInspectChains(t *testing.T) {
	dir := t.TempDir()
	loc := "file://" + dir
	cur := saveChains(t, loc)
	out, _, err := runCLI(t, "checkpoint", "ls", loc)
	if err != nil || !strings.Contains(out, "base+2") || !strings.Contains(out, "600") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "checkpoint", "inspect", loc, "s2/raw/0")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"current chain: base+2", "previous chain: base+2", "delta 2:", "offset:     600",
		"verified (size, CRC32C, link checksum, parent and order)", "restore:    offset 600, emit_seq 5: the current chain whole (base + 2 deltas)"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	// The current chain's first delta overwritten by its second: inspect reports it broken and
	// the link after it unusable, and that a restore falls back to the base.
	third, err := os.ReadFile(dir + "/" + cur[2].Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/"+cur[1].Object, third, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCLI(t, "checkpoint", "inspect", loc, "s2/raw/0")
	if exit, ok := err.(*ExitError); !ok || exit.Code != ExitInvalid || !strings.Contains(out, "BROKEN") ||
		!strings.Contains(out, "not usable: a link before it is broken") || !strings.Contains(out, "restore:    offset 400") {
		t.Fatalf("err %v: want exit 1, BROKEN and a fallback to the base at 400:\n%s", err, out)
	}
}
