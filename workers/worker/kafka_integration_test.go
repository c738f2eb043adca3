//go:build integration

package worker_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// realKafka is inProcessKafka on the real Kafka: a fresh topic of the given partitions.
func realKafka(t *testing.T, partitions int32) testKafka {
	t.Helper()
	kopts := []kgo.Opt{kgo.SeedBrokers(testenv.KafkaBrokers(t)...)}
	cl, err := kgo.NewClient(append(kopts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	topic := testenv.Name(t, "w")
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return testKafka{opts: kopts, cl: cl, topic: topic}
}

func TestCheckpointSkipsUnchangedStateOnKafka(t *testing.T) { testCheckpointSkips(t, realKafka(t, 1)) }

func TestReleasedPartitionsLeaveNoGaugesOnKafka(t *testing.T) { testReleasedGauges(t, realKafka(t, 2)) }
