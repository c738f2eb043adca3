//go:build integration

package worker_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// writeFile writes a formatted file into dir and returns its path.
func writeFile(t testing.TB, dir, name, format string, args ...any) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, fmt.Appendf(nil, format, args...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// proc is a liveagg worker process started by a test.
type proc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// startWorker runs `liveagg worker --config cfg` with LIVEAGG_WORKER_ID=id and extra
// environment, logging to <dir>/<id>.log; the process is killed when the test ends.
func startWorker(t testing.TB, dir, cfg, id string, env ...string) *proc {
	t.Helper()
	p := &proc{logPath: filepath.Join(dir, id+".log"), done: make(chan struct{})}
	lf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(liveaggBin, "worker", "--config", cfg)
	p.cmd.Env = append(append(os.Environ(), "LIVEAGG_WORKER_ID="+id), env...)
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); lf.Close(); close(p.done) }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
	return p
}

// log returns what the process has logged so far.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}
