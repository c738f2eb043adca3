//go:build integration

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
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
	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/worker"
)

// fieldRig is one spec over a real topic whose records allow 5 MB, written to the real
// Cassandra through the worker's sinks, with the dead letters read back from the real Kafka.
type fieldRig struct {
	t       *testing.T
	ctx     context.Context
	brokers []string
	name    string
	ks      string
	topic   string
	prod    *kgo.Client
	spec    *spec.Spec
	// specYAML is the spec as written, for worker processes.
	specYAML string
	store    *checkpoint.Store
	sinks    []sink.Sink
	ends     map[int32]int64
}

const fieldBase = int64(1767225600000) // 2026-01-01T00:00:00Z

// countSum is the aggregations most rig tests use.
const countSum = "[{fn: count}, {fn: sum, field: v}]"

func newFieldRig(t *testing.T, aggs string, extra ...sink.Sink) *fieldRig {
	return newFieldRigInput(t, "", aggs, extra...)
}

// newFieldRigInput is newFieldRig with more input settings (YAML flow entries, like
// "partitioned_by: [k]").
func newFieldRigInput(t *testing.T, input, aggs string, extra ...sink.Sink) *fieldRig {
	r := &fieldRig{t: t, brokers: testenv.KafkaBrokers(t), ctx: testenv.Context(t, 6*time.Minute), ends: map[int32]int64{}}
	r.name = testenv.Name(t, "field")
	r.ks = strings.ReplaceAll(r.name, "-", "_")
	r.topic = r.name + ".raw"
	var err error
	r.prod, err = kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ProducerBatchMaxBytes(6<<20), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.prod.Close)
	// The records carry event-time log timestamps from early 2026: no time-based retention,
	// or the broker may delete them under the test.
	five, forever := "5242880", "-1"
	if _, err := kadm.NewClient(r.prod).CreateTopic(r.ctx, 2, 1, map[string]*string{"max.message.bytes": &five, "retention.ms": &forever}, r.topic); err != nil {
		t.Fatal(err)
	}
	r.specYAML = fmt.Sprintf(`
name: %s
input: {topic: %s, time_field: t, max_future_skew: 1h%s}
key: [k]
windows: [1m]
allowed_lateness: 30s
aggregations: %s
outputs: [{type: cassandra, keyspace: %s, table: rollup}]
`, r.name, r.topic, input, aggs, r.ks)
	if r.spec, err = spec.Parse([]byte(r.specYAML)); err != nil {
		t.Fatal(err)
	}
	sess, err := sink.NewCassandraSessionWith(r.ctx, sink.CassandraConn{Hosts: testenv.CassandraHosts(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	layout, err := agg.LayoutOf(r.spec)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sink.NewCassandra(r.ctx, sess, sink.CassandraConfig{Keyspace: r.ks, Table: "rollup"}, []string{"k"}, sink.Columns(layout))
	if err != nil {
		t.Fatal(err)
	}
	outbox := sink.NewKafka([]kgo.Opt{kgo.SeedBrokers(r.brokers...)}, nil, r.name+".dlq", r.name+".progress")
	if err := outbox.EnsureTopics(r.ctx, r.topic, 2); err != nil {
		t.Fatal(err)
	}
	r.sinks = append(append([]sink.Sink{cs}, extra...), outbox)
	if r.store, err = checkpoint.Open("file://" + filepath.Join(t.TempDir(), "ckpt")); err != nil {
		t.Fatal(err)
	}
	return r
}

// produce writes records to a partition; each gets the log time it names.
func (r *fieldRig) produce(p int32, recs ...*kgo.Record) {
	r.t.Helper()
	for _, rec := range recs {
		rec.Topic, rec.Partition = r.topic, p
	}
	res := r.prod.ProduceSync(r.ctx, recs...)
	if err := res.FirstErr(); err != nil {
		r.t.Fatal(err)
	}
	for _, pr := range res {
		r.ends[p] = max(r.ends[p], pr.Record.Offset+1)
	}
}

func fieldEvent(k string, ts, v int64, logTime int64) *kgo.Record {
	return &kgo.Record{Value: fmt.Appendf(nil, `{"k":%q,"t":%d,"v":%d}`, k, ts, v), Timestamp: time.UnixMilli(logTime)}
}

// start runs a worker on the rig until ctx ends or it fails; cancel stops it without a drain
// (what a crash leaves behind, but for the open transaction, which the next owner's producer
// fences either way); done gives Run's error.
func (r *fieldRig) start(id string, ctx context.Context) (*worker.Worker, func(), <-chan error) {
	r.t.Helper()
	w, err := worker.New(worker.Config{WorkerID: id, Spec: r.spec, KafkaOpts: []kgo.Opt{kgo.SeedBrokers(r.brokers...)},
		Checkpoints: r.store, CheckpointInterval: time.Second, Sinks: r.sinks, MaxPollRecords: 200,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("worker", id)})
	if err != nil {
		r.t.Fatal(err)
	}
	wctx, cancelRun := context.WithCancel(ctx)
	ch := make(chan error, 1)
	go func() { ch <- w.Run(wctx) }()
	return w, cancelRun, ch
}

// waitCheckpointed waits until every partition's checkpoint is at its end offset.
func (r *fieldRig) waitCheckpointed(w *worker.Worker, done <-chan error) {
	r.t.Helper()
	for {
		st := w.Status()
		ok := len(st.Partitions) == len(r.ends)
		for _, p := range st.Partitions {
			ok = ok && p.LastCheckpointOffset >= r.ends[p.Partition]
		}
		if ok {
			return
		}
		select {
		case err := <-done:
			r.t.Fatalf("worker stopped: %v", err)
		case <-r.ctx.Done():
			r.t.Fatalf("timed out; status %+v, ends %v", st, r.ends)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type deadLetter struct {
	reason, detail string
	key            string
	size           int
}

// deadLetters reads the committed dead letters.
func (r *fieldRig) deadLetters() []deadLetter {
	r.t.Helper()
	var out []deadLetter
	readToEnd(r.t, r.ctx, r.brokers, []string{r.name + ".dlq"}, func(rec *kgo.Record) {
		d := deadLetter{key: string(rec.Key), size: len(rec.Value)}
		for _, h := range rec.Headers {
			switch h.Key {
			case "liveagg-reason":
				d.reason = string(h.Value)
			case "liveagg-detail":
				d.detail = string(h.Value)
			}
		}
		out = append(out, d)
	}, kgo.FetchMaxPartitionBytes(8<<20))
	return out
}

// deadLettersUntil reads the committed dead letters again until enough says they are all
// there, for up to a minute, and returns the last read; the caller's checks then say what is
// wrong. A caught-up checkpoint does not mean every dead letter has committed: a row a sink
// refuses at one checkpoint's flush is dead-lettered in the next checkpoint's transaction.
func (r *fieldRig) deadLettersUntil(enough func([]deadLetter) bool) []deadLetter {
	r.t.Helper()
	until := time.Now().Add(time.Minute)
	for {
		dead := r.deadLetters()
		if enough(dead) || time.Now().After(until) || r.ctx.Err() != nil {
			return dead
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rollups reads the Cassandra table as "key@window_start" -> {count, sum}.
func (r *fieldRig) rollups() map[string][2]float64 {
	r.t.Helper()
	host, port, _ := strings.Cut(testenv.CassandraHosts(r.t)[0], ":")
	c := gocql.NewCluster(host)
	fmt.Sscan(port, &c.Port)
	c.Timeout = 30 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		r.t.Fatal(err)
	}
	defer s.Close()
	iter := s.Query(fmt.Sprintf(`SELECT k, window_start, count, sum_v FROM %s.rollup`, r.ks)).PageSize(5000).Iter()
	out := map[string][2]float64{}
	var k string
	var start time.Time
	var n int64
	var sum float64
	for iter.Scan(&k, &start, &n, &sum) {
		out[fmt.Sprintf("%s@%d", k, start.UnixMilli())] = [2]float64{float64(n), sum}
	}
	if err := iter.Close(); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// TestBadRecordsAndRowsNeverStopAPartition sends, among good records on a topic that allows
// 5 MB, each kind of record that used to stop its partition for good or to spoil the ones
// after it: a 2 MB record (too large for the spec, and for a dead-letter topic sized by the
// broker's default), a key with invalid UTF-8 (which Cassandra refuses), a key longer than
// Cassandra's 64 KiB partition-key limit (a row Cassandra refuses), and a record stamped five
// minutes ahead of its log time. A worker is abandoned mid-stream without a checkpoint and a
// new one takes over. Every good record must be in Cassandra exactly once, each bad one in the
// dead letters exactly once with its reason, and none late.
func TestBadRecordsAndRowsNeverStopAPartition(t *testing.T) {
	r := newFieldRig(t, countSum)
	first, rest, want := badStream()
	for p := range int32(2) {
		r.produce(p, first[p]...)
	}
	// A first worker applies part of the stream and is abandoned without a checkpoint.
	w1, stop1, done1 := r.start("w1", r.ctx)
	for w1.Totals().Records < int64(len(first[0])) {
		time.Sleep(20 * time.Millisecond)
	}
	stop1()
	if err := <-done1; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("first worker: %v", err)
	}
	for p := range int32(2) {
		r.produce(p, rest[p]...)
	}
	w2, stop2, done := r.start("w2", r.ctx)
	defer stop2()
	r.waitCheckpointed(w2, done)
	r.checkBadStream(want)
}

// TestBadRecordsSurviveKill9 runs the same stream through real worker processes, killed with
// SIGKILL at moments that fall while the bad records and rows are being handled (before, in
// and after their checkpoint's transaction), each replaced by a new process.
func TestBadRecordsSurviveKill9(t *testing.T) {
	r := newFieldRig(t, countSum)
	first, rest, want := badStream()
	// The stream arrives over about four seconds, so the kills fall among the bad records.
	for p := range int32(2) {
		r.ends[p] = int64(len(first[p]) + len(rest[p]))
	}
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for chunk := range 12 {
			for p := range int32(2) {
				all := append(slices.Clone(first[p]), rest[p]...)
				per := (len(all) + 11) / 12
				lo, hi := chunk*per, min(len(all), (chunk+1)*per)
				if lo < hi {
					for _, rec := range all[lo:hi] {
						rec.Topic, rec.Partition = r.topic, p
					}
					if err := r.prod.ProduceSync(r.ctx, all[lo:hi]...).FirstErr(); err != nil {
						t.Error(err)
						return
					}
				}
			}
			time.Sleep(350 * time.Millisecond)
		}
	}()
	dir := t.TempDir()
	specPath := writeFile(t, dir, "spec.yaml", "%s", r.specYAML)
	cfg := writeFile(t, dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: %q, interval: 1s}
sinks: {cassandra: {hosts: [%s]}}
`, specPath, strings.Join(r.brokers, ","), r.store.Location(), strings.Join(testenv.CassandraHosts(t), ","))
	for i, after := range []time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond, 3500 * time.Millisecond} {
		w := startWorker(t, dir, cfg, fmt.Sprintf("k%d", i))
		time.Sleep(after)
		if w.Exited() {
			t.Fatalf("worker %d exited on its own with status %d:\n%s", i, w.Cmd.ProcessState.ExitCode(), w.Log())
		}
		_ = w.Cmd.Process.Signal(syscall.SIGKILL)
		<-w.Done
	}
	<-produced
	w := startWorker(t, dir, cfg, "final")
	for {
		done := true
		for p := range int32(2) {
			m, err := r.store.Inspect(r.ctx, checkpoint.Key{Spec: r.name, Topic: r.topic, Partition: p})
			done = done && err == nil && m.Current != nil && m.Current.Offset >= r.ends[p]
		}
		if done {
			break
		}
		select {
		case <-w.Done:
			t.Fatalf("the last worker exited:\n%s", w.Log())
		case <-r.ctx.Done():
			t.Fatalf("timed out:\n%s", w.Log())
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.checkBadStream(want)
}

// badStream is two partitions of good records with, among them, one of each kind of record that
// used to stop a partition or spoil the records after it. It returns each partition's first and
// second half, the second ending with a record far ahead that closes every window, and the
// rollups a single pass over the good records gives, as "key@window_start" -> {count, sum}.
func badStream() (first, rest map[int32][]*kgo.Record, want map[string][2]float64) {
	const n = 3000
	want = map[string][2]float64{}
	add := func(k string, ts, v int64) {
		id := fmt.Sprintf("%s@%d", k, ts-ts%60_000)
		c := want[id]
		want[id] = [2]float64{c[0] + 1, c[1] + float64(v)}
	}
	longKey := strings.Repeat("x", 70_000)
	first, rest = map[int32][]*kgo.Record{}, map[int32][]*kgo.Record{}
	for p := range int32(2) {
		var recs []*kgo.Record
		for i := range n {
			ts := fieldBase + int64(i)*100
			// Each series on one partition, as the spec's one-stage run requires.
			k := fmt.Sprintf("p%dk%d", p, i%20)
			switch {
			case p == 0 && i == 500:
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"k":"big","t":%d,"v":1,"pad":%q}`, ts, strings.Repeat("p", 2<<20)), Timestamp: time.UnixMilli(ts + 1000)})
				continue
			case p == 0 && i == 1000:
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "{\"k\":\"m\xff\xfe\",\"t\":%d,\"v\":1}", ts), Timestamp: time.UnixMilli(ts + 1000)})
				continue
			case p == 1 && i == 1200:
				k = longKey
			case p == 1 && i == 1500:
				// Five minutes ahead of when it was written: counted, but it must not make the
				// records after it late.
				recs = append(recs, fieldEvent(k, ts+5*60_000, int64(i), ts+1000))
				add(k, ts+5*60_000, int64(i))
				continue
			}
			recs = append(recs, fieldEvent(k, ts, int64(i), ts+1000))
			if k != longKey {
				add(k, ts, int64(i))
			}
		}
		recs = append(recs, fieldEvent("closer", fieldBase+3_600_000, 0, fieldBase+3_600_000))
		first[p], rest[p] = recs[:n/2], recs[n/2:]
	}
	return first, rest, want
}

