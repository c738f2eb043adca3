//go:build integration

package sink

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestKafkaOutboxWaitsForItsProgressTopicOnKafka runs testProgressWait on the real Kafka.
func TestKafkaOutboxWaitsForItsProgressTopicOnKafka(t *testing.T) {
	testProgressWait(t, []kgo.Opt{kgo.SeedBrokers(testenv.KafkaBrokers(t)...)}, testenv.Name(t, "progress"))
}
