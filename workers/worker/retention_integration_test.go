//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestCheckpointedOffsetLostToRetention: while every worker is down, retention deletes records
// the checkpoint has not covered. A worker with on_missing_offset: stop refuses to start and
// says why; one with earliest resumes from the log start and reports the loss in its status.
func TestCheckpointedOffsetLostToRetention(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 5*time.Minute)
	name := testenv.Name(t, "ret")
	topic := name + "-raw"
	cl := newTopic(t, brokers, topic, 1)
	adm := kadm.NewClient(cl)
	produce := func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, `{"k":"a","t":%d}`, 1767225600000+int64(i))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	specPath := countSpec(t, dir, name, topic)
	tokenPath := writeFile(t, dir, "token", "tok")
	port := testenv.FreePort(t)
	writeCfg := func(policy string) string {
		return writeFile(t, dir, policy+".yaml", `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s, on_missing_offset: %s}
admin: {listen: "127.0.0.1:%d", token_file: %q}
`, specPath, strings.Join(brokers, ","), filepath.Join(dir, "ckpt"), policy, port, tokenPath)
	}
	c := admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", port), "tok", nil)
	waitStatus := func(done chan struct{}, ok func(worker.PartitionStatus) bool) worker.PartitionStatus {
		for {
			var st worker.Status
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Status(sctx, &st)
			cancel()
			if err == nil && len(st.Partitions) == 1 && ok(st.Partitions[0]) {
				return st.Partitions[0]
			}
			select {
			case <-done:
				t.Fatal("worker exited")
			case <-ctx.Done():
				t.Fatalf("timed out; last status %+v %v", st, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	produce(0, 1000)
	first := startWorker(t, dir, writeCfg("stop"), "first")
	waitStatus(first.Done, func(p worker.PartitionStatus) bool { return p.LastCheckpointOffset >= 1000 })
	if _, err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	<-first.Done

	// The fleet is down; records arrive and retention deletes past the checkpoint.
	produce(1000, 2000)
	if _, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 1500}}}); err != nil {
		t.Fatal(err)
	}

	stopper := startWorker(t, dir, writeCfg("stop"), "stopper")
	select {
	case <-stopper.Done:
	case <-time.After(60 * time.Second):
		t.Fatal("worker with policy stop kept running over lost offsets")
	}
	if stopper.Cmd.ProcessState.ExitCode() == 0 {
		t.Error("worker with policy stop exited 0")
	}
	for _, want := range []string{"CHECKPOINTED OFFSET LOST TO RETENTION", `"missing_records":500`, "checkpointed offset is no longer in Kafka"} {
		if !strings.Contains(stopper.Log(), want) {
			t.Errorf("stop-policy log lacks %q:\n%s", want, stopper.Log())
		}
	}

	resumer := startWorker(t, dir, writeCfg("earliest"), "resumer")
	p := waitStatus(resumer.Done, func(p worker.PartitionStatus) bool { return p.NextOffset >= 2000 })
	if !strings.Contains(p.OffsetLost, "checkpoint at 1000, log starts at 1500") {
		t.Errorf("earliest-policy status offset_lost = %q", p.OffsetLost)
	}
}
