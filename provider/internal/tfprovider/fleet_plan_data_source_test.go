//go:build integration

package tfprovider

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

func TestAccFleetPlan(t *testing.T) {
	accEnv(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{{
			Config: `
data "liveagg_fleet_plan" "p" {
  spec                    = <<-EOT
    name: plan
    input: {topic: raw, time_field: ts}
    key: [org]
    windows: [1m, 15m]
    aggregations: [{fn: count}, {fn: distinct, field: device}]
    outputs: [{type: stdout}]
  EOT
  peak_records_per_second = 1000000
  live_series             = 2000000
  partitions              = 12
}
`,
			Check: resource.ComposeTestCheckFunc(
				// 1M records/s at 2.03 µs per record on 2 cores at 70 %: 2 cores give 986k/s, so 2.
				resource.TestCheckResourceAttr("data.liveagg_fleet_plan.p", "min_workers", "2"),
				resource.TestCheckResourceAttr("data.liveagg_fleet_plan.p", "max_workers", "6"),
				resource.TestCheckResourceAttrWith("data.liveagg_fleet_plan.p", "instance_memory_mib", func(v string) error {
					if n, _ := strconv.Atoi(v); n < 256 || n > 64<<10 {
						return fmt.Errorf("instance memory %s MiB", v)
					}
					return nil
				}),
			),
		}},
	})
}
