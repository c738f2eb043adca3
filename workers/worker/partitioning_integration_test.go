//go:build integration

package worker_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestMisKeyedRecordsAreCaught: a spec declares its topic partitioned by its key field k. The
// producer keys most records right, but some carry another key or none, and land on a
// partition where another partition's series live. Each of those is caught at the first
// record, dead-lettered as mis_keyed once, counted in the status, and never reaches a row:
// Cassandra holds exactly what a single pass over the well-keyed records gives.
func TestMisKeyedRecordsAreCaught(t *testing.T) {
	r := newFieldRigInput(t, ", partitioned_by: [k]", countSum)
	want := map[string][2]float64{}
	bad := 0
	for p := range int32(2) {
		var recs []*kgo.Record
		for i := range 1000 {
			ts := fieldBase + int64(i)*100
			k := fmt.Sprintf("p%dk%d", p, i%10)
			rec := fieldEvent(k, ts, int64(i), ts+1000)
			rec.Key = []byte(k)
			switch {
			case i%97 == 5: // the other partition's series, keyed as if it were this one's
				rec.Value = fmt.Appendf(nil, `{"k":"p%dk%d","t":%d,"v":%d}`, 1-p, i%10, ts, i)
				bad++
			case i%131 == 7: // no key at all, as round-robin shippers send
				rec.Key = nil
				bad++
			case i%151 == 9: // a key in another encoding than the field's text
				rec.Key = []byte(`{"k":"` + k + `"}`)
				bad++
			default:
				id := fmt.Sprintf("%s@%d", k, ts-ts%60_000)
				c := want[id]
				want[id] = [2]float64{c[0] + 1, c[1] + float64(i)}
			}
			recs = append(recs, rec)
		}
		closer := fieldEvent("closer", fieldBase+3_600_000, 0, fieldBase+3_600_000)
		closer.Key = []byte("closer")
		r.produce(p, append(recs, closer)...)
	}
	w, stop, done := r.start("keys", r.ctx)
	defer stop()
	r.waitCheckpointed(w, done)

	var misKeyed int64
	for _, p := range w.Status().Partitions {
		misKeyed += p.MisKeyed
	}
	if misKeyed != int64(bad) {
		t.Errorf("status counts %d mis-keyed records, want %d", misKeyed, bad)
	}
	got := r.rollups()
	for id, w := range want {
		if got[id] != w {
			t.Errorf("rollup %s = %v, want %v", id, got[id], w)
		}
	}
	dead := 0
	for _, d := range r.deadLettersUntil(func(ds []deadLetter) bool { return len(ds) >= bad }) {
		if d.reason != string(record.ReasonMisKeyed) || !strings.Contains(d.detail, "canonical key") {
			t.Errorf("unexpected dead letter %+v", d)
		}
		dead++
	}
	if dead != bad {
		t.Errorf("%d mis_keyed dead letters, want %d", dead, bad)
	}
	t.Logf("%d mis-keyed records caught of %d; %d rollups exact", bad, 2000, len(want))
}

// After a drain the consumer group's committed offsets are the checkpointed ones, so whatever
// reads lag from the group (alarms, KEDA, kafka-consumer-groups) sees none.
func TestDrainLeavesTheGroupAtTheCheckpoints(t *testing.T) {
	r := newFieldRig(t, countSum)
	for p := range int32(2) {
		var recs []*kgo.Record
		for i := range 3000 {
			ts := fieldBase + int64(i)*100
			recs = append(recs, fieldEvent(fmt.Sprintf("p%dk%d", p, i%10), ts, int64(i), ts+1000))
		}
		r.produce(p, recs...)
	}
	w, _, done := r.start("drain", r.ctx)
	// Drain mid-stream, as a spot notice or a rolling restart does: the last checkpoints are
	// the ones the drain itself takes.
	for w.Totals().Records < 2000 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.Drain(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run after drain: %v", err)
	}
	adm := kadm.NewClient(r.prod)
	offsets, err := adm.FetchOffsets(r.ctx, "liveagg."+r.name)
	if err != nil {
		t.Fatal(err)
	}
	for p := range r.ends {
		m, err := r.store.Inspect(r.ctx, checkpoint.Key{Spec: r.name, Topic: r.topic, Partition: p})
		if err != nil || m.Current == nil {
			t.Fatalf("partition %d: no checkpoint after the drain: %v", p, err)
		}
		o, ok := offsets.Lookup(r.topic, p)
		if !ok || o.At != m.Current.Offset {
			t.Errorf("partition %d: group committed %+v, the checkpoint is at %d", p, o, m.Current.Offset)
		}
	}
}

// TestPartitionsAddedStopADeclaredSpec: partitions added to the input topic of a spec that
// declares its keying move some keys to other partitions, so the worker stops (status 5 from
// the command) with ErrPartitionsAdded before a series moved mid-window is written by two
// partitions, and says what to do.
func TestPartitionsAddedStopADeclaredSpec(t *testing.T) {
	r := newFieldRigInput(t, ", partitioned_by: [k]", countSum)
	for p := range int32(2) {
		rec := fieldEvent(fmt.Sprintf("p%d", p), fieldBase, 1, fieldBase+1000)
		rec.Key = []byte(fmt.Sprintf("p%d", p))
		r.produce(p, rec)
	}
	w, stop, done := r.start("grow", r.ctx)
	defer stop()
	r.waitCheckpointed(w, done)
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreatePartitions(r.ctx, 1, r.topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, worker.ErrPartitionsAdded) || !strings.Contains(err.Error(), "from 2 to 3 partitions") {
			t.Fatalf("Run = %v, want ErrPartitionsAdded naming the counts", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the worker ran on after partitions were added under its declared keying")
	}
}
