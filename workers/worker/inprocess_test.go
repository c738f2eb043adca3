package worker_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testKafka is a Kafka a test runs a worker on: options that reach it, a producer that places
// records on the partition they name, and a fresh input topic.
type testKafka struct {
	opts  []kgo.Opt
	cl    *kgo.Client
	topic string
}

// inProcessKafka starts franz-go's in-process broker with a topic "raw" of the given
// partitions; everything ends with the test. kafka_integration_test.go has realKafka, the same
// on the real Kafka.
func inProcessKafka(t *testing.T, partitions int32) testKafka {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	kopts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	cl, err := kgo.NewClient(append(kopts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return testKafka{opts: kopts, cl: cl, topic: "raw"}
}
