package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := New(&out, &errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	var exit *ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.Code
	default:
		code = ExitUsage
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func TestSpecValidate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: t\ninput: {topic: raw, time_field: ts}\nkey: [org]\nwindows: [1m]\naggregations:\n  - fn: count\n  - fn: sum\noutputs: [{type: stdout}]\nwindowz: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := "../../examples/indoor-location/level1.yaml"
	tests := []struct {
		name        string
		args        []string
		code        int
		out, errOut []string
	}{
		{"valid", []string{"spec", "validate", good}, 0, []string{"level1.yaml: ok: spec indoor-l1 reads location-raw (json), key org,site,floor,zone, windows 1m, 6 aggregations, 1 outputs"}, nil},
		{"invalid", []string{"spec", "validate", bad}, 1, nil, []string{"bad.yaml:9: windowz: unknown field"}},
		{"invalid after valid", []string{"spec", "validate", good, bad}, 1, []string{"ok"}, []string{"windowz"}},
		{"missing file", []string{"spec", "validate", filepath.Join(dir, "nope.yaml")}, 2, nil, []string{"no such file"}},
		{"no args", []string{"spec", "validate"}, 2, nil, []string{"requires at least 1 arg"}},
		{"quiet", []string{"spec", "validate", "-q", good}, 0, nil, nil},
		{"version", []string{"version"}, 0, []string{"liveagg "}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout %q lacks %q", out, w)
				}
			}
			for _, w := range tc.errOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if tc.name == "quiet" && out != "" {
				t.Errorf("quiet printed %q", out)
			}
		})
	}
}

func TestSpecDiff(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const base = `
name: r
version: 2
input: {topic: raw, time_field: ts}
key: [org]
windows: [1m]
aggregations: [{fn: count}, {fn: sum, field: v}]
outputs: [{type: stdout}]
`
	old := write("old.yaml", base)
	for _, c := range []struct {
		name, from, to string
		want           []string
		code           int
	}{
		{"migrate", "{fn: count}, ", "{fn: count}, {fn: max, field: v}, ", []string{"version 2 -> 2: migrate in place", "aggregations.max_v", "added (max)", "records read after the switch"}, ExitOK},
		{"from offsets", "windows: [1m]", "windows: [5m]", []string{"new version from offsets", "windows", "1m -> 5m", "rebuilt from up to 1h6m0s"}, ExitOK},
		{"unchanged", "version: 2", "version: 3", []string{"version 2 -> 3: carry state over unchanged", "no difference"}, ExitOK},
		{"invalid", "fn: sum, field: v", "fn: sum", nil, ExitUsage},
	} {
		t.Run(c.name, func(t *testing.T) {
			next := write(c.name+".yaml", strings.Replace(base, c.from, c.to, 1))
			out, errOut, code := run(t, "spec", "diff", old, next)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if _, _, code := run(t, "spec", "diff", old); code != ExitUsage {
		t.Errorf("one file: exit %d, want %d", code, ExitUsage)
	}
}
