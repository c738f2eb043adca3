//go:build integration

package tfprovider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestAccAggregationSpecCheckedAgainstItsRecords: the plan reads the input topic's newest
// records and refuses a spec that reads them by a field none of them has, naming the attribute
// and the field: a partitioning declared by a field the producers cannot key by, a key field
// spelt wrong, a time field that is not there. The same spec with fields the records carry
// plans and applies.
func TestAccAggregationSpecCheckedAgainstItsRecords(t *testing.T) {
	accEnv(t)
	ctx := testenv.Context(t, 5*time.Minute)
	name := strings.ReplaceAll(testenv.Name(t, "accrec"), "-", "_")
	topic := strings.ReplaceAll(name, "_", "-") + "-raw"
	cl := testenv.KafkaTopic(t, ctx, topic, 3, nil)
	// Records on two of the three partitions (an empty one is no evidence either way).
	for i := range 40 {
		v := fmt.Appendf(nil, `{"org":"o%d","site":"s%d","ts":%d,"meta":{"host":"h%d"}}`, i%3, i%5, time.Now().UnixMilli(), i%4)
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 2), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	config := func(key, timeField, partitionedBy string) string {
		return fmt.Sprintf(`
resource "liveagg_aggregation_spec" "s" {
  name    = %q
  key     = [%s]
  windows = ["1m"]
  input {
    topic           = %q
    time_field      = %q
    partitioned_by  = [%s]
    max_future_skew = "10m"
  }
  aggregation {
    fn = "count"
  }
  output {
    type = "stdout"
  }
}
`, name, key, topic, timeField, partitionedBy)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{
				Config:      config(`"org"`, "ts", `"device"`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)input\.partitioned_by\[0\]: none of the 40 newest.*has the field "device"`),
			},
			{
				Config:      config(`"org", "sight"`, "ts", `"org"`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)key\[1\]: none of the 40 newest.*"sight"`),
			},
			{
				Config:      config(`"org"`, "time", `"org"`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)input\.time_field: none of the 40 newest.*"time"`),
			},
			{ // fields the records carry, a nested one included
				Config: config(`"org", "site"`, "ts", `"meta.host"`),
				Check:  resource.TestCheckResourceAttr("liveagg_aggregation_spec.s", "stages", "2"),
			},
		},
	})
}
