//go:build integration

package tfprovider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

func topicConfig(name string, partitions int, retention string) string {
	return fmt.Sprintf(`
resource "liveagg_kafka_topic" "t" {
  name       = %q
  partitions = %d
  config = {
    "retention.ms" = %q
  }
}
`, name, partitions, retention)
}

func TestAccKafkaTopic(t *testing.T) {
	accEnv(t)
	name := testenv.Name(t, "acc-topic")
	adm := func() *kadm.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers(t)...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}()
	partitions := func(want int) resource.TestCheckFunc {
		return func(*terraform.State) error {
			got := 0
			for range 50 { // new partitions reach the metadata of every broker shortly after
				td, err := adm.ListTopics(context.Background(), name)
				if err != nil {
					return err
				}
				if got = len(td[name].Partitions); got == want {
					return nil
				}
				time.Sleep(200 * time.Millisecond)
			}
			return fmt.Errorf("broker has %d partitions, want %d", got, want)
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		CheckDestroy: func(*terraform.State) error {
			// Kafka deletes topics asynchronously.
			for range 50 {
				td, err := adm.ListTopics(context.Background(), name)
				if err != nil {
					return err
				}
				if t, ok := td[name]; !ok || t.Err != nil {
					return nil
				}
				time.Sleep(200 * time.Millisecond)
			}
			return fmt.Errorf("topic %s still exists", name)
		},
		Steps: []resource.TestStep{
			{ // create
				Config: topicConfig(name, 3, "3600000"),
				Check: resource.ComposeTestCheckFunc(partitions(3),
					resource.TestCheckResourceAttr("liveagg_kafka_topic.t", "replication_factor", "1"),
					resource.TestCheckResourceAttr("liveagg_kafka_topic.t", "config.retention.ms", "3600000")),
			},
			{ // grow and change a config, in place
				Config: topicConfig(name, 5, "7200000"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("liveagg_kafka_topic.t", plancheck.ResourceActionUpdate)}},
				Check: partitions(5),
			},
			{ // shrinking fails at plan time, saying why
				Config:      topicConfig(name, 2, "7200000"),
				ExpectError: regexp.MustCompile(`(?s)partitions cannot shrink.*asks for 2: Kafka cannot\s+remove\s+partitions`),
			},
			{ // drift: someone changes the retention outside Terraform
				PreConfig: func() {
					v := "60000"
					resp, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, name)
					if err == nil {
						// The topic's own error is in the response, not in err.
						_, err = resp.On(name, func(r *kadm.AlterConfigsResponse) error { return r.Err })
					}
					if err != nil {
						t.Fatalf("altering retention.ms outside Terraform: %v", err)
					}
				},
				Config:             topicConfig(name, 5, "7200000"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{ // and apply puts it back
				Config: topicConfig(name, 5, "7200000"),
				Check:  resource.TestCheckResourceAttr("liveagg_kafka_topic.t", "config.retention.ms", "7200000"),
			},
			{ // import: the configs set on the topic read back, the broker's defaults not
				ResourceName:      "liveagg_kafka_topic.t",
				ImportState:       true,
				ImportStateId:     name,
				ImportStateVerify: true,
			},
			{ // and the plan after an import is empty
				ResourceName:    "liveagg_kafka_topic.t",
				ImportState:     true,
				ImportStateKind: resource.ImportBlockWithID,
				ImportStateId:   name,
			},
		},
	})
}

// TestAccKafkaTopicOverTLSWithSCRAM: the provider's Kafka settings reach a broker that
// requires TLS from a private CA and SCRAM-SHA-512, with the password as a sensitive attribute.
func TestAccKafkaTopicOverTLSWithSCRAM(t *testing.T) {
	accEnv(t)
	secure, ca := testenv.KafkaSASLSSL(t)
	name := testenv.Name(t, "acc-tls")
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers(t)...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(context.Background(), nil,
		[]kadm.UpsertSCRAM{{User: name, Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "pw-" + name}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`
provider "liveagg" {
  kafka {
    bootstrap_servers = [%q]
    tls               = true
    ca_file           = %q
    sasl_mechanism    = "scram-sha-512"
    sasl_username     = %q
    sasl_password     = %q
  }
}
resource "liveagg_kafka_topic" "t" {
  name       = %q
  partitions = 2
}
`, secure[0], ca, name, "pw-"+name, name)
	// A wrong password fails the apply with the broker's reason, and creates nothing.
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{{Config: strings.Replace(config, `"pw-`+name+`"`, `"wrong"`, 1),
			ExpectError: regexp.MustCompile(`(?s)SASL.*(A|a)uthentication`)}},
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{Config: config, Check: resource.TestCheckResourceAttr("liveagg_kafka_topic.t", "partitions", "2")},
			// a topic with no configs set imports with none, as its configuration has it
			{ResourceName: "liveagg_kafka_topic.t", ImportState: true, ImportStateKind: resource.ImportBlockWithID, ImportStateId: name},
		},
	})
}
