package worker_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// inProcessKafka starts franz-go's in-process broker with a topic "raw" of the given
// partitions. It returns the options that reach it and a producer that places records on the
// partition they name; both end with the test.
func inProcessKafka(t *testing.T, partitions int32) ([]kgo.Opt, *kgo.Client) {
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
	return kopts, cl
}
