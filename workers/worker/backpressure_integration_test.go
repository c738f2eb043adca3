//go:build integration

package worker_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestCassandraDownPausesConsumption takes the real Cassandra away from one worker (a proxy in
// front of it stops forwarding) while records keep arriving: the worker must neither exit nor
// drop rows nor buffer without bound. It holds its writes, stops consuming, says why in its
// status and metrics, and once Cassandra is back it catches up and every row is exact.
func TestCassandraDownPausesConsumption(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 4*time.Minute)
	name := testenv.Name(t, "bp")
	ks := strings.ReplaceAll(name, "-", "_")
	topic := name + ".raw"
	prod := newTopic(t, brokers, topic, 2)

	// Every connection the sink makes, the control connection and the pool's, goes through
	// the proxy: the translator rewrites the addresses Cassandra advertises for itself.
	real := testenv.CassandraHosts(t)[0]
	proxy := testenv.NewProxy(t, real)
	c := gocql.NewCluster(proxy.Addr())
	c.Timeout, c.ConnectTimeout = 2*time.Second, 2*time.Second
	c.ReconnectInterval = 500 * time.Millisecond
	c.AddressTranslator = gocql.AddressTranslatorFunc(func(net.IP, int) (net.IP, int) {
		return net.IPv4(127, 0, 0, 1), proxy.Port()
	})
	sess, err := c.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	cs, err := sink.NewCassandra(ctx, sess, sink.CassandraConfig{Keyspace: ks, Table: "rollup", Concurrency: 4, MaxBackoff: 500 * time.Millisecond},
		[]string{"k"}, []sink.Column{{Name: "count", Kind: agg.ColumnInteger}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := spec.Parse(fmt.Appendf(nil, `
name: %s
input: {topic: %s, time_field: t}
key: [k]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: cassandra, keyspace: %s, table: rollup}]
`, name, topic, ks))
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoint.Open("file://" + filepath.Join(t.TempDir(), "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	outbox := sink.NewKafka(kopts, nil, name+".dlq", name+".progress")
	if err := outbox.EnsureTopics(ctx, topic, 2); err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{WorkerID: "bp", Spec: s, KafkaOpts: kopts, Checkpoints: store,
		CheckpointInterval: 2 * time.Second, Sinks: []sink.Sink{cs, outbox}, MaxPollRecords: 500,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}

	// 40 keys over 120 minutes of event time, a record every 100 ms: thousands of windows
	// close as the watermark moves, far more than four writes in flight can hold.
	const n = 72_000
	const base = int64(1767225600000)
	produce := func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 40)),
				Value: fmt.Appendf(nil, `{"k":"k%d","t":%d}`, i%40, base+int64(i)*100)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, n/4)

	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case err := <-done:
				t.Fatalf("worker stopped while waiting for %s: %v", what, err)
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s: status %+v", what, w.Status())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitFor("the first quarter", func() bool { return w.Totals().Records >= n/8 })

	proxy.SetDown(true)
	t.Log("cassandra unreachable")
	produce(n/4, n)
	blocked := func() bool {
		for _, s := range w.Status().Sinks {
			if s.Blocked {
				return true
			}
		}
		return false
	}
	waitFor("the sink to report itself blocked", blocked)
	// Consumption stops: the records applied stay put while the backlog waits in Kafka.
	time.Sleep(2 * time.Second)
	before := w.Totals().Records
	time.Sleep(3 * time.Second)
	after := w.Totals().Records
	if after != before {
		t.Fatalf("worker went on consuming with its sink down: %d -> %d records", before, after)
	}
	if after >= n {
		t.Fatalf("worker consumed everything (%d) with its sink down; backpressure did not hold", after)
	}
	// The lag says so while the owner holds: it is measured from the broker, not from the
	// fetches the held owner no longer takes.
	waitFor("the lag to show the backlog", func() bool {
		var lag int64
		for _, p := range w.Status().Partitions {
			lag += p.Lag
		}
		return lag >= int64(n)-after
	})
	st := w.Status()
	t.Logf("paused at %d of %d records; sinks %+v", after, n, st.Sinks)

	proxy.SetDown(false)
	t.Log("cassandra back")
	waitFor("catch-up", func() bool { return w.Totals().Records >= n })
	waitFor("the sink to recover", func() bool { return !blocked() })
	if err := w.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Every (key, minute) row exact: 600 records per minute over 40 keys is 15 per key.
	direct := gocql.NewCluster(strings.Split(real, ":")[0])
	direct.Port, _ = strconv.Atoi(strings.Split(real, ":")[1])
	direct.Timeout = 30 * time.Second
	ds, err := direct.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	iter := ds.Query(fmt.Sprintf(`SELECT k, window_start, count FROM %s.rollup`, ks)).PageSize(5000).Iter()
	var k string
	var start time.Time
	var count int64
	rows, total := 0, int64(0)
	for iter.Scan(&k, &start, &count) {
		rows++
		total += count
		if count != 15 {
			t.Errorf("row %s @ %s: count %d, want 15", k, start.UTC().Format(time.RFC3339), count)
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if wantRows := 40 * 120; rows != wantRows || total != n {
		t.Fatalf("cassandra has %d rows counting %d records, want %d rows counting %d", rows, total, wantRows, n)
	}
	t.Logf("%d rows exact after the outage", rows)
}
