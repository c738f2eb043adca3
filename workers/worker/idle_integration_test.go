//go:build integration

package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// Quiet partitions under input.idle_timeout, on real worker processes, Kafka and Cassandra:
// windows 10s, allowed lateness 1s, idle timeout 2s, checkpoints every second. The bound a
// window's row must meet is idle_timeout + allowed_lateness after the window's end, plus the
// confirmation and checkpoint cadence and this machine's scheduling, under a full test run:
// idleSlack. The bound itself is measured by BenchmarkQuietLatency.
const (
	idleWindow   = 10 * time.Second
	idleLateness = time.Second
	idleTimeout  = 2 * time.Second
	idleSlack    = 8 * time.Second
)

// idleRun is one spec over one topic with a fleet of worker processes, and the records the test
// produced.
type idleRun struct {
	t                  testing.TB
	ctx                context.Context
	name, ks, topic    string
	out, dlq           string
	brokers, cass      []string
	twoStages          bool
	cl                 *kgo.Client
	adm                *kadm.Client
	fleet              *fleet
	dir                string
	mu                 sync.Mutex
	produced           map[idleRow]int // on-time records per (key, window start)
	lastEnd            time.Time       // end of the newest window written to
	partitions         int32
	active             int32         // partitions written to: the others stay empty
	window             time.Duration // the spec's window, idleWindow unless a test writes its own spec
	workerConfig, spec string
}

type idleRow struct {
	k     string
	start int64
}

// newIdleRun starts nothing; partitioning is the spec's input.partitioned_by clause ("" for
// none: two stages).
func newIdleRun(t testing.TB, partitioning string, partitions int32) *idleRun {
	r := &idleRun{t: t, ctx: testenv.Context(t, 8*time.Minute), brokers: testenv.KafkaBrokers(t), cass: testenv.CassandraHosts(t),
		name: testenv.Name(t, "idle"), produced: map[idleRow]int{}, partitions: partitions, active: partitions, twoStages: partitioning == "",
		window: idleWindow}
	r.ks = strings.ReplaceAll(r.name, "-", "_")
	r.topic, r.out, r.dlq = r.name+"-raw", r.name+"-out", r.name+".dlq"
	var err error
	r.cl, err = kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.cl.Close)
	r.adm = kadm.NewClient(r.cl)
	for _, tp := range []string{r.topic, r.out} {
		if _, err := r.adm.CreateTopic(r.ctx, partitions, 1, nil, tp); err != nil {
			t.Fatal(err)
		}
	}
	r.dir = t.TempDir()
	r.spec = writeFile(t, r.dir, "spec.yaml", `
name: %s
input: {topic: %s, time_field: ts, idle_timeout: %s%s}
key: [k]
windows: [%s]
allowed_lateness: %s
aggregations: [{fn: count}, {fn: sum, field: v}]
outputs:
  - {type: cassandra, keyspace: %s, table: rollup}
  - {type: kafka, topic: %s}
`, r.name, r.topic, idleTimeout, partitioning, idleWindow, idleLateness, r.ks, r.out)
	r.workerConfig = writeFile(t, r.dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s], session_timeout: 6s}
checkpoint: {location: "file://%s/checkpoints", interval: 1s}
sinks:
  cassandra: {hosts: [%s], timeout: 20s}
