//go:build integration

package tfprovider

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/spec"
)

func specConfig(name, lateness, windows, extra string) string {
	return fmt.Sprintf(`
resource "liveagg_aggregation_spec" "s" {
  name             = %q
  key              = ["org", "site"]
  windows          = [%s]
  allowed_lateness = %q

  input {
    topic      = "raw"
    time_field = "ts"
  }
  aggregation {
    fn = "count"
  }
  aggregation {
    fn    = "distinct"
    field = "device"
  }
  output {
    type     = "cassandra"
    keyspace = "rollups"
    table    = "by_site"
  }
  %s
}
`, name, windows, lateness, extra)
}

func TestAccAggregationSpec(t *testing.T) {
	bucket := accEnv(t)
	name := strings.ReplaceAll(testenv.Name(t, "accspec"), "-", "_")
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	key := "specs/" + name + ".yaml"
	stored := func() (*spec.Spec, error) {
		out, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return nil, err
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return spec.Parse(b)
	}
	storedLateness := func(want string) resource.TestCheckFunc {
		return func(*terraform.State) error {
			s, err := stored()
			if err != nil {
				return err
			}
			if got := s.AllowedLateness.String(); got != want {
				return fmt.Errorf("stored allowed_lateness %s, want %s", got, want)
			}
			return nil
		}
	}
	// The version and upload time of the stored spec once its lateness is written back.
	var stored2m string
	var uploaded time.Time
	version := func(into *string) resource.TestCheckFunc {
		return func(st *terraform.State) error {
			*into = st.RootModule().Resources["liveagg_aggregation_spec.s"].Primary.Attributes["version"]
			out, err := cl.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				return err
			}
			uploaded = aws.ToTime(out.LastModified)
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		CheckDestroy: func(*terraform.State) error {
			if _, err := stored(); err == nil {
				return fmt.Errorf("spec %s still stored", key)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{ // create: stored, defaults made explicit
				Config: specConfig(name, "30s", `"1m", "15m"`, ""),
				Check: resource.ComposeTestCheckFunc(storedLateness("30s"),
					resource.TestCheckResourceAttr("liveagg_aggregation_spec.s", "location", "s3://"+bucket+"/"+key),
					resource.TestCheckResourceAttr("liveagg_aggregation_spec.s", "input.format", "json"),
					resource.TestCheckResourceAttr("liveagg_aggregation_spec.s", "aggregation.1.precision", "14"),
					resource.TestCheckResourceAttrSet("liveagg_aggregation_spec.s", "version")),
			},
			{ // in place
				Config: specConfig(name, "2m", `"1m", "15m"`, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("liveagg_aggregation_spec.s", plancheck.ResourceActionUpdate)}},
				Check: storedLateness("2m"),
			},
			{ // windows change: in place, a new version from offsets, and the plan says so
				Config: specConfig(name, "2m", `"1m", "1h"`, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("liveagg_aggregation_spec.s", plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue("liveagg_aggregation_spec.s", tfjsonpath.New("change"),
						knownvalue.StringExact("new version from offsets: windows 1m,15m -> 1m,1h")),
					plancheck.ExpectKnownValue("liveagg_aggregation_spec.s", tfjsonpath.New("spec_version"), knownvalue.Int64Exact(3)),
				}},
				Check: resource.TestCheckResourceAttr("liveagg_aggregation_spec.s", "spec_version", "3"),
			},
			{ // drift: someone edits the stored spec
				PreConfig: func() {
					s, err := stored()
					if err != nil {
						t.Fatal(err)
					}
					s.AllowedLateness = spec.Duration(5 * 60e9)
					y, _ := spec.Marshal(s)
					if _, err := cl.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(string(y))}); err != nil {
						t.Fatal(err)
					}
				},
				Config:             specConfig(name, "2m", `"1m", "1h"`, ""),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{ // apply writes it back
				Config: specConfig(name, "2m", `"1m", "1h"`, ""),
				Check:  resource.ComposeTestCheckFunc(storedLateness("2m"), version(&stored2m)),
			},
			{ // import by name
				ResourceName:      "liveagg_aggregation_spec.s",
				ImportState:       true,
				ImportStateId:     name,
				ImportStateVerify: true,
				// What the last change did is the plan's, not the stored spec's.
				ImportStateVerifyIgnore: []string{"change"},
			},
			{ // the same durations spelt otherwise: an in-place update of the state only, not a
				// replacement nor an upload, and no plan after it (refresh keeps "60s" though the
				// store says 1m)
				PreConfig: func() { time.Sleep(1100 * time.Millisecond) }, // an upload would show in LastModified
				Config:    specConfig(name, "120s", `"60s", "60m"`, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("liveagg_aggregation_spec.s", plancheck.ResourceActionUpdate)}},
				Check: resource.ComposeTestCheckFunc(storedLateness("2m"),
					resource.TestCheckResourceAttr("liveagg_aggregation_spec.s", "windows.0", "60s"),
					resource.TestCheckResourceAttr("liveagg_aggregation_spec.s", "allowed_lateness", "120s"),
					// the same spec is not uploaded again: its version, which workers watch, stays
					func(st *terraform.State) error {
						if v := st.RootModule().Resources["liveagg_aggregation_spec.s"].Primary.Attributes["version"]; v != stored2m {
							return fmt.Errorf("version %s after a spelling-only change, want %s", v, stored2m)
						}
						out, err := cl.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
						if err != nil {
							return err
						}
						if at := aws.ToTime(out.LastModified); !at.Equal(uploaded) {
							return fmt.Errorf("the spec was uploaded again at %v (first at %v) for a spelling-only change", at, uploaded)
						}
						return nil
					}),
			},
		},
	})
}

