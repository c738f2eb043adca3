package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/checkpoint"
)

// TestCheckpointVersionsAndRetire: versions shows which spec version wrote each partition, and
// retire deletes only the old version's partitions, and only with --yes.
func TestCheckpointVersionsAndRetire(t *testing.T) {
	ctx := context.Background()
	loc := "file://" + t.TempDir()
	st, err := checkpoint.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	for p, v := range []int{0, 2, 3} { // partition 0 predates versions
		l, err := st.Claim(ctx, checkpoint.Key{Spec: "s1", Topic: "raw", Partition: int32(p)}, "w1")
		if err != nil {
			t.Fatal(err)
		}
		if v > 0 {
			l.SetSpec(v, "name: s1\n")
		}
		if _, err := l.Save(ctx, checkpoint.Checkpoint{Offset: int64(10 * (p + 1)), State: []byte("s")}); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runCLI(t, "checkpoint", "versions", loc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version - on 1", "version 2 on 1", "version 3 on 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("versions lacks %q:\n%s", want, out)
		}
	}

	out, _, err = runCLI(t, "checkpoint", "retire", loc, "--spec", "s1", "--below", "3")
	if err != nil || !strings.Contains(out, "would retire s1/raw/0") || !strings.Contains(out, "would retire s1/raw/1") || strings.Contains(out, "s1/raw/2") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if keys, _ := st.Partitions(ctx, "s1", ""); len(keys) != 3 {
		t.Fatalf("a dry run deleted: %v", keys)
	}
	if _, _, err = runCLI(t, "checkpoint", "retire", loc, "--spec", "s1", "--below", "3", "--yes"); err != nil {
		t.Fatal(err)
	}
	keys, err := st.Partitions(ctx, "s1", "")
	if err != nil || len(keys) != 1 || keys[0].Partition != 2 {
		t.Fatalf("after retire: %v %v, want only partition 2", keys, err)
	}
	if _, err := st.Inspect(ctx, checkpoint.Key{Spec: "s1", Topic: "raw", Partition: 0}); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Fatalf("retired partition still has a manifest: %v", err)
	}
	for _, args := range [][]string{{"checkpoint", "retire", loc, "--below", "3"}, {"checkpoint", "retire", loc, "--spec", "s1"},
		{"checkpoint", "retire", loc, "--spec", "s1", "--all", "--below", "2"}} {
		var exit *ExitError
		if _, _, err := runCLI(t, args...); !errors.As(err, &exit) || exit.Code != ExitUsage {
			t.Errorf("%v: %v, want exit %d", args, err, ExitUsage)
		}
	}
}
