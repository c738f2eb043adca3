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
