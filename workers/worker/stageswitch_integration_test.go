//go:build integration

package worker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTwoStagesBecomeOne: a spec runs in two stages (its input's keying undeclared) while
// records flow; the spec is changed to declare the input partitioned by its key, and the worker
// restarts on it in one stage, after a drain (the worker watching its spec) or a kill -9 before
// the change. The second stage runs behind the first (it reads partials when the first
// commits; checkpoints every 3 s, windows of 1 s): the one-stage version must write the windows
// the second stage had not, and only those. Every row reaches the Kafka output exactly once and
// Cassandra with its exact count, none dead-lettered.
func TestTwoStagesBecomeOne(t *testing.T) {
	for _, how := range []string{"drain", "kill -9"} {
		t.Run(how, func(t *testing.T) {
			r := newIdleRun(t, "", 2)
			r.window = time.Second
			specAt := func(version int, partitioning string) {
				writeFile(t, r.dir, "spec.yaml", `
name: %s
version: %d
input: {topic: %s, time_field: ts, idle_timeout: %s%s}
key: [k]
windows: [1s]
allowed_lateness: %s
aggregations: [{fn: count}, {fn: sum, field: v}]
outputs:
  - {type: cassandra, keyspace: %s, table: rollup}
  - {type: kafka, topic: %s}
`, r.name, version, r.topic, idleTimeout, partitioning, idleLateness, r.ks, r.out)
			}
			specAt(1, "")
			writeFile(t, r.dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s], session_timeout: 6s}
checkpoint: {location: "file://%s/checkpoints", interval: 3s}
sinks:
  cassandra: {hosts: [%s], timeout: 20s}
`, r.spec, strings.Join(r.brokers, ","), r.dir, strings.Join(r.cass, ","))
			r.fleet.start(0)
			stop := make(chan struct{})
			wg := r.stream(100*time.Millisecond, stop)
			time.Sleep(10 * time.Second)
			if how == "kill -9" {
				r.fleet.kill9(0)
				specAt(2, ", partitioned_by: [k]")
			} else {
				specAt(2, ", partitioned_by: [k]")
				r.fleet.mu.Lock()
				exited := r.fleet.exited[0]
				r.fleet.mu.Unlock()
				select {
				case <-exited:
				case <-time.After(time.Minute):
					t.Fatal("the worker did not drain on the spec change")
				}
			}
			r.fleet.start(0)
			time.Sleep(5 * time.Second)
			close(stop)
			wg.Wait()
			r.waitRows(time.Minute)
			b, err := os.ReadFile(filepath.Join(r.dir, "w0.log"))
			if err != nil {
				t.Fatal(err)
			}
			took := 0
			for line := range strings.SplitSeq(string(b), "\n") {
				if strings.Contains(line, "two stages became one") {
					t.Log(line)
					took++
				}
			}
			if took != 2 {
				t.Errorf("%d partitions took over from two stages, want 2", took)
			}
			r.verify()
		})
	}
}
