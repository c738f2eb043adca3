//go:build integration

package topics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestAwaitOnKafka runs testAwait's cases on the real Kafka that infra/local starts.
func TestAwaitOnKafka(t *testing.T) {
	testAwait(t, []kgo.Opt{kgo.SeedBrokers(testenv.KafkaBrokers(t)...)}, testenv.Name(t, "topics"))
}

// TestEnsureRepartitionOnKafka: a missing repartition topic is created with the input's
// partitions and retention and delete cleanup; an existing one is kept as it is, partitions and
// all, unless compaction cleans it, which is refused naming the fix.
func TestEnsureRepartitionOnKafka(t *testing.T) {
	opts := []kgo.Opt{kgo.SeedBrokers(testenv.KafkaBrokers(t)...)}
	ctx := testenv.Context(t, 2*time.Minute)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	input := testenv.Name(t, "rp-in")
	retention := "3600000"
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": &retention}, input); err != nil {
		t.Fatal(err)
	}
	created := input + ".repartition"
	r, err := EnsureRepartition(ctx, opts, input, created, 30*time.Second)
	if err != nil || !r.Created || r.Partitions != 3 || r.RetentionMs != retention {
		t.Fatalf("EnsureRepartition = %+v, %v; want created with 3 partitions and retention %s", r, err, retention)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(created, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if (c.Key == "cleanup.policy" && *c.Value != "delete") || (c.Key == "retention.ms" && *c.Value != retention) {
			t.Errorf("created with %s=%s", c.Key, *c.Value)
		}
	}
	if r, err := EnsureRepartition(ctx, opts, input, created, 30*time.Second); err != nil || r.Created || r.Partitions != 3 {
		t.Fatalf("again: %+v, %v; want the same topic, not created", r, err)
	}
	sized, compacted := input+".sized", input+".compacted"
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, sized); err != nil {
		t.Fatal(err)
	}
	compact := "compact"
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": &compact}, compacted); err != nil {
		t.Fatal(err)
	}
	if r, err := EnsureRepartition(ctx, opts, input, sized, 30*time.Second); err != nil || r.Created || r.Partitions != 6 {
		t.Fatalf("an operator's topic: %+v, %v; want it kept with its 6 partitions", r, err)
	}
	if _, err := EnsureRepartition(ctx, opts, input, compacted, 30*time.Second); !errors.Is(err, ErrCompacted) || !strings.Contains(err.Error(), "cleanup.policy=delete") {
		t.Fatalf("a compacted topic: %v, want ErrCompacted naming the fix", err)
	}
}
