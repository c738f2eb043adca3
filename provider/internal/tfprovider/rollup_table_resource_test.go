//go:build integration

package tfprovider

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/gocql/gocql"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

func rollupConfig(name, ks, key, extraAgg, ttl string) string {
	return fmt.Sprintf(`
resource "liveagg_aggregation_spec" "s" {
  name    = %q
  key     = [%s]
  windows = ["1m"]
  input {
    topic      = "raw"
    time_field = "ts"
  }
  aggregation {
    fn = "count"
  }
  %s
  output {
    type     = "cassandra"
    keyspace = %q
    table    = "rollup"
  }
}

resource "liveagg_rollup_table" "t" {
  spec     = liveagg_aggregation_spec.s.yaml
  keyspace = %q
  table    = "rollup"
  ttl      = %q
}
`, name, key, extraAgg, ks, ks, ttl)
}

func TestAccRollupTable(t *testing.T) {
	accEnv(t)
	name := strings.ReplaceAll(testenv.Name(t, "accroll"), "-", "_")
	ks := name
	host, port, _ := strings.Cut(testenv.CassandraHosts(t)[0], ":")
	cl := gocql.NewCluster(host)
	cl.Port, _ = strconv.Atoi(port)
	sess, err := cl.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	columns := func() map[string]string {
		iter := sess.Query(`SELECT column_name, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'rollup'`, ks).Iter()
		out := map[string]string{}
		var n, typ string
		for iter.Scan(&n, &typ) {
			out[n] = typ
		}
		_ = iter.Close()
		return out
	}
	hasColumn := func(c, typ string) resource.TestCheckFunc {
		return func(*terraform.State) error {
			if got := columns()[c]; got != typ {
				return fmt.Errorf("column %s is %q, want %q (columns %v)", c, got, typ, columns())
			}
			return nil
		}
	}
	sum := `aggregation {
    fn    = "sum"
    field = "dwell_ms"
  }`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		CheckDestroy: func(*terraform.State) error {
			if len(columns()) != 0 {
				return fmt.Errorf("table %s.rollup still exists", ks)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{ // create: the sink's table
				Config: rollupConfig(name, ks, `"org", "site"`, "", "0s"),
				Check: resource.ComposeTestCheckFunc(hasColumn("count", "bigint"), hasColumn("org", "text"), hasColumn("window_start", "timestamp"),
					resource.TestCheckResourceAttr("liveagg_rollup_table.t", "key_fields.#", "2")),
			},
			{ // a new aggregation adds a column, a TTL changes the table: in place
				Config: rollupConfig(name+"_2", ks, `"org", "site"`, sum, "720h0m0s"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("liveagg_rollup_table.t", plancheck.ResourceActionUpdate)}},
				Check: hasColumn("sum_dwell_ms", "double"),
			},
			{ // drift: a column dropped out of band
				PreConfig: func() {
					if err := sess.Query(fmt.Sprintf("ALTER TABLE %s.rollup DROP sum_dwell_ms", ks)).Exec(); err != nil {
						t.Fatal(err)
					}
				},
				Config:             rollupConfig(name+"_2", ks, `"org", "site"`, sum, "720h0m0s"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{ // apply restores it
				Config: rollupConfig(name+"_2", ks, `"org", "site"`, sum, "720h0m0s"),
				Check:  hasColumn("sum_dwell_ms", "double"),
			},
			{ // a different key: Cassandra cannot change a primary key, so the table is replaced
				Config: rollupConfig(name+"_3", ks, `"org"`, sum, "720h0m0s"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("liveagg_rollup_table.t", plancheck.ResourceActionReplace)}},
				Check: func(*terraform.State) error {
					if _, ok := columns()["site"]; ok {
						return fmt.Errorf("the replaced table still has site: %v", columns())
					}
					return nil
				},
			},
			{ // the spec's spelling of the same TTL is no change
				Config:           rollupConfig(name+"_3", ks, `"org"`, sum, "30d"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check:            resource.TestCheckResourceAttr("liveagg_rollup_table.t", "ttl", "720h0m0s"),
			},
			{ // import by keyspace.table: the spec is found in the registry
				ResourceName:            "liveagg_rollup_table.t",
				ImportState:             true,
				ImportStateId:           ks + ".rollup",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"ttl"}, // the same duration, read back as 30d
			},
			{ // and the plan after an import is empty, whatever the configuration's spelling
				Config:          rollupConfig(name+"_3", ks, `"org"`, sum, "720h"),
				ResourceName:    "liveagg_rollup_table.t",
				ImportState:     true,
				ImportStateKind: resource.ImportBlockWithID,
				ImportStateId:   ks + ".rollup",
			},
		},
	})
}
