//go:build integration

package worker_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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
				r.fleet.waitExit(0, time.Minute)
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

// TestTwoStageWindowChange: a spec run in two stages changes its windows (1s to 2s, so its
// first stage's partials change size too) while records flow, through a drain on the change.
// The second stage merges the old version's 1s partials with the new version's 2s ones into
// its new windows: the new first stage must start where the old one's partials end, or the
// second stage counts the records between twice. Every row of the Kafka output, of either
// size, counts exactly the records of its key in its window, is written once, and every record
// is in a row.
func TestTwoStageWindowChange(t *testing.T) {
	r := newIdleRun(t, "", 2)
	specAt := func(version int, windows string) {
		writeFile(t, r.dir, "spec.yaml", `
name: %s
version: %d
input: {topic: %s, time_field: ts, idle_timeout: %s}
key: [k]
windows: [%s]
allowed_lateness: %s
aggregations: [{fn: count}, {fn: sum, field: v}]
outputs:
  - {type: kafka, topic: %s}
`, r.name, version, r.topic, idleTimeout, windows, idleLateness, r.out)
	}
	specAt(1, "1s")
	writeFile(t, r.dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s], session_timeout: 6s}
checkpoint: {location: "file://%s/checkpoints", interval: 3s}
`, r.spec, strings.Join(r.brokers, ","), r.dir)
	r.fleet.start(0)
	times := map[string][]int64{} // event times per key
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			now := time.Now().UnixMilli()
			for p := range int32(2) {
				for i := range 3 {
					k := fmt.Sprintf("k%d-%d", p, i)
					val := fmt.Appendf(nil, `{"k":%q,"ts":%d,"v":1}`, k, now)
					if err := r.cl.ProduceSync(r.ctx, &kgo.Record{Topic: r.topic, Partition: p, Key: []byte(k), Value: val}).FirstErr(); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					times[k] = append(times[k], now)
					mu.Unlock()
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	time.Sleep(10 * time.Second)
	specAt(2, "2s")
	r.fleet.waitExit(0, time.Minute)
	r.fleet.start(0)
	time.Sleep(8 * time.Second)
	close(stop)
	wg.Wait()

	type row struct {
		k           string
		start, size int64
	}
	// Rows until every record is in one (the quiet partitions close the last windows).
	var counts, writes map[row]int
	covered := func() bool {
		counts, writes = map[row]int{}, map[row]int{}
		readToEnd(t, r.ctx, r.brokers, []string{r.out}, func(rec *kgo.Record) {
			var m struct {
				K     string  `json:"k"`
				Start string  `json:"window_start"`
				Size  string  `json:"window_size"`
				Count float64 `json:"count"`
			}
			if err := json.Unmarshal(rec.Value, &m); err != nil {
				t.Fatalf("row %s: %v", rec.Value, err)
			}
			start, _ := time.Parse(time.RFC3339, m.Start)
			size, _ := time.ParseDuration(m.Size)
			id := row{m.K, start.UnixMilli(), size.Milliseconds()}
			counts[id] = int(m.Count)
			writes[id]++
		})
		mu.Lock()
		defer mu.Unlock()
		for k, ts := range times {
			for _, at := range ts {
				if !slices.ContainsFunc([]int64{1000, 2000}, func(size int64) bool { _, ok := counts[row{k, at - at%size, size}]; return ok }) {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(time.Minute)
	for !covered() {
		if time.Now().After(deadline) {
			t.Fatal("some records are in no row of the output a minute after the last")
		}
		time.Sleep(500 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	sizes := map[int64]int{}
	for id, n := range counts {
		want := 0
		for _, at := range times[id.k] {
			if at >= id.start && at < id.start+id.size {
				want++
			}
		}
		if n != want {
			t.Errorf("row %v counts %d records, want %d", id, n, want)
		}
		if writes[id] != 1 {
			t.Errorf("row %v written %d times", id, writes[id])
		}
		sizes[id.size]++
	}
	if sizes[1000] == 0 || sizes[2000] == 0 {
		t.Errorf("rows per window size %v: want both the old and the new", sizes)
	}
	t.Logf("%d rows exact, each written once (by size: %v)", len(counts), sizes)
}

// waitExit waits for worker i to exit by itself (a drain on a spec change).
func (f *fleet) waitExit(i int, within time.Duration) {
	f.t.Helper()
	f.mu.Lock()
	exited := f.exited[i]
	f.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(within):
		f.t.Fatalf("worker %d did not exit by itself within %v", i, within)
	}
}
