//go:build integration

package topics

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestAwaitOnKafka runs testAwait's cases on the real Kafka that infra/local starts.
func TestAwaitOnKafka(t *testing.T) {
	testAwait(t, []kgo.Opt{kgo.SeedBrokers(testenv.KafkaBrokers(t)...)}, testenv.Name(t, "topics"))
}