`, r.spec, strings.Join(r.brokers, ","), r.dir, strings.Join(r.cass, ","))
	r.fleet = &fleet{t: t, cfgPath: r.workerConfig, procs: map[int]*exec.Cmd{}, logs: r.dir}
	t.Cleanup(r.fleet.stopAll)
	logTailsOnFailure(t, r.dir, 3, 20)
	return r
}

// write produces one record per key, stamped now, to partition p (the key k<p>-<i> is the
// canonical key of partitioned_by [k]); it counts it as on time.
func (r *idleRun) write(p int32, keys int) {
	now := time.Now()
	for i := range keys {
		k := fmt.Sprintf("k%d-%d", p, i)
		val := fmt.Appendf(nil, `{"k":%q,"ts":%d,"v":1}`, k, now.UnixMilli())
		if err := r.cl.ProduceSync(r.ctx, &kgo.Record{Topic: r.topic, Partition: p, Key: []byte(k), Value: val}).FirstErr(); err != nil {
			r.t.Fatal(err)
		}
		start := now.UnixMilli() - now.UnixMilli()%r.window.Milliseconds()
		r.mu.Lock()
		r.produced[idleRow{k, start}]++
		if end := time.UnixMilli(start).Add(r.window); end.After(r.lastEnd) {
			r.lastEnd = end
		}
		r.mu.Unlock()
	}
}

// stream writes to every partition every interval until stop is closed.
func (r *idleRun) stream(interval time.Duration, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			for p := range r.active {
				r.write(p, 3)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return &wg
}

// outputRows reads the read_committed Kafka output: every (key, window) row with its count and
// how many times it was written, and when the newest row was seen.
func (r *idleRun) outputRows() (counts map[idleRow]int, writes map[idleRow]int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ConsumeTopics(r.out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	ends, err := r.adm.ListCommittedOffsets(r.ctx, r.out)
	if err != nil {
		r.t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	counts, writes = map[idleRow]int{}, map[idleRow]int{}
	pos := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			r.t.Fatalf("reading %s: %v", r.out, ctx.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			pos[rec.Partition] = rec.Offset + 1 // transaction markers too: they may end the log
			if rec.Attrs.IsControl() {
				return
			}
			var m struct {
				K           string  `json:"k"`
				WindowStart string  `json:"window_start"`
				Count       float64 `json:"count"`
			}
			if err := json.Unmarshal(rec.Value, &m); err != nil {
				r.t.Fatalf("row %s: %v", rec.Value, err)
			}
			start, err := time.Parse(time.RFC3339, m.WindowStart)
			if err != nil {
				r.t.Fatal(err)
			}
			id := idleRow{m.K, start.UnixMilli()}
			counts[id] = int(m.Count)
			writes[id]++
		})
	}
	return counts, writes
}

// waitRows waits until every produced row is in the Kafka output and returns when the newest
// window's row arrived, relative to that window's end.
func (r *idleRun) waitRows(deadline time.Duration) time.Duration {
	r.mu.Lock()
	lastEnd := r.lastEnd
	want := len(r.produced)
	r.mu.Unlock()
	until := time.Now().Add(deadline)
	for {
		counts, _ := r.outputRows()
		if len(counts) >= want {
			return time.Since(lastEnd)
		}
		if time.Now().After(until) {
			r.t.Fatalf("%d of %d rows in the output %v after the last window ended", len(counts), want, time.Since(lastEnd).Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verify checks the Kafka output and Cassandra against what was produced: every row exactly
// once, each count exact, no dead letter.
func (r *idleRun) verify() {
	r.fleet.mu.Lock()
	crashes := r.fleet.crashes
	r.fleet.mu.Unlock()
	if len(crashes) > 0 {
		r.t.Errorf("workers stopped on their own: %v", crashes)
	}
	counts, writes := r.outputRows()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.produced {
		if counts[id] != n {
			r.t.Errorf("kafka output %v: count %d, want %d", id, counts[id], n)
		}
		if writes[id] != 1 {
			r.t.Errorf("kafka output %v written %d times, want once", id, writes[id])
		}
	}
	for id := range counts {
		if _, ok := r.produced[id]; !ok {
			r.t.Errorf("kafka output has a row nobody produced: %v", id)
		}
	}
	host, port, _ := strings.Cut(r.cass[0], ":")
	c := gocql.NewCluster(host)
	c.Port, _ = strconv.Atoi(port)
	c.Timeout = 20 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		r.t.Fatal(err)
	}
	defer s.Close()
	iter := s.Query(fmt.Sprintf("SELECT k, window_start, count FROM %s.rollup", r.ks)).Iter()
	var k string
	var start time.Time
	var count int64
	rows := 0
	for iter.Scan(&k, &start, &count) {
		rows++
		if want := r.produced[idleRow{k, start.UnixMilli()}]; int64(want) != count {
			r.t.Errorf("cassandra %s %v: count %d, want %d", k, start, count, want)
		}
	}
	if err := iter.Close(); err != nil {
		r.t.Fatal(err)
	}
	if rows != len(r.produced) {
		r.t.Errorf("cassandra has %d rows, want %d", rows, len(r.produced))
	}
	if n := r.topicRecords(r.dlq); n != 0 {
		r.t.Errorf("%d records dead-lettered, want none: no record may be turned late", n)
	}
	r.t.Logf("%d rows exact in the Kafka output (each written once) and in Cassandra", len(r.produced))
}

// topicRecords counts the records of a topic (0 if it does not exist).
func (r *idleRun) topicRecords(topic string) int64 {
	ends, err := r.adm.ListEndOffsets(r.ctx, topic)
	if err != nil {
		return 0
	}
	starts, err := r.adm.ListStartOffsets(r.ctx, topic)
	if err != nil {
		return 0
	}
	var n int64
	ends.Each(func(e kadm.ListedOffset) {
		if s, ok := starts.Lookup(topic, e.Partition); ok && e.Err == nil {
			n += e.Offset - s.Offset
		}
	})
	return n
}

// TestQuietPartitionClosesItsWindows: records for a few seconds, then silence. The last
// window's rows reach Cassandra and the Kafka output within idle_timeout + allowed_lateness
// (+ slack) of its end, with a kill -9 before the idle close and another right after it: no
// row twice, none changed, none lost. In one stage and in two, and in two with an input
// partition that never gets a record (the second stage must hear from it all the same, again
// and again).
func TestQuietPartitionClosesItsWindows(t *testing.T) {
	for _, tc := range []struct {
		name, partitioning string
		partitions, active int32
	}{
		{"one stage", ", partitioned_by: [k]", 2, 2},
		{"two stages", "", 2, 2},
		{"two stages and an empty partition", "", 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newIdleRun(t, tc.partitioning, tc.partitions)
			r.active = tc.active
			r.fleet.start(0)
			stop := make(chan struct{})
			wg := r.stream(300*time.Millisecond, stop)
			time.Sleep(5 * time.Second)
			close(stop)
			wg.Wait()
			// Before the idle close: the restart restores, replays, and must find the
			// partitions idle all over again.
			r.fleet.kill9(0)
			r.fleet.start(0)
			bound := idleTimeout + idleLateness + idleSlack
			if tc.partitioning == "" {
				bound += time.Second // one checkpoint interval between the stages
			}
			took := r.waitRows(idleWindow + 2*bound + 20*time.Second)
			t.Logf("last window's rows arrived %v after its end (bound %v)", took.Round(time.Millisecond), bound)
			if took > bound+5*time.Second { // the restart's own restore and replay add to it
				t.Errorf("quiet window closed %v after its end; bound %v plus a restart", took, bound)
			}
			// Right after the idle close: the restart restores a checkpoint taken at or after
			// it and must not write the windows again.
			logged := r.logSize(0)
			r.fleet.kill9(0)
			r.fleet.start(0)
			stages := int32(1)
			if tc.partitioning == "" {
				stages = 2
			}
			// The pure bound starts once the restarted worker owns every partition again: the
			// group hands them over only when the killed member's session has expired.
			r.waitRestored(0, logged, int(stages*tc.partitions))
			time.Sleep(idleTimeout)
			// A second quiet stretch without a kill: the pure bound.
			r.mu.Lock()
			r.lastEnd = time.Time{}
			r.mu.Unlock()
			for p := range r.active {
				r.write(p, 2)
			}
			took = r.waitRows(idleWindow + 2*bound)
			t.Logf("without a restart: %v after the window's end (bound %v)", took.Round(time.Millisecond), bound)
			if took > bound {
				t.Errorf("quiet window closed %v after its end, over the bound %v", took, bound)
			}
			r.verify()
		})
	}
}

// TestNoIdleAdvanceWhileTheWorkerCannotRead: the worker is stopped (SIGSTOP) for three idle
// timeouts while records keep arriving, stamped with the time they are written. When it runs
// again it must read them on time: none late, every count exact.
func TestNoIdleAdvanceWhileTheWorkerCannotRead(t *testing.T) {
	r := newIdleRun(t, ", partitioned_by: [k]", 2)
	r.fleet.start(0)
	stop := make(chan struct{})
	wg := r.stream(200*time.Millisecond, stop)
	time.Sleep(4 * time.Second)
	r.fleet.mu.Lock()
	proc := r.fleet.procs[0]
	r.fleet.mu.Unlock()
	if err := proc.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * idleTimeout)
	if err := proc.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	r.waitRows(idleWindow + 30*time.Second)
	r.verify()
}

// TestOpenTransactionIsNotIdle: a transactional producer (a level-1 outbox, say) writes a record
// and leaves its transaction open for three idle timeouts. The partition has something to read
// (the open transaction), so it must not advance: when the transaction commits, its record is
// on time and counted in its window.
func TestOpenTransactionIsNotIdle(t *testing.T) {
	r := newIdleRun(t, ", partitioned_by: [k]", 1)
	r.fleet.start(0)
	r.write(0, 2) // committed records before the transaction: the partition's watermark starts here
	time.Sleep(2 * time.Second)
	tx, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.TransactionalID(r.name+"-txn"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	val := fmt.Appendf(nil, `{"k":"k0-0","ts":%d,"v":1}`, now.UnixMilli())
	if err := tx.ProduceSync(r.ctx, &kgo.Record{Topic: r.topic, Partition: 0, Key: []byte("k0-0"), Value: val}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3*idleTimeout + idleWindow) // long past the window's end and the idle timeout
	if err := tx.EndTransaction(r.ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	start := now.UnixMilli() - now.UnixMilli()%idleWindow.Milliseconds()
	r.mu.Lock()
	r.produced[idleRow{"k0-0", start}]++
	if end := time.UnixMilli(start).Add(idleWindow); end.After(r.lastEnd) {
		r.lastEnd = end
	}
	r.mu.Unlock()
	r.waitRows(idleWindow + 30*time.Second)
	r.verify()
}

// BenchmarkQuietLatency measures, on real worker processes, how long after a quiet window's end
// its rows are in the Kafka output: records for a few seconds on every partition, then
// silence; in one stage and in two (the second stage waits for the first's idle advance to
// reach it through the watermark markers). It reports each as seconds and as a ratio to
// idle_timeout + allowed_lateness, the bound the design promises before its few seconds of
// confirmation and checkpoint cadence, measured in the same run.
//
//	go test -tags integration -run XXX -bench QuietLatency -benchtime 1x ./workers/worker/
func BenchmarkQuietLatency(b *testing.B) {
	bound := (idleTimeout + idleLateness).Seconds()
	for b.Loop() {
		for _, tc := range []struct{ name, partitioning string }{
			{"one-stage", ", partitioned_by: [k]"},
			{"two-stage", ""},
		} {
			var runs []float64
			for range envInt("LIVEAGG_QUIET_ROUNDS", 3) {
				r := newIdleRun(b, tc.partitioning, 4)
				r.fleet.start(0)
				stop := make(chan struct{})
				wg := r.stream(250*time.Millisecond, stop)
				time.Sleep(4 * time.Second)
				close(stop)
				wg.Wait()
				runs = append(runs, r.waitRows(idleWindow+30*time.Second).Seconds())
				r.fleet.stopAll()
			}
			slices.Sort(runs)
			med := runs[len(runs)/2]
			b.ReportMetric(med, tc.name+"-s")
			b.ReportMetric(med/bound, tc.name+"/bound")
			fmt.Fprintf(os.Stderr, "%s: window end to rollup on a quiet partition %.2fs (runs %v), %.2fx idle_timeout + allowed_lateness (%.0fs)\n",
				tc.name, med, runs, med/bound, bound)
		}
	}
}

// logSize is how much worker i has logged so far, for waitRestored.
func (r *idleRun) logSize(i int) int64 {
	fi, err := os.Stat(filepath.Join(r.dir, fmt.Sprintf("w%d.log", i)))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// waitRestored waits until worker i has logged n partitions restored after the first from
// bytes of its log.
func (r *idleRun) waitRestored(i int, from int64, n int) {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("w%d.log", i)))
		if err == nil && int64(len(b)) >= from && bytes.Count(b[from:], []byte(`"msg":"partition restored"`)) >= n {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("worker %d did not restore %d partitions within 90s", i, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
