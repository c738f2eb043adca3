//go:build integration

// Package lambdas_test checks how the functions are packaged.
package lambdas_test

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"io"
	"os/exec"
	"testing"
)

// TestMakeLambdasPackages builds one function the way `make lambdas` does for every one and
// checks what Lambda's provided.al2023 runtime needs: a zip holding an executable named
// bootstrap at its root, a static Linux binary for the architecture.
func TestMakeLambdasPackages(t *testing.T) {
	out, err := exec.Command("make", "-C", "..", "lambdas", "LAMBDAS=autoscaler", "LAMBDA_ARCHS=arm64").CombinedOutput()
	if err != nil {
		t.Fatalf("make lambdas: %v\n%s", err, out)
	}
	z, err := zip.OpenReader("dist/autoscaler-arm64.zip")
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if len(z.File) != 1 || z.File[0].Name != "bootstrap" {
		t.Fatalf("zip holds %d files, first %q; want just bootstrap", len(z.File), z.File[0].Name)
	}
	f := z.File[0]
	if f.Mode().Perm()&0o111 == 0 {
		t.Fatalf("bootstrap mode %v is not executable", f.Mode())
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	bin, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if bin.Machine != elf.EM_AARCH64 || bin.Type != elf.ET_EXEC {
		t.Fatalf("bootstrap is %v %v, want an arm64 executable", bin.Machine, bin.Type)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("bootstrap is dynamically linked; the runtime has no libc to offer it")
		}
	}
}
