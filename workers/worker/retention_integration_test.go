//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
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
	produce := func(from, to int) { produceSeq(t, ctx, cl, topic, from, to) }
	dir := t.TempDir()
	specPath := keyedCountSpec(t, dir, name, topic)
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
	if resp, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 1500}}}); err != nil || resp.Error() != nil {
		t.Fatalf("deleting records: %v %v", err, resp.Error()) // the partition's own error is in resp
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
	for _, want := range []string{"CHECKPOINTED OFFSET LOST TO RETENTION", `"missing_records":500`, "offset to resume from is no longer in Kafka"} {
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

// TestOffsetLostWhileRunning: a running worker lags by more than the topic keeps, and retention
// deletes records it has not read. Kafka answers its next fetch with OffsetOutOfRange; the
// worker must not skip ahead silently (the client's reset policy would), but apply
// on_missing_offset as at startup: stop exits non-zero and says why, earliest resumes at the
// log start and reports the loss.
func TestOffsetLostWhileRunning(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	for _, policy := range []string{"stop", "earliest"} {
		t.Run(policy, func(t *testing.T) {
			ctx := testenv.Context(t, 3*time.Minute)
			name := testenv.Name(t, "lag")
			topic := name + "-raw"
			cl := newTopic(t, brokers, topic, 1)
			produce := func(from, to int) { produceSeq(t, ctx, cl, topic, from, to) }
			dir := t.TempDir()
			port := testenv.FreePort(t)
			cfg := writeFile(t, dir, "w.yaml", `
spec: %s
kafka: {brokers: [%s], session_timeout: 30s}
checkpoint: {location: "file://%s", interval: 1s, on_missing_offset: %s}
admin: {listen: "127.0.0.1:%d", token_file: %q}
`, keyedCountSpec(t, dir, name, topic), strings.Join(brokers, ","), filepath.Join(dir, "ckpt"), policy, port, writeFile(t, dir, "token", "tok"))
			c := admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", port), "tok", nil)
			status := func() (worker.PartitionStatus, bool) {
				var st worker.Status
				sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if err := c.Status(sctx, &st); err != nil || len(st.Partitions) != 1 {
					return worker.PartitionStatus{}, false
				}
				return st.Partitions[0], true
			}

			produce(0, 1000)
			w := startWorker(t, dir, cfg, "w")
			for {
				if p, ok := status(); ok && p.NextOffset >= 1000 {
					break
				}
				if ctx.Err() != nil {
					t.Fatal("worker never applied the first 1000 records")
				}
				time.Sleep(100 * time.Millisecond)
			}
			// Freeze the worker until its long-polling fetch has come back empty (fetch max
			// wait is 5s), so no fetch is in flight when the records arrive and retention
			// deletes half of them: its next fetch asks for offset 1000, below the log start.
			if err := w.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(6 * time.Second)
			produce(1000, 2000)
			if resp, err := kadm.NewClient(cl).DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 1500}}}); err != nil || resp.Error() != nil {
				t.Fatalf("deleting records: %v %v", err, resp.Error()) // the partition's own error is in resp
			}
			if err := w.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}

			if policy == "stop" {
				select {
				case <-w.Done:
				case <-ctx.Done():
					t.Fatal("worker with policy stop kept running past lost records")
				}
				if w.Cmd.ProcessState.ExitCode() == 0 {
					t.Error("worker with policy stop exited 0")
				}
				for _, want := range []string{"OFFSET LOST TO RETENTION WHILE RUNNING", `"missing_records_at_most":500`, "offset to resume from is no longer in Kafka"} {
					if !strings.Contains(w.Log(), want) {
						t.Errorf("log lacks %q:\n%s", want, w.Log())
					}
				}
				return
			}
			for {
				p, ok := status()
				if ok && p.NextOffset >= 2000 {
					if !strings.Contains(p.OffsetLost, "fell behind retention: applied up to 1000, log starts at 1500") {
						t.Errorf("status offset_lost = %q", p.OffsetLost)
					}
					if p.Records != 1500 {
						t.Errorf("applied %d records, want 1500: the first 1000 and the 500 retention kept", p.Records)
					}
					return
				}
				select {
				case <-w.Done:
					t.Fatalf("worker with policy earliest exited:\n%s", w.Log())
				case <-ctx.Done():
					t.Fatalf("worker never resumed at the log start; last status %+v", p)
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
}

// produceSeq produces records from..to-1 of one key, a millisecond of event time apart.
func produceSeq(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("a"), Value: fmt.Appendf(nil, `{"k":"a","t":%d}`, 1767225600000+int64(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
