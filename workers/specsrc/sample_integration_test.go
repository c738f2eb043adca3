//go:build integration

package specsrc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestReadTopicSample: the newest records of every partition, up to the number asked for,
// from a plain topic and from one written in transactions (committed, and an aborted one
// last, which a read_committed sample must neither return nor wait out); nothing, and no
// error, from a topic that does not exist.
func TestReadTopicSample(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 2*time.Minute)
	plain, txn := testenv.Name(t, "sample"), testenv.Name(t, "sample-txn")
	manual := testenv.KafkaTopic(t, ctx, plain, 2, nil)
	testenv.KafkaTopic(t, ctx, txn, 2, nil)
	for i := range 30 { // 15 per partition
		r := &kgo.Record{Topic: plain, Partition: int32(i % 2), Value: fmt.Appendf(nil, `{"i":%d}`, i)}
		if err := manual.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(txn))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for _, commit := range []bool{true, false} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			r := &kgo.Record{Topic: txn, Partition: int32(i % 2), Value: fmt.Appendf(nil, `{"i":%d,"committed":%v}`, i, commit)}
			if err := tx.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	for _, tc := range []struct {
		topic        string
		perPartition int
		want         int
	}{
		{plain, 10, 20},
		{plain, 100, 30},
		{txn, 4, 0}, // the newest 4 offsets of each partition: the aborted records and their marker
		{txn, 100, 6},
		{testenv.Name(t, "sample-none"), 10, 0},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.topic, tc.perPartition), func(t *testing.T) {
			got, err := ReadTopicSample(ctx, opts, tc.topic, tc.perPartition)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("%d records, want %d: %v", len(got), tc.want, got)
			}
			for _, s := range got {
				if strings.Contains(string(s.Value), `"committed":false`) {
					t.Errorf("sampled an aborted record, %s: %s", s.Where, s.Value)
				}
			}
		})
	}
}
