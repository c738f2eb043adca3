//go:build integration

package worker_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestQuietMultilevelPipeline: a hand-written two-level pipeline (level 1 pre-aggregates per
// (org, site) from a topic keyed by device and writes partials keyed by org; level 2 merges
// them per org), each level its own worker process. Records of every site of an org come for a
// few seconds, then nothing: level 1's partitions go quiet, advance by idle_timeout, and their
// watermark markers let level 2 close the org's last window within idle_timeout +
// allowed_lateness, plus level 2's checkpoint interval for its Kafka output to commit. Every
// row exact and written once.
func TestQuietMultilevelPipeline(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 5*time.Minute)
	name := testenv.Name(t, "quietml")
	raw, partials, out := name+"-raw", name+"-partials", name+"-out"
	newTopic(t, brokers, raw, 2)
	newTopic(t, brokers, partials, 2)
	newTopic(t, brokers, out, 1)
	manual, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	const window = 5 * time.Second
	dir1, dir2 := t.TempDir(), t.TempDir()
	level1 := writeFile(t, dir1, "spec.yaml", `
name: %s-l1
input: {topic: %s, time_field: ts, idle_timeout: %s}
key: [org, site]
windows: [%s]
allowed_lateness: %s
aggregations: [{fn: count}, {fn: sum, field: v}]
outputs: [{type: kafka, topic: %s, partial: true, key: [org]}]
`, name, raw, idleTimeout, window, idleLateness, partials)
	level2 := writeFile(t, dir2, "spec.yaml", `
name: %s-l2
input: {topic: %s, format: partials}
key: [org]
windows: [%s]
aggregations: [{fn: count}, {fn: sum, field: v}]
outputs: [{type: kafka, topic: %s}]
`, name, partials, window, out)
	config := func(dir, spec string) string {
		return writeFile(t, dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s], session_timeout: 6s}
checkpoint: {location: "file://%s/checkpoints", interval: 1s}
`, spec, strings.Join(brokers, ","), dir)
	}
	f1 := &fleet{t: t, cfgPath: config(dir1, level1), procs: map[int]*exec.Cmd{}, logs: dir1}
	f2 := &fleet{t: t, cfgPath: config(dir2, level2), procs: map[int]*exec.Cmd{}, logs: dir2}
	t.Cleanup(f1.stopAll)
	t.Cleanup(f2.stopAll)
	logTailsOnFailure(t, dir1, 1, 15)
	logTailsOnFailure(t, dir2, 1, 15)
	f1.start(0)
	f2.start(0)

	// Two orgs, four sites each, devices spread over both partitions; every 200 ms for 6 s.
	type win struct {
		org   string
		start int64
	}
	want := map[win]int{}
	var lastEnd time.Time
	for range 30 {
		now := time.Now()
		for d := range 8 {
			org, site := fmt.Sprintf("org%d", d%2), fmt.Sprintf("site%d", d%4)
			v := fmt.Appendf(nil, `{"org":%q,"site":%q,"device":"d%d","ts":%d,"v":1}`, org, site, d, now.UnixMilli())
			if err := manual.ProduceSync(ctx, &kgo.Record{Topic: raw, Partition: int32(d % 2), Key: fmt.Appendf(nil, "d%d", d), Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			start := now.UnixMilli() - now.UnixMilli()%window.Milliseconds()
			want[win{org, start}]++
			lastEnd = time.UnixMilli(start).Add(window)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Nothing more: every partition of level 1 is quiet from here on.
	bound := idleTimeout + idleLateness + time.Second + idleSlack
	var got map[win]int
	var writes map[win]int
	deadline := lastEnd.Add(bound + 30*time.Second)
	for {
		got, writes = map[win]int{}, map[win]int{}
		readToEnd(t, ctx, brokers, []string{out}, func(r *kgo.Record) {
			var m struct {
				Org   string  `json:"org"`
				Start string  `json:"window_start"`
				Count float64 `json:"count"`
			}
			if err := json.Unmarshal(r.Value, &m); err != nil {
				t.Fatalf("row %s: %v", r.Value, err)
			}
			start, _ := time.Parse(time.RFC3339, m.Start)
			id := win{m.Org, start.UnixMilli()}
			got[id] = int(m.Count)
			writes[id]++
		})
		if len(got) >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d windows at level 2, %v after the last window's end", len(got), len(want), time.Since(lastEnd).Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(lastEnd)
	t.Logf("the last window's rows reached level 2's output %v after its end (bound %v)", took.Round(time.Millisecond), bound)
	if took > bound {
		t.Errorf("level 2 closed the quiet org's last window %v after its end, over the bound %v", took, bound)
	}
	for id, n := range want {
		if got[id] != n || writes[id] != 1 {
			t.Errorf("window %v: count %d written %d times, want %d once", id, got[id], writes[id], n)
		}
	}
}
