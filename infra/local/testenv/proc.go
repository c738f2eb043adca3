package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build compiles a Go main package (a path relative to the calling test's folder, such as
// "../bootstrap") into dir and returns the binary's path. Tags go to -tags.
func Build(t testing.TB, pkg, dir, name string, tags ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Proc is a process a test started; it is killed when the test ends.
type Proc struct {
	Cmd     *exec.Cmd
	Done    chan struct{}
	LogPath string
}

// Start runs bin with args and extra environment, logging to <dir>/<name>.log.
func Start(t testing.TB, dir, name, bin string, args []string, env ...string) *Proc {
	t.Helper()
	p := &Proc{LogPath: filepath.Join(dir, name+".log"), Done: make(chan struct{})}
	lf, err := os.Create(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = lf, lf
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Cmd.Wait(); lf.Close(); close(p.Done) }()
	t.Cleanup(func() { _ = p.Cmd.Process.Kill(); <-p.Done })
	return p
}

// Log returns what the process has written so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Exited says whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}
