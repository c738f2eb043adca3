//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
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

// startWorker runs `liveagg worker --config cfg` with LIVEAGG_WORKER_ID=id and extra
// environment, logging to <dir>/<id>.log; the process is killed when the test ends.
func startWorker(t testing.TB, dir, cfg, id string, env ...string) *testenv.Proc {
	t.Helper()
	return testenv.Start(t, dir, id, liveaggBin, []string{"worker", "--config", cfg}, append([]string{"LIVEAGG_WORKER_ID=" + id}, env...)...)
}

// newTopic creates a topic on the local Kafka and returns a client for producing to it.
func newTopic(t testing.TB, brokers []string, topic string, partitions int32) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return cl
}

// countSpec writes the smallest useful spec, a per-minute count by field k of records timed by
// field t, with a file output under dir, and returns its path.
func countSpec(t testing.TB, dir, name, topic string) string {
	return writeFile(t, dir, "spec.yaml", `
name: %s
input: {topic: %s, time_field: t}
key: [k]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: file, path: %q}]
`, name, topic, filepath.Join(dir, "out"))
}

// keyedCountSpec is countSpec over a topic whose records are keyed by k, declared so: one
// stage, for tests that count a worker's partitions.
func keyedCountSpec(t testing.TB, dir, name, topic string) string {
	return writeFile(t, dir, "spec.yaml", `
name: %s
input: {topic: %s, time_field: t, partitioned_by: [k]}
key: [k]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: file, path: %q}]
`, name, topic, filepath.Join(dir, "out"))
}

// logTailsOnFailure logs the last lines of each worker's log (w0.log and on, in dir) if the
// test fails: what a failed run's workers were doing is most of what there is to know.
func logTailsOnFailure(t testing.TB, dir string, workers, lines int) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i := range workers {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("w%d.log", i)))
			if err != nil {
				continue
			}
			l := strings.Split(string(b), "\n")
			t.Logf("w%d log tail:\n%s", i, strings.Join(l[max(0, len(l)-lines):], "\n"))
		}
	})
}
