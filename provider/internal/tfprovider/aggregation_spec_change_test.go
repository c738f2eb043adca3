//go:build integration

package tfprovider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestAccAggregationSpecChangeRefused: a change that cannot be carried out fails at plan time
// with the reason, before anything is stored: a backfill once retention has removed records, a
// new version from offsets whose rebuild reaches back further than the topic keeps, and a
// backfill of a spec run in two stages. The same change with a rebuild span within retention plans and applies, saying what the
// workers will do.
func TestAccAggregationSpecChangeRefused(t *testing.T) {
	accEnv(t)
	ctx := testenv.Context(t, 5*time.Minute)
	name := strings.ReplaceAll(testenv.Name(t, "accchg"), "-", "_")
	topic := strings.ReplaceAll(name, "_", "-") + "-raw"
	retention := "3600000" // 1h
	// The records go where the test puts them: partition 1 must hold some to lose.
	cl := testenv.KafkaTopic(t, ctx, topic, 2, map[string]*string{"retention.ms": &retention})
	adm := kadm.NewClient(cl)
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 2), Value: fmt.Appendf(nil, `{"org":"o%d","ts":%d}`, i, time.Now().UnixMilli())}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Retention (here by hand) removes the first records of partition 1.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: 3})
	deleted, err := adm.DeleteRecords(ctx, offs)
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	config := func(windows, extra string, partitioning ...string) string {
		declared := `partitioned_by = ["org"]` // one stage, unless the step says otherwise
		if len(partitioning) > 0 {
			declared = partitioning[0]
		}
		return fmt.Sprintf(`
resource "liveagg_aggregation_spec" "s" {
  name    = %q
  key     = ["org"]
  windows = [%s]
  %s
  input {
    topic           = %q
    time_field      = "ts"
    max_future_skew = "10m"
    %s
  }
  aggregation {
    fn = "count"
  }
  output {
    type = "stdout"
  }
}
`, name, windows, extra, topic, declared)
	}
	const res = "liveagg_aggregation_spec.s"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{Config: config(`"1m"`, ""), Check: resource.TestCheckResourceAttr(res, "spec_version", "1")},
			{ // backfill with records gone: refused, naming the partition
				Config:      config(`"5m"`, `on_incompatible_change = "backfill"`),
				ExpectError: regexp.MustCompile(`(?s)backfill cannot be honoured.*partition\(s\) \[1\]`),
			},
			{ // a rebuild span (1m + 1h + 10m) beyond the topic's hour: refused
				Config:      config(`"1h"`, ""),
				ExpectError: regexp.MustCompile(`(?s)rebuilds its first windows from up to 1h11m0s.*keeps 1h0m0s`),
			},
			{ // within retention (1m + 5m + 10m): planned as a new version from offsets, and applied
				Config: config(`"5m"`, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("change"), knownvalue.StringExact("new version from offsets: windows 1m -> 5m")),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("spec_version"), knownvalue.Int64Exact(2)),
				}},
				Check: resource.TestCheckResourceAttr(res, "spec_version", "2"),
			},
			{ // an added aggregation: migrated in place
				Config: strings.Replace(config(`"5m"`, ""), `  output {`, `  aggregation {
    fn    = "max"
    field = "v"
  }
  output {`, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(res, tfjsonpath.New("change"), knownvalue.StringExact("migrate in place: aggregations.max_v added (max)")),
				}},
				Check: resource.TestCheckResourceAttr(res, "spec_version", "3"),
			},
			{ // two stages (the declaration dropped) and new windows, with a backfill: the second stage would count twice
				Config:      config(`"10m"`, `on_incompatible_change = "backfill"`, ""),
				ExpectError: regexp.MustCompile(`(?s)backfill cannot be honoured for a spec whose partials\s+are merged`),
			},
		},
	})
}
