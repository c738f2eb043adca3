//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
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
	specPath := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(specPath, []byte(fmt.Sprintf(`
name: %s
input: {topic: %s, time_field: t}
key: [k]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: file, path: %q}]
`, name, topic, filepath.Join(dir, "out"))), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenPath := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenPath, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	writeCfg := func(policy string) string {
		p := filepath.Join(dir, policy+".yaml")
		if err := os.WriteFile(p, []byte(fmt.Sprintf(`
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s, on_missing_offset: %s}
admin: {listen: "127.0.0.1:%d", token_file: %q}
`, specPath, strings.Join(brokers, ","), filepath.Join(dir, "ckpt"), policy, port, tokenPath)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	start := func(cfg, id string) (*exec.Cmd, chan struct{}, string) {
		logPath := filepath.Join(dir, id+".log")
		lf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(liveaggBin, "worker", "--config", cfg)
		cmd.Env = append(os.Environ(), "LIVEAGG_WORKER_ID="+id)
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); lf.Close(); close(done) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
		return cmd, done, logPath
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
	_, done, _ := start(writeCfg("stop"), "first")
	waitStatus(done, func(p worker.PartitionStatus) bool { return p.LastCheckpointOffset >= 1000 })
	if _, err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	<-done

	// The fleet is down; records arrive and retention deletes past the checkpoint.
	produce(1000, 2000)
	if _, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 1500}}}); err != nil {
		t.Fatal(err)
	}

	cmd, done, logPath := start(writeCfg("stop"), "stopper")
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("worker with policy stop kept running over lost offsets")
	}
	if cmd.ProcessState.ExitCode() == 0 {
		t.Error("worker with policy stop exited 0")
	}
	logText, _ := os.ReadFile(logPath)
	for _, want := range []string{"CHECKPOINTED OFFSET LOST TO RETENTION", `"missing_records":500`, "checkpointed offset is no longer in Kafka"} {
		if !strings.Contains(string(logText), want) {
			t.Errorf("stop-policy log lacks %q:\n%s", want, logText)
		}
	}

	_, done, _ = start(writeCfg("earliest"), "resumer")
	p := waitStatus(done, func(p worker.PartitionStatus) bool { return p.NextOffset >= 2000 })
	if !strings.Contains(p.OffsetLost, "checkpoint at 1000, log starts at 1500") {
		t.Errorf("earliest-policy status offset_lost = %q", p.OffsetLost)
	}
}