// checkBadStream checks Cassandra and the dead letters after badStream went through.
func (r *fieldRig) checkBadStream(want map[string][2]float64) {
	t := r.t
	t.Helper()
	got := r.rollups()
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			t.Errorf("rollup %s = %v (present %v), want %v", id, g, ok, w)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok && !strings.HasPrefix(id, "closer@") {
			t.Errorf("unexpected rollup %.40s", id)
		}
	}
	wantReasons := map[string]int{"too_large": 1, "invalid_utf8": 1, sink.RejectedRow: 1}
	dead := r.deadLettersUntil(func(ds []deadLetter) bool { return len(ds) >= 3 })
	reasons := map[string]int{}
	for _, d := range dead {
		reasons[d.reason]++
		if d.reason == "too_large" && d.size < 2<<20 {
			t.Errorf("the too_large dead letter holds %d bytes, not the whole record", d.size)
		}
		if d.reason == sink.RejectedRow && !strings.Contains(d.detail, "Key length") {
			t.Errorf("the rejected row's detail %q does not give Cassandra's reason", d.detail)
		}
	}
	for reason, n := range wantReasons {
		if reasons[reason] != n {
			t.Errorf("dead letters %s: %d, want %d (all: %v)", reason, reasons[reason], n, reasons)
		}
	}
	if len(reasons) != len(wantReasons) {
		t.Errorf("dead-letter reasons %v, want only %v", reasons, wantReasons)
	}
	t.Logf("%d rollups exact; dead letters %v", len(want), reasons)
}

