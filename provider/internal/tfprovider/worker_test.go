//go:build integration

package tfprovider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestAccWorkerRunsProviderSpec: what the provider declares is what a worker runs. The
// provider creates a topic and a spec; a liveagg worker configured with the spec's location
// loads it from the registry and aggregates the topic's records with it.
func TestAccWorkerRunsProviderSpec(t *testing.T) {
	bucket := accEnv(t)
	dir := t.TempDir()
	bin := testenv.Build(t, "../../../workers/cmd/liveagg", dir, "liveagg")
	name := strings.ReplaceAll(testenv.Name(t, "accwork"), "-", "_")
	topic := name + "-raw"
	out := filepath.Join(dir, "out")
	config := fmt.Sprintf(`
resource "liveagg_kafka_topic" "raw" {
  name       = %q
  partitions = 2
}

resource "liveagg_aggregation_spec" "s" {
  name    = %q
  key     = ["k"]
  windows = ["1m"]
  input {
    topic      = liveagg_kafka_topic.raw.name
    time_field = "t"
  }
  aggregation {
    fn = "count"
  }
  output {
    type = "file"
    path = %q
  }
}
`, topic, name, out)
	run := func(s *terraform.State) error {
		loc := s.RootModule().Resources["liveagg_aggregation_spec.s"].Primary.Attributes["location"]
		if loc != "s3://"+bucket+"/specs/"+name+".yaml" {
			return fmt.Errorf("location %q", loc)
		}
		cfg := filepath.Join(dir, "worker.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s}
aws: {endpoint: %q, region: %s}
`, loc, strings.Join(testenv.KafkaBrokers(t), ","), filepath.Join(dir, "ckpt"), testenv.AWSEndpoint(t), testenv.Region)), 0o600); err != nil {
			return err
		}
		w := testenv.Start(t, dir, "worker", bin, []string{"worker", "--config", cfg}, "LIVEAGG_WORKER_ID=w1")
		cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers(t)...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return err
		}
		defer cl.Close()
		var recs []*kgo.Record
		for i := range 600 {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: fmt.Appendf(nil, `{"k":"k%d","t":%d}`, i%2, 1767225600000+int64(i)*100)})
		}
		for p := range int32(2) { // close the windows
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(`{"k":"end","t":1767312000000}`)})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			return err
		}
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			paths, _ := filepath.Glob(filepath.Join(out, "*.jsonl"))
			total := 0
			for _, p := range paths {
				b, _ := os.ReadFile(p)
				total += strings.Count(string(b), `"count":`)
			}
			// 600 records over 60 seconds of event time and two keys: one minute, two rows.
			if total >= 2 {
				return nil
			}
			if w.Exited() {
				return fmt.Errorf("worker exited:\n%s", w.Log())
			}
		}
		return fmt.Errorf("no rollups from the worker:\n%s", w.Log())
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps:                    []resource.TestStep{{Config: config, Check: run}},
	})
}
