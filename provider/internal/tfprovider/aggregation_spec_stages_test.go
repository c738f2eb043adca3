//go:build integration

package tfprovider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestAccAggregationSpecStages: the plan says how the workers will run the spec, in the words
// of `liveagg spec explain`: one stage for an input declared partitioned within the key, two
// through the repartition topic for one keyed by a finer field, and back.
func TestAccAggregationSpecStages(t *testing.T) {
	accEnv(t)
	name := strings.ReplaceAll(testenv.Name(t, "accstages"), "-", "_")
	config := func(partitionedBy string) string {
		return fmt.Sprintf(`
resource "liveagg_aggregation_spec" "s" {
  name    = %q
  key     = ["org", "site"]
  windows = ["1m", "1h"]
  input {
    topic          = "raw"
    time_field     = "ts"
    partitioned_by = [%s]
    idle_timeout   = "2m"
  }
  aggregation {
    fn = "count"
  }
  output {
    type     = "cassandra"
    keyspace = "rollups"
    table    = "by_site"
  }
}
`, name, partitionedBy)
	}
	res := "liveagg_aggregation_spec.s"
	planned := func(stages int64, topic knownvalue.Check, execution string) resource.ConfigPlanChecks {
		return resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
			plancheck.ExpectKnownValue(res, tfjsonpath.New("stages"), knownvalue.Int64Exact(stages)),
			plancheck.ExpectKnownValue(res, tfjsonpath.New("repartition_topic"), topic),
			plancheck.ExpectKnownValue(res, tfjsonpath.New("execution"), knownvalue.StringRegexp(regexp.MustCompile(execution))),
		}}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{
				Config:           config(`"org"`),
				ConfigPlanChecks: planned(1, knownvalue.Null(), `runs in one stage: its input is declared partitioned by \[org\], within its key`),
				Check: resource.ComposeTestCheckFunc(resource.TestCheckResourceAttr(res, "input.idle_timeout", "2m"),
					resource.TestMatchResourceAttr(res, "yaml", regexp.MustCompile(`idle_timeout: 2m`))),
			},
			{
				Config: config(`"device"`),
				ConfigPlanChecks: planned(2, knownvalue.StringExact(name+".repartition"),
					`runs in two stages: its input is partitioned by \[device\], not within its key(?s:.*)`+regexp.QuoteMeta(name+".repartition")+
						`(?s:.*)consumer group liveagg\.`+regexp.QuoteMeta(name)+`\.stage2`),
			},
			{
				Config:           config(`"org", "site"`),
				ConfigPlanChecks: planned(1, knownvalue.Null(), `runs in one stage`),
			},
		},
	})
}