// panicSink is a sink with a bug: it panics on any window holding a series named boom*.
type panicSink struct {
	mu     sync.Mutex
	panics int
}

func (s *panicSink) Name() string { return "buggy" }
func (s *panicSink) Close() error { return nil }
func (s *panicSink) Open(context.Context, sink.PartitionKey, string) (sink.Writer, error) {
	return s, nil
}
func (s *panicSink) Flush(context.Context) (string, error) { return "", nil }
func (s *panicSink) Write(_ context.Context, w *emit.Window) error {
	for _, row := range w.Rows {
		if strings.HasPrefix(row.Key[0], "boom") {
			s.mu.Lock()
			s.panics++
			s.mu.Unlock()
			panic("buggy sink cannot write boom")
		}
	}
	return nil
}

// TestPoisonRecordEndsTheCrashLoop: a sink with a bug panics on one window. The worker must not
// crash (the panic fails the partition), must not loop: after PoisonAfter owners in a row
// failed at the record that closes that window, the next one writes that window guarded, its
// rows for the buggy sink go to the dead letters, and the partition goes on. Cassandra, which
// has no bug, gets every row.
func TestPoisonRecordEndsTheCrashLoop(t *testing.T) {
	buggy := &panicSink{}
	r := newFieldRig(t, countSum, buggy)
	want := map[string][2]float64{}
	var recs []*kgo.Record
	for i := range 600 {
		ts := fieldBase + int64(i)*1000
		k := fmt.Sprintf("k%d", i%3)
		if i == 90 {
			k = "boom"
		}
		recs = append(recs, fieldEvent(k, ts, int64(i), ts+500))
		id := fmt.Sprintf("%s@%d", k, ts-ts%60_000)
		c := want[id]
		want[id] = [2]float64{c[0] + 1, c[1] + float64(i)}
	}
	recs = append(recs, fieldEvent("closer", fieldBase+3_600_000, 0, fieldBase+3_600_000))
	r.produce(0, recs...)
	r.produce(1, fieldEvent("closer", fieldBase+3_600_000, 0, fieldBase+3_600_000))

	failures := r.runUntilCaughtUp(6)
	if failures != 3 {
		t.Errorf("%d failed runs before the poison was passed, want 3 (PoisonAfter)", failures)
	}
	got := r.rollups()
	for id, w := range want {
		if got[id] != w {
			t.Errorf("rollup %s = %v, want %v", id, got[id], w)
		}
	}
	var boomRows int
	dead := r.deadLettersUntil(func(ds []deadLetter) bool {
		return slices.ContainsFunc(ds, func(d deadLetter) bool { return strings.HasPrefix(d.key, "boom") })
	})
	for _, d := range dead {
		if d.reason != sink.RejectedRow || !strings.Contains(d.detail, "poison") {
			t.Errorf("unexpected dead letter %+v", d)
		}
		if strings.HasPrefix(d.key, "boom") {
			boomRows++
		}
	}
	if boomRows != 1 {
		t.Errorf("the boom row is in the dead letters %d times, want once", boomRows)
	}
	m, err := r.store.Inspect(r.ctx, checkpoint.Key{Spec: r.name, Topic: r.topic, Partition: 0})
	if err != nil || m.Failure != nil {
		t.Errorf("manifest failure after the poison was passed: %+v, %v", m.Failure, err)
	}
}

