package cli

import (
	"errors"
	"fmt"
	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/workers/checkpoint"
)

// A location that is not there is an error (exit 2) that says so; an empty one is not.
func TestCheckpointLocationMustExist(t *testing.T) {
	base := t.TempDir()
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(base, "missing")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string // on stderr
	}{
		{"ls of a missing folder", []string{"ls", "file://" + missing}, ExitUsage, "folder " + missing + " does not exist"},
		{"ls of a missing plain path", []string{"ls", missing}, ExitUsage, "folder " + missing + " does not exist"},
		{"ls of a file", []string{"ls", "file://" + file}, ExitUsage, "is not a folder"},
		{"ls of an empty folder", []string{"ls", "file://" + empty}, ExitOK, "no checkpoints under file://" + empty},
		{"inspect in a missing folder", []string{"inspect", "file://" + missing, "s/t/0"}, ExitUsage, "does not exist"},
		{"inspect in an empty folder", []string{"inspect", "file://" + empty, "s/t/0"}, ExitUsage, "none stored"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runCLI(t, append([]string{"checkpoint"}, tc.args...)...)
			if code := exitCode(err); code != tc.wantCode {
				t.Errorf("exit %d (%v), want %d", code, err, tc.wantCode)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.wantErr)
			}
			if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a reading command created %s", missing)
			}
		})
	}
}

// exitCode is the status main would exit with for a command's error.
func exitCode(err error) int {
	var exit *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &exit):
		return exit.Code
	}
	return ExitUsage // main's default
}

// inspect prints each checkpoint's CRC-32C as the manifest stores it, so an operator can
// compare it with the object, and says whether the object matches.
func TestCheckpointInspectPrintsStoredChecksums(t *testing.T) {
	loc := "file://" + t.TempDir()
	cur := saveCheckpoints(t, loc)
	st, err := checkpoint.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Inspect(t.Context(), checkpoint.Key{Spec: "s1", Topic: "raw", Partition: 3})
	if err != nil {
		t.Fatal(err)
	}
	if m.Current.CRC32C == m.Previous.CRC32C {
		t.Fatal("test bug: the two checkpoints have one checksum")
	}
	// Damaging the object must not change the printed (stored) checksum, only the verdict.
	damage := func() {
		if err := os.WriteFile(strings.TrimPrefix(loc, "file://")+"/"+cur.Object, []byte("state-tw0"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		before    func()
		wantState string
		wantCode  int
	}{
		{"intact", func() {}, "verified (size and CRC32C)", ExitOK},
		{"current damaged", damage, "BROKEN: checkpoint: corrupt object", ExitInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.before()
			out, _, err := runCLI(t, "checkpoint", "inspect", loc, "s1/raw/3")
			if code := exitCode(err); code != tc.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.wantCode, out)
			}
			cur, prev, ok := strings.Cut(out, "previous:")
			if !ok {
				t.Fatalf("no previous section:\n%s", out)
			}
			for _, c := range []struct {
				section, what string
				crc           uint32
				state         string
			}{{cur, "current", m.Current.CRC32C, tc.wantState}, {prev, "previous", m.Previous.CRC32C, "verified"}} {
				if want := fmt.Sprintf("crc32c:     %08x\n", c.crc); !strings.Contains(c.section, want) {
					t.Errorf("%s lacks the stored %q:\n%s", c.what, want, c.section)
				}
				if !strings.Contains(c.section, "state:      "+c.state) {
					t.Errorf("%s lacks state %q:\n%s", c.what, c.state, c.section)
				}
			}
			if strings.Contains(out, "48674bc7") {
				t.Errorf("inspect prints the CRC-32C residue, not a stored checksum:\n%s", out)
			}
		})
	}
}

// A real state snapshot carries its own CRC-32C at its end, so the manifest's checksum of the
// whole object is CRC-32C's residue constant for every checkpoint; inspect shows the state's
// own, which tells two checkpoints apart.
func TestCheckpointInspectShowsTheStatesOwnChecksum(t *testing.T) {
	s, err := spec.Parse([]byte("name: s1\ninput: {topic: raw, time_field: t}\nkey: [k]\nwindows: [1m]\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	layout, err := agg.LayoutOf(s)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := record.NewDecoder(s)
	if err != nil {
		t.Fatal(err)
	}
	loc := "file://" + t.TempDir()
	store, err := checkpoint.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := store.Claim(t.Context(), checkpoint.Key{Spec: "s1", Topic: "raw", Partition: 0}, "w1")
	if err != nil {
		t.Fatal(err)
	}
	st := state.New(s, layout, nil)
	r := dec.NewRecord()
	var sums []string
	for i := range 2 {
		if err := dec.Decode(fmt.Appendf(nil, `{"k":"a%d","t":%d}`, i, 1_767_225_600_000+i), 0, r); err != nil {
			t.Fatal(err)
		}
		st.Apply(r)
		snap, err := st.AppendSnapshot(nil, state.Fingerprint(s, layout))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lease.Save(t.Context(), checkpoint.Checkpoint{Offset: int64(i + 1), State: snap}); err != nil {
			t.Fatal(err)
		}
		sum, _ := state.SnapshotChecksum(snap)
		sums = append(sums, fmt.Sprintf("%08x (the state's own)", sum))
	}
	out, _, err := runCLI(t, "checkpoint", "inspect", loc, "s1/raw/0")
	if err != nil {
		t.Fatal(err)
	}
	if sums[0] == sums[1] || !strings.Contains(out, "crc32c:     "+sums[1]) || !strings.Contains(out, "crc32c:     "+sums[0]) || strings.Contains(out, "48674bc7") {
		t.Errorf("inspect output does not show each state's own checksum %v:\n%s", sums, out)
	}
}
