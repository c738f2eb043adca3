package testenv

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaTopic creates a topic on the local Kafka with the given partitions and configs, and
// returns a producer that puts each record on the partition it names (the default
// partitioner would ignore Record.Partition) and sends to the topic by default. Both the
// request's and the topic's own error fail the test; the client closes with it.
func KafkaTopic(t testing.TB, ctx context.Context, topic string, partitions int32, configs map[string]*string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(KafkaBrokers(t)...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	return cl
}