// TestAdversarialRecordsOnARealPartition produces random and hostile records to a real
// partition (random bytes, deep nesting, huge numbers, control characters, every JSON type in
// every field, invalid UTF-8, records up to the topic's 5 MB limit) between good ones. The
// worker must never stop, and every record must be either aggregated or dead-lettered, once:
// the counts in Cassandra plus the dead letters add up to what was produced.
func TestAdversarialRecordsOnARealPartition(t *testing.T) {
	r := newFieldRig(t, countSum)
	rng := rand.New(rand.NewPCG(15, 2026))
	values := []string{`"s"`, `1`, `-0.5`, `1e308`, `1e999`, `-1e400`, `true`, `null`, `[]`, `{}`, `[1,"a",{}]`, `"1.5"`,
		`"` + "m\xff\xfe" + `"`, `"\u0000\u001f\ud800"`, `"` + "\x1f" + `"`, `{"a":{"b":{"c":1}}}`, `99999999999999999999999`, `""`}
	hostile := func(i int, ts int64) []byte {
		switch rng.IntN(8) {
		case 0: // random bytes
			b := make([]byte, rng.IntN(300))
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
			return b
		case 1: // deep nesting
			d := 1 + rng.IntN(5000)
			return []byte(strings.Repeat(`{"a":`, d) + `1` + strings.Repeat(`}`, d))
		case 2: // a big record, up to the topic's limit
			return fmt.Appendf(nil, `{"k":"big","t":%d,"v":1,"pad":%q}`, ts, strings.Repeat("z", rng.IntN(5_000_000)))
		case 3: // truncated JSON
			b := fmt.Appendf(nil, `{"k":"p0k%d","t":%d,"v":%d}`, i%7, ts, i)
			return b[:rng.IntN(len(b))]
		default: // every type in every field
			return fmt.Appendf(nil, `{"k":%s,"t":%s,"v":%s}`, values[rng.IntN(len(values))], []string{strconv.FormatInt(ts, 10), values[rng.IntN(len(values))]}[rng.IntN(2)],
				values[rng.IntN(len(values))])
		}
	}
	const n = 3000
	var recs []*kgo.Record
	produced := 0
	for i := range n {
		ts := fieldBase + int64(i)*100
		var v []byte
		if i%3 == 0 {
			v = hostile(i, ts)
		} else {
			v = fmt.Appendf(nil, `{"k":"p0k%d","t":%d,"v":%d}`, i%7, ts, i)
		}
		recs = append(recs, &kgo.Record{Value: v, Timestamp: time.UnixMilli(ts + 1000)})
		produced++
		if len(recs) == 200 || i == n-1 {
			r.produce(0, recs...)
			recs = recs[:0]
		}
	}
	r.produce(0, fieldEvent("closer", fieldBase+3_600_000, 0, fieldBase+3_600_000))
	r.produce(1, fieldEvent("closer", fieldBase+3_600_000, 0, fieldBase+3_600_000))
	w, stop, done := r.start("fuzz", r.ctx)
	defer stop()
	r.waitCheckpointed(w, done)

	var aggregated float64
	for id, c := range r.rollups() {
		if !strings.HasPrefix(id, "closer@") {
			aggregated += c[0]
		}
	}
	dead := r.deadLettersUntil(func(ds []deadLetter) bool { return int(aggregated)+len(ds) >= produced })
	reasons := map[string]int{}
	for _, d := range dead {
		reasons[d.reason]++
	}
	if int(aggregated)+len(dead) != produced {
		t.Errorf("aggregated %v + dead-lettered %d = %d, want the %d produced (reasons %v)", aggregated, len(dead), int(aggregated)+len(dead), produced, reasons)
	}
	t.Logf("%d records: %v aggregated, dead letters %v", produced, aggregated, reasons)
}