// TestAccAggregationSpecInvalid: invalid specs fail at plan time, each problem on its attribute.
func TestAccAggregationSpecInvalid(t *testing.T) {
	accEnv(t)
	steps := []struct{ extra, windows, want string }{
		{`aggregation {
    fn = "sum"
  }`, `"1m"`, `aggregations\[2\]\.field: required for sum`},
		{"", `"1m", "90x"`, `windows\[1\]`},
		{`output {
    type = "kafka"
    topic = "raw"
  }`, `"1m"`, `outputs\[1\]\.topic: "raw" is the input topic`},
	}
	for _, s := range steps {
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: factories,
			Steps: []resource.TestStep{{
				Config:      specConfig("bad_spec", "30s", s.windows, s.extra),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(s.want),
			}},
		})
	}
}

// TestAccAggregationSpecRemovedValuesPlanTheirDefaults: removing an optional value that has a
// default plans the default, and apply stores it, with no inconsistent result.
func TestAccAggregationSpecRemovedValuesPlanTheirDefaults(t *testing.T) {
	accEnv(t)
	name := strings.ReplaceAll(testenv.Name(t, "accdef"), "-", "_")
	config := func(input, agg string) string {
		return fmt.Sprintf(`
resource "liveagg_aggregation_spec" "s" {
  name    = %q
  key     = ["org"]
  windows = ["1m"]
  input {
    topic      = "raw"
    time_field = "ts"
    %s
  }
  aggregation {
    fn    = "distinct"
    field = "device"
    %s
  }
  output {
    type = "stdout"
  }
}
`, name, input, agg)
	}
	const res = "liveagg_aggregation_spec.s"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{
				Config: config(`time_unit = "s"`+"\n"+`max_record_bytes = 4096`, `name = "devices"`+"\n"+`precision = 12`),
				Check: resource.ComposeTestCheckFunc(resource.TestCheckResourceAttr(res, "input.time_unit", "s"),
					resource.TestCheckResourceAttr(res, "aggregation.0.name", "devices"),
					resource.TestCheckResourceAttr(res, "aggregation.0.precision", "12")),
			},
			{
				Config: config("", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					// another precision is another sketch: the old distinct's state is dropped and the
					// new one migrated in, starting in the windows open at the switch
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("change"), knownvalue.StringExact(
						"migrate in place: aggregations.distinct_device added (distinct); aggregations.devices removed (distinct)")),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("input").AtMapKey("time_unit"), knownvalue.StringExact("ms")),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("aggregation").AtSliceIndex(0).AtMapKey("name"), knownvalue.StringExact("distinct_device")),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("aggregation").AtSliceIndex(0).AtMapKey("precision"), knownvalue.Int64Exact(14)),
				}},
				Check: resource.ComposeTestCheckFunc(resource.TestCheckResourceAttr(res, "input.time_unit", "ms"),
					resource.TestCheckResourceAttr(res, "input.max_record_bytes", "1048576"),
					resource.TestCheckResourceAttr(res, "aggregation.0.name", "distinct_device")),
			},
		},
	})
}
