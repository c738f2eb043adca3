//go:build integration

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestDocsUpToDate regenerates the docs from the schema into a copy and compares: a schema
// description or an example changed without `make provider-docs` fails here.
func TestDocsUpToDate(t *testing.T) {
	tmp := t.TempDir()
	if out, err := exec.Command("cp", "-r", "examples", filepath.Join(tmp, "examples")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	cmd := exec.Command("./gendocs.sh", tmp)
	cmd.Env = append(os.Environ(), "LIVEAGG_TOFU="+testenv.Tofu(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, out)
	}
	if out, err := exec.Command("diff", "-ru", "docs", filepath.Join(tmp, "docs")).CombinedOutput(); err != nil {
		t.Fatalf("provider/docs is stale; run make provider-docs:\n%s", out)
	}
}