// TestLastOfTextToCassandra: last over a field that holds strings (and now and then a number)
// lands in a text column of the real Cassandra, exactly, with ties going to the greater text.
func TestLastOfTextToCassandra(t *testing.T) {
	r := newFieldRig(t, "[{fn: count}, {fn: last, field: status, type: text}]")
	statuses := []string{`"ok"`, `"degraded"`, `503`, `"café"`, `true`}
	want := map[string]string{}
	wantAt := map[string]int64{}
	var recs []*kgo.Record
	for i := range 1200 {
		ts := fieldBase + int64(i/2)*100 // two records per event time: ties
		k := fmt.Sprintf("k%d", i%5)
		st := statuses[(i*7)%len(statuses)]
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"k":%q,"t":%d,"status":%s}`, k, ts, st), Timestamp: time.UnixMilli(ts + 1000)})
		id := fmt.Sprintf("%s@%d", k, ts-ts%60_000)
		text := strings.Trim(st, `"`)
		if ts > wantAt[id] || (ts == wantAt[id] && text > want[id]) {
			want[id], wantAt[id] = text, ts
		}
	}
	r.produce(0, recs...)
	for p := range int32(2) {
		r.produce(p, &kgo.Record{Value: fmt.Appendf(nil, `{"k":"closer","t":%d,"status":"x"}`, fieldBase+3_600_000), Timestamp: time.UnixMilli(fieldBase + 3_600_000)})
	}
	w, stop, done := r.start("text", r.ctx)
	defer stop()
	r.waitCheckpointed(w, done)

	host, port, _ := strings.Cut(testenv.CassandraHosts(t)[0], ":")
	c := gocql.NewCluster(host)
	fmt.Sscan(port, &c.Port)
	sess, err := c.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	iter := sess.Query(fmt.Sprintf(`SELECT k, window_start, last_status FROM %s.rollup`, r.ks)).Iter()
	var k, status string
	var start time.Time
	got := 0
	for iter.Scan(&k, &start, &status) {
		if k == "closer" {
			continue
		}
		got++
		if id := fmt.Sprintf("%s@%d", k, start.UnixMilli()); status != want[id] {
			t.Errorf("%s: last_status %q, want %q", id, status, want[id])
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Errorf("%d rows, want %d", got, len(want))
	}
}

