//go:build integration

package worker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestSpecChangeDrainsWorker: a worker watching its spec sees a valid edit, checkpoints every
// partition (drain) and exits 0, so its supervisor restarts it on the new spec; an invalid edit
// is ignored and the worker keeps running.
func TestSpecChangeDrainsWorker(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 3*time.Minute)
	name := testenv.Name(t, "specchg")
	topic := name + "-raw"
	cl := newTopic(t, brokers, topic, 1)
	dir := t.TempDir()
	specPath := filepath.Join(dir, "spec.yaml")
	doc := fmt.Sprintf(`
name: %s
input: {topic: %s, time_field: t}
key: [k]
windows: [1m]
allowed_lateness: 10s
aggregations: [{fn: count}]
outputs: [{type: file, path: %q}]
`, name, topic, filepath.Join(dir, "out"))
	if err := os.WriteFile(specPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeFile(t, dir, "worker.yaml", `
spec: %s
spec_poll_interval: 200ms
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s}
`, specPath, strings.Join(brokers, ","), filepath.Join(dir, "ckpt"))
	w := startWorker(t, dir, cfgPath, "w")
	done := w.Done
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(`{"k":"a","t":1767225600000}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)

	// An invalid edit: ignored.
	if err := os.WriteFile(specPath, []byte(strings.Replace(doc, "{fn: count}", "{fn: sum}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("worker exited on an invalid spec")
	case <-time.After(2 * time.Second):
	}
	// A valid edit: the worker drains and exits 0.
	if err := os.WriteFile(specPath, []byte(strings.Replace(doc, "10s", "20s", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("worker did not restart on a changed spec")
	}
	logText := w.Log()
	if code := w.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after a spec change, want 0\n%s", code, logText)
	}
	for _, want := range []string{"new spec is invalid; keeping the running spec", "spec changed: draining", `"checkpointed":true`} {
		if !strings.Contains(logText, want) {
			t.Errorf("log lacks %q:\n%s", want, logText)
		}
	}
}
