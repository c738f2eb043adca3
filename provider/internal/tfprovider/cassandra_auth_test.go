//go:build integration

package tfprovider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestAccRollupTableOverTLSWithPassword creates a rollup table in the local Cassandra that
// requires TLS and a password, the way the workers connect to it: the provider's username,
// password, tls and ca_file attributes (and the same settings from LIVEAGG_CASSANDRA_*
// variables) must reach the cluster, and a CA that did not sign the cluster's certificate
// must fail the plan with a message that says so.
func TestAccRollupTableOverTLSWithPassword(t *testing.T) {
	accEnv(t)
	hosts, ca := testenv.CassandraSecure(t)
	name := strings.ReplaceAll(testenv.Name(t, "accsec"), "-", "_")
	role, pass := name, "pw-"+name
	testenv.CassandraSecureRole(t, role, pass, "CREATE ON ALL KEYSPACES")
	stranger := testenv.NewTLS(t, t.TempDir(), "stranger", "127.0.0.1")
	admin := testenv.CassandraSecureAdmin(t)
	tableExists := func() bool {
		var n string
		err := admin.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'rollup'`, name).Scan(&n)
		return err == nil && n == "rollup"
	}
	withProvider := func(block string) string {
		return fmt.Sprintf("provider \"liveagg\" {\n  cassandra {\n%s\n  }\n}\n", block) + rollupConfig(name, name, `"org"`, "", "0s")
	}
	attrs := func(caFile string) string {
		return fmt.Sprintf("    hosts = [%q]\n    username = %q\n    password = %q\n    tls = true\n    ca_file = %q", hosts[0], role, pass, caFile)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		CheckDestroy: func(*terraform.State) error {
			if tableExists() {
				return fmt.Errorf("table %s.rollup still exists", name)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{ // a CA that did not sign the cluster's certificate
				Config:      withProvider(attrs(stranger.CA)),
				ExpectError: regexp.MustCompile(`not signed by a\s+trusted\s+CA`),
			},
			{ // the attributes
				Config: withProvider(attrs(ca)),
				Check: func(*terraform.State) error {
					if !tableExists() {
						return fmt.Errorf("table %s.rollup was not created", name)
					}
					return nil
				},
			},
			{ // the same settings from the environment: the plan reads the table and is empty
				PreConfig: func() {
					t.Setenv("LIVEAGG_CASSANDRA_HOSTS", hosts[0])
					t.Setenv("LIVEAGG_CASSANDRA_USERNAME", role)
					t.Setenv("LIVEAGG_CASSANDRA_PASSWORD", pass)
					t.Setenv("LIVEAGG_CASSANDRA_TLS", "true")
					t.Setenv("LIVEAGG_CASSANDRA_CA_FILE", ca)
				},
				Config:   rollupConfig(name, name, `"org"`, "", "0s"),
				PlanOnly: true,
			},
		},
	})
}