// TestTwoPoisonRecordsInARow: the records at two consecutive offsets each close a window the
// buggy sink panics on. Passing the first must move the restart point past it, or the second's
// failures would reset the first's count and the partition would loop for ever: 3 failed runs
// for each, then the partition goes on, and Cassandra has every row.
func TestTwoPoisonRecordsInARow(t *testing.T) {
	r := newFieldRig(t, countSum, &panicSink{})
	want := map[string][2]float64{}
	var recs []*kgo.Record
	add := func(k string, ts, v int64) {
		recs = append(recs, fieldEvent(k, ts, v, ts+500))
		id := fmt.Sprintf("%s@%d", k, ts-ts%60_000)
		c := want[id]
		want[id] = [2]float64{c[0] + 1, c[1] + float64(v)}
	}
	for i := range 60 { // the first minute, with boom in it
		k := fmt.Sprintf("k%d", i%3)
		if i == 30 {
			k = "boom"
		}
		add(k, fieldBase+int64(i)*1000, int64(i))
	}
	add("boom2", fieldBase+95_000, 95) // closes the first minute (watermark 65s): the first poison
	add("k0", fieldBase+155_000, 155)  // closes the second minute, boom2's: the second, right after
	r.produce(0, append(recs, fieldEvent("closer", fieldBase+3_600_000, 0, fieldBase+3_600_000))...)
	r.produce(1, fieldEvent("closer", fieldBase+3_600_000, 0, fieldBase+3_600_000))

	failures := r.runUntilCaughtUp(10)
	if failures != 6 {
		t.Errorf("%d failed runs, want 6 (3 for each poison record)", failures)
	}
	got := r.rollups()
	for id, w := range want {
		if got[id] != w {
			t.Errorf("rollup %s = %v, want %v", id, got[id], w)
		}
	}
}

