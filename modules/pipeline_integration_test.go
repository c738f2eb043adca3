//go:build integration

package modules_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	indoorlocation "github.com/liveagg/liveagg/examples/indoor-location"
	"github.com/liveagg/liveagg/infra/local/testenv"
)

// tofuDir is a root configuration with the liveagg provider installed the way a user without
// registry access would: from a filesystem mirror holding the provider built from this tree.
type tofuDir struct {
	t   *testing.T
	dir string
	env []string
}

func newTofuDir(t *testing.T, env ...string) *tofuDir {
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	plat := filepath.Join(mirror, "registry.opentofu.org/liveagg/liveagg/0.1.0/linux_amd64")
	testenv.Build(t, "../provider", plat, "terraform-provider-liveagg_v0.1.0")
	rc := filepath.Join(dir, "cli.tfrc")
	if err := os.WriteFile(rc, fmt.Appendf(nil, `provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.opentofu.org/liveagg/liveagg"]
  }
  direct {
    exclude = ["registry.opentofu.org/liveagg/liveagg"]
  }
}
`, mirror), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tofuDir{t: t, dir: dir, env: append(env, "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1")}
}

func (d *tofuDir) write(name, content string) {
	if err := os.WriteFile(filepath.Join(d.dir, name), []byte(content), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

func (d *tofuDir) run(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(testenv.Tofu(d.t), append(args, "-no-color")...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("tofu %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPipelineModuleApplied applies modules/pipeline with the indoor-location specs for real
// against the local Kafka, moto S3 and Cassandra, changes it, runs a worker on what it made,
// and destroys it.
func TestPipelineModuleApplied(t *testing.T) {
	ctx := testenv.Context(t, 8*time.Minute)
	prefix := testenv.Name(t, "mod")
	ks := strings.ReplaceAll(prefix, "-", "_")
	bucket := prefix
	cfg := testenv.AWSConfig(t)
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	d := newTofuDir(t, "LIVEAGG_KAFKA_BROKERS="+strings.Join(testenv.KafkaBrokers(t), ","),
		"LIVEAGG_CASSANDRA_HOSTS="+strings.Join(testenv.CassandraHosts(t), ","),
		"LIVEAGG_AWS_ENDPOINT="+testenv.AWSEndpoint(t), "AWS_REGION="+testenv.Region,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"LIVEAGG_SPEC_REGISTRY=s3://"+bucket+"/specs")
	rename := strings.NewReplacer("name: indoor-", "name: "+prefix+"-", "topic: location-", "topic: "+prefix+"-location-",
		"keyspace: indoor", "keyspace: "+ks)
	d.write("l1.yaml", rename.Replace(string(indoorlocation.Level1)))
	d.write("zone.yaml", rename.Replace(string(indoorlocation.Level2Zone)))
	root := func(rawPartitions int) string {
		abs, _ := filepath.Abs(".")
		return fmt.Sprintf(`
terraform {
  required_providers {
    liveagg = { source = "liveagg/liveagg" }
  }
}

module "indoor" {
  source = %q
  topics = {
    "%[2]s-location-raw"      = { partitions = %[3]d, config = { "retention.ms" = "604800000" } }
    "%[2]s-location-partials" = { partitions = 2 }
  }
  specs = {
    l1   = file("${path.module}/l1.yaml")
    zone = file("${path.module}/zone.yaml")
  }
  fleet = {
    l1 = { peak_records_per_second = 1500000, live_series = 3000000 }
  }
}

output "locations" { value = module.indoor.spec_locations }
output "plans" { value = module.indoor.fleet_plans }
`, filepath.Join(abs, "pipeline"), prefix, rawPartitions)
	}
	d.write("main.tf", root(2))
	d.run("init", "-input=false")
	// The module needs only the liveagg provider, so it validates here for real.
	d.run("validate")
	d.run("apply", "-auto-approve", "-input=false")

	adm := kadm.NewClient(mustKafka(t))
	// Metadata reaches the brokers shortly after a change: ask until it says want.
	partitionsAre := func(topic string, want int) int {
		n := -1
		for range 50 {
			td, err := adm.ListTopics(ctx, topic)
			n = 0
			if err == nil && td[topic].Err == nil {
				n = len(td[topic].Partitions)
			}
			if n == want {
				return n
			}
			time.Sleep(200 * time.Millisecond)
		}
		return n
	}
	if p := partitionsAre(prefix+"-location-raw", 2); p != 2 {
		t.Fatalf("raw topic has %d partitions after apply", p)
	}
	for _, name := range []string{prefix + "-l1", prefix + "-l2-zone"} {
		if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("specs/" + name + ".yaml")}); err != nil {
			t.Fatalf("spec %s not stored: %v", name, err)
		}
	}
	sess := mustCassandra(t)
	var n int
	if err := sess.Query(`SELECT count(*) FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'rollup_zone'`, ks).Scan(&n); err != nil || n == 0 {
		t.Fatalf("rollup table: %d columns, %v", n, err)
	}
	if out := d.run("output", "plans"); !strings.Contains(out, "min_workers") {
		t.Fatalf("fleet plan output: %s", out)
	}

	// A change in place: the raw topic grows.
	d.write("main.tf", root(4))
	if out := d.run("apply", "-auto-approve", "-input=false"); !strings.Contains(out, "1 changed") {
		t.Fatalf("growing the topic: %s", out)
	}
	if p := partitionsAre(prefix+"-location-raw", 4); p != 4 {
		t.Fatalf("raw topic has %d partitions after the change", p)
	}

	// A worker runs level 1 on what the module made and writes partials.
	runLevel1(t, ctx, d, prefix, bucket)

	d.run("destroy", "-auto-approve", "-input=false")
	if p := partitionsAre(prefix+"-location-raw", 0); p != 0 {
		t.Fatalf("raw topic still has %d partitions after destroy", p)
	}
	if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("specs/" + prefix + "-l1.yaml")}); err == nil {
		t.Fatal("spec still stored after destroy")
	}
}

func runLevel1(t *testing.T, ctx context.Context, d *tofuDir, prefix, bucket string) {
	bin := testenv.Build(t, "../workers/cmd/liveagg", d.dir, "liveagg")
	cfg := filepath.Join(d.dir, "worker.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
spec: s3://%s/specs/%s-l1.yaml
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s}
aws: {endpoint: %q, region: %s}
`, bucket, prefix, strings.Join(testenv.KafkaBrokers(t), ","), filepath.Join(d.dir, "ckpt"), testenv.AWSEndpoint(t), testenv.Region), 0o600); err != nil {
		t.Fatal(err)
	}
	w := testenv.Start(t, d.dir, "worker", bin, []string{"worker", "--config", cfg}, "LIVEAGG_WORKER_ID=m1",
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing")
	cl := mustKafka(t)
	var recs []*kgo.Record
	for i := range 400 {
		recs = append(recs, &kgo.Record{Topic: prefix + "-location-raw", Key: fmt.Appendf(nil, "dev-%d", i%7),
			Value: fmt.Appendf(nil, `{"org":"o1","site":"s1","floor":1,"zone":"z%d","device":"dev-%d","ts":%d,"rssi":-50,"dwell_ms":10}`, i%3, i%7, 1767225600000+int64(i)*1000)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	topic := prefix + "-location-partials"
	rd, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers(t)...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got := 0
	for deadline := time.Now().Add(90 * time.Second); got == 0 && time.Now().Before(deadline); {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		got += rd.PollFetches(pctx).NumRecords()
		cancel()
		if w.Exited() {
			t.Fatalf("worker exited:\n%s", w.Log())
		}
	}
	if got == 0 {
		t.Fatalf("no partials from the worker:\n%s", w.Log())
	}
	_ = w.Cmd.Process.Kill()
	<-w.Done
}

func mustKafka(t *testing.T) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers(t)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func mustCassandra(t *testing.T) *gocql.Session {
	host, port, _ := strings.Cut(testenv.CassandraHosts(t)[0], ":")
	c := gocql.NewCluster(host)
	fmt.Sscan(port, &c.Port)
	s, err := c.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}
