package sink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/topics"
)

// TestKafkaOutboxWaitsForItsProgressTopic: the fleet's first workers start together, and the
// progress topic one of them creates can be missing from the metadata the others read. Opening
// a partition waits for it, but not for ever, and names a topic that never comes.
// It runs here on franz-go's in-process broker and in kafka_integration_test.go on the real
// Kafka.
func TestKafkaOutboxWaitsForItsProgressTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testProgressWait(t, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, "progress")
}

func testProgressWait(t *testing.T, opts []kgo.Opt, prefix string) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tests := []struct {
		name    string
		create  time.Duration // after this long; negative: never
		wait    time.Duration
		wantErr string
	}{
		{"created while waiting", 1500 * time.Millisecond, 20 * time.Second, ""},
		{"never created", -1, 2 * time.Second, "not in the brokers' metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			progress := prefix + "-" + strings.ReplaceAll(tc.name, " ", "-")
			if tc.create >= 0 {
				go func() {
					time.Sleep(tc.create)
					if _, err := adm.CreateTopic(ctx, 3, 1, nil, progress); err != nil {
						t.Error(err)
					}
				}()
			}
			k := NewKafka(opts, nil, "", progress, WithMetadataWait(tc.wait))
			start := time.Now()
			wr, err := k.Open(ctx, PartitionKey{Spec: "s", Topic: "in", Partition: 4}, "")
			if tc.wantErr != "" {
				if !errors.Is(err, topics.ErrNotListed) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), progress) {
					t.Fatalf("err = %v, want one naming %s and containing %q", err, progress, tc.wantErr)
				}
				if took := time.Since(start); took < tc.wait {
					t.Errorf("gave up after %v, before waiting %v", took, tc.wait)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer wr.Close()
			// Input partition 4 of a 3-partition progress topic: its markers go to partition 1.
			if got := wr.(*kafkaWriter).progressPart; got != 1 {
				t.Errorf("progress partition %d, want 1", got)
			}
		})
	}
}

// A Kafka output row too large for its topic is set aside for the dead letters, with the
// value the sink rendered: for a partial output the window carries no final values, and
// rendering the row as JSON must not be needed (it panicked on exactly that).
func TestOversizeOutputRowIsSetAside(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "out", "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := strings.Repeat("s", 5000)
	outs := []KafkaOutput{{Topic: "out", Render: func(w *emit.Window, i int, key, value []byte) ([]byte, []byte) {
		return append(key, w.Rows[i].Key[0]...), append(value, big...)
	}}}
	k := NewKafka([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, outs, "dlq", "")
	k.limits = topicLimits{"out": 2000, "dlq": 1 << 20}
	wr, err := k.Open(context.Background(), PartitionKey{Spec: "s", Topic: "raw", Partition: 0}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	// As emit.CopyKeys makes it for a spec whose outputs are all partial: keys, no values.
	win := &emit.Window{Spec: "s", Topic: "raw", Size: 60_000, KeyFields: []string{"k"}, Columns: []string{"count"},
		Rows: []emit.Row{{Key: []string{"a"}}}}
	if err := wr.Write(context.Background(), win); err != nil {
		t.Fatal(err)
	}
	rejs := wr.(Rejecter).TakeRejections()
	if len(rejs) != 1 || string(rejs[0].Value) != big || !errors.Is(rejs[0].Err, kerr.MessageTooLarge) {
		t.Fatalf("rejections %+v", rejs)
	}
	dl := rowDeadLetter("dlq", rejs[0])
	if string(dl.Value) != big || string(dl.Key) != "a" {
		t.Fatalf("dead letter key %q, %d value bytes", dl.Key, len(dl.Value))
	}
	if again := wr.(Rejecter).TakeRejections(); len(again) != 0 {
		t.Fatalf("rejections handed over twice: %v", again)
	}
}