// runUntilCaughtUp starts a worker after another, each replacing the one before as a
// supervisor would restart it, until one has checkpointed every partition to its end, and
// returns how many failed on the way. Every failure must be a panic (the buggy sink's); more
// than maxRuns runs is a crash loop.
func (r *fieldRig) runUntilCaughtUp(maxRuns int) int {
	t := r.t
	t.Helper()
	failures := 0
	for run := 1; ; run++ {
		if run > maxRuns {
			t.Fatalf("still failing after %d runs: a crash loop", run-1)
		}
		w, stop, done := r.start(fmt.Sprintf("w%d", run), r.ctx)
		var err error
		for err == nil {
			select {
			case err = <-done:
			case <-time.After(100 * time.Millisecond):
				st := w.Status()
				ok := len(st.Partitions) == len(r.ends)
				for _, p := range st.Partitions {
					ok = ok && p.LastCheckpointOffset >= r.ends[p.Partition]
				}
				if ok {
					err = errCaughtUp
				}
			case <-r.ctx.Done():
				t.Fatalf("timed out in run %d", run)
			}
		}
		stop()
		if errors.Is(err, errCaughtUp) {
			return failures
		}
		if !strings.Contains(err.Error(), "panic") {
			t.Fatalf("run %d failed for another reason: %v", run, err)
		}
		failures++
	}
}

var errCaughtUp = errors.New("caught up")
