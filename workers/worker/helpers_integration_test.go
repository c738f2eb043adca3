//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

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

// readToEnd reads topics from the start, read_committed, up to the last stable offsets they
// have when it is called, handing each data record to each. A timer never decides that a topic
// has been read: a slow broker only makes this take longer, and if the end is not reached within
// two minutes the test fails naming the partitions that fell short. Transaction markers are
// fetched too (not handed to each) because they can be a partition's last offsets: without
// them a reader would stop one short of an end it has in fact reached.
func readToEnd(t testing.TB, ctx context.Context, brokers []string, topics []string, each func(*kgo.Record), opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("listing the end offsets of %v: %v", topics, err)
	}
	// A partition trimmed to its end has no records to fetch: it starts where it ends.
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatalf("listing the start offsets of %v: %v", topics, err)
	}
	pos := map[string]map[int32]int64{}
	starts.Each(func(o kadm.ListedOffset) {
		if pos[o.Topic] == nil {
			pos[o.Topic] = map[int32]int64{}
		}
		pos[o.Topic][o.Partition] = o.Offset
	})
	short := func() []string {
		var s []string
		ends.Each(func(e kadm.ListedOffset) {
			if at := pos[e.Topic][e.Partition]; at < e.Offset {
				s = append(s, fmt.Sprintf("%s/%d at %d of %d", e.Topic, e.Partition, at, e.Offset))
			}
		})
		sort.Strings(s)
		return s
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var lastErr error
	for len(short()) > 0 {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("reading %v to its end: %v (last fetch error: %v); short: %s", topics, rctx.Err(), lastErr, strings.Join(short(), ", "))
		}
		fs.EachError(func(topic string, p int32, err error) { lastErr = fmt.Errorf("%s/%d: %w", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if pos[r.Topic] == nil {
				pos[r.Topic] = map[int32]int64{}
			}
			pos[r.Topic][r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				each(r)
			}
		})
	}
}
