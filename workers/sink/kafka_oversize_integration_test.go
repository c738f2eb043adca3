//go:build integration

package sink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/emit"
)

// On the real Kafka: the outbox reads an output topic's max.message.bytes from the broker, sets
// a row too large for it aside instead of failing the transaction, and the row's dead letter
// commits with the checkpoint's transaction, once, while the output topic gets nothing.
func TestOversizeOutputRowOnKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 3*time.Minute)
	name := testenv.Name(t, "oversize")
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	small := "2000"
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &small}, name+".out"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, name+".raw"); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("s", 5000)
	outs := []KafkaOutput{{Topic: name + ".out", Render: func(w *emit.Window, i int, key, value []byte) ([]byte, []byte) {
		return append(key, w.Rows[i].Key[0]...), append(value, big...)
	}}}
	k := NewKafka(opts, outs, name+".dlq", name+".progress")
	if err := k.EnsureTopics(ctx, name+".raw", 1); err != nil {
		t.Fatal(err)
	}
	if got := k.limits.of(name + ".out"); got != 2000 {
		t.Fatalf("output topic limit read as %d, want the broker's 2000", got)
	}
	wr, err := k.Open(ctx, PartitionKey{Spec: name, Topic: name + ".raw", Partition: 0}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	win := &emit.Window{Spec: name, Topic: name + ".raw", Size: 60_000, KeyFields: []string{"k"}, Columns: []string{"count"},
		Rows: []emit.Row{{Key: []string{"a"}}}}
	if err := wr.Write(ctx, win); err != nil {
		t.Fatal(err)
	}
	rejs := wr.(Rejecter).TakeRejections()
	if len(rejs) != 1 || !errors.Is(rejs[0].Err, kerr.MessageTooLarge) {
		t.Fatalf("rejections %+v", rejs)
	}
	outbox := wr.(interface {
		DeadLetterRow(context.Context, Rejection) error
		Position(uint64, int64)
	})
	if err := outbox.DeadLetterRow(ctx, rejs[0]); err != nil {
		t.Fatal(err)
	}
	outbox.Position(1, 1)
	if _, err := wr.Flush(ctx); err != nil {
		t.Fatalf("the transaction failed with the oversize row set aside: %v", err)
	}
	// read reads a topic read_committed up to its last stable offset. A timer never decides
	// that the topic has been read (a loaded broker only makes this slower); transaction
	// markers are kept because they are the partition's last offsets.
	read := func(topic string) []*kgo.Record {
		ends, err := adm.ListCommittedOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			t.Fatalf("end offsets of %s: %v", topic, err)
		}
		end, _ := ends.Lookup(topic, 0)
		rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		var out []*kgo.Record
		for pos := int64(0); pos < end.Offset; {
			fs := rd.PollFetches(rctx)
			if rctx.Err() != nil {
				t.Fatalf("reading %s: at offset %d of %d: %v", topic, pos, end.Offset, rctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) {
				pos = r.Offset + 1
				if !r.Attrs.IsControl() {
					out = append(out, r)
				}
			})
		}
		return out
	}
	if got := read(name + ".out"); len(got) != 0 {
		t.Errorf("the output topic got %d records", len(got))
	}
	dead := read(name + ".dlq")
	if len(dead) != 1 || string(dead[0].Value) != big || string(dead[0].Key) != "a" {
		t.Fatalf("dead letters: %d (want 1 holding the rendered row)", len(dead))
	}
	for _, h := range dead[0].Headers {
		if h.Key == "liveagg-reason" && string(h.Value) != RejectedRow {
			t.Errorf("reason %q", h.Value)
		}
	}
}
