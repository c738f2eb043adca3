//go:build integration

// Package servicetest proves that each service infra/local/services starts is the real thing,
// driven by the same client libraries liveagg uses. If one of these fails, every other
// integration test's result is suspect, so they run first in `make test-all`.
package servicetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

func TestKafkaConsumerGroupAndTransactions(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 2*time.Minute)
	topic := testenv.Name(t, "svc-kafka")

	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	// Plain produce, then consume through a consumer group with a commit.
	const plain = 30
	p, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range plain {
		r := &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte("plain-" + strconv.Itoa(i))}
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	group := testenv.Name(t, "svc-group")
	got := consume(t, ctx, brokers, topic, plain, kgo.ConsumerGroup(group), kgo.DisableAutoCommit())
	if len(got) != plain {
		t.Fatalf("group consumer read %d records, want %d", len(got), plain)
	}
	lag, err := kadm.NewClient(adm).Lag(ctx, group)
	if err != nil {
		t.Fatalf("describe group lag: %v", err)
	}
	if l := lag[group]; l.FetchErr != nil || l.DescribeErr != nil {
		t.Fatalf("group %s lag: fetch %v describe %v", group, l.FetchErr, l.DescribeErr)
	} else if total := l.Lag.Total(); total != 0 {
		t.Errorf("group lag after committing everything = %d, want 0", total)
	}

	// One committed and one aborted transaction; read_committed must see only the first.
	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(testenv.Name(t, "svc-tx")))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for _, outcome := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatalf("begin transaction: %v", err)
		}
		for i := range 5 {
			v := fmt.Sprintf("tx-%v-%d", outcome == kgo.TryCommit, i)
			if err := tx.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("transactional produce: %v", err)
			}
		}
		if err := tx.EndTransaction(ctx, outcome); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}
	committed := consume(t, ctx, brokers, topic, plain+5,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for _, v := range committed {
		if strings.HasPrefix(v, "tx-false") {
			t.Fatalf("read_committed consumer saw aborted record %q", v)
		}
	}
	if n := countPrefix(committed, "tx-true"); n != 5 {
		t.Fatalf("read_committed consumer saw %d committed transactional records, want 5", n)
	}
	// read_uncommitted sees the aborted records too: proof that the abort reached the log and
	// the filtering above was the broker's transaction markers at work.
	all := consume(t, ctx, brokers, topic, plain+10,
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if n := countPrefix(all, "tx-false"); n != 5 {
		t.Fatalf("read_uncommitted consumer saw %d aborted records, want 5", n)
	}
}

// consume reads until it has want records, commits them if in a group, and returns the values.
func consume(t *testing.T, ctx context.Context, brokers []string, topic string, want int, opts ...kgo.Opt) []string {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)
	c, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var vals []string
	for len(vals) < want {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before timeout", len(vals), want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { vals = append(vals, string(r.Value)) })
	}
	if _, grouped := c.GroupMetadata(); grouped != -1 {
		if err := c.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	return vals
}

func countPrefix(vals []string, prefix string) int {
	n := 0
	for _, v := range vals {
		if strings.HasPrefix(v, prefix) {
			n++
		}
	}
	return n
}

func TestCassandraSchemaAndQueries(t *testing.T) {
	hosts := testenv.CassandraHosts(t)
	host, port, _ := strings.Cut(hosts[0], ":")
	c := gocql.NewCluster(host)
	c.Port, _ = strconv.Atoi(port)
	c.Timeout = 20 * time.Second
	c.ConnectTimeout = 10 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer s.Close()

	ks := strings.ReplaceAll(testenv.Name(t, "svc"), "-", "_")
	if err := s.Query(fmt.Sprintf(`CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`, ks)).Exec(); err != nil {
		t.Fatalf("create keyspace: %v", err)
	}
	t.Cleanup(func() { _ = s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec() })
	if err := s.Query(fmt.Sprintf(`CREATE TABLE %s.rollup (series text, window_start timestamp, count bigint, PRIMARY KEY (series, window_start))`, ks)).Exec(); err != nil {
		t.Fatalf("create table: %v", err)
	}
	ts := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i, n := range []int64{3, 5} {
		if err := s.Query(fmt.Sprintf(`INSERT INTO %s.rollup (series, window_start, count) VALUES (?, ?, ?)`, ks),
			"org-1", ts.Add(time.Duration(i)*time.Minute), n).Exec(); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	// An upsert of the same primary key overwrites: the property liveagg's sinks rely on.
	if err := s.Query(fmt.Sprintf(`INSERT INTO %s.rollup (series, window_start, count) VALUES (?, ?, ?)`, ks),
		"org-1", ts, int64(7)).Exec(); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	var sum, rows int64
	iter := s.Query(fmt.Sprintf(`SELECT count FROM %s.rollup WHERE series = ?`, ks), "org-1").Iter()
	var n int64
	for iter.Scan(&n) {
		sum += n
		rows++
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("select: %v", err)
	}
	if rows != 2 || sum != 12 {
		t.Fatalf("select got %d rows summing to %d, want 2 rows summing to 12", rows, sum)
	}
}

func TestS3ConditionalPut(t *testing.T) {
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	ctx := testenv.Context(t, time.Minute)
	bucket := testenv.Name(t, "svc-s3")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	put := func(body string) error {
		_, err := cl.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("manifest"),
			Body: strings.NewReader(body), IfNoneMatch: aws.String("*"),
		})
		return err
	}
	if err := put("gen-1"); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	err := put("gen-2")
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("second conditional put: got %v, want PreconditionFailed", err)
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("manifest")})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatal(err)
	}
	if b.String() != "gen-1" {
		t.Fatalf("object = %q after a refused overwrite, want gen-1", b.String())
	}
}

func TestEC2AndAutoScaling(t *testing.T) {
	cfg := testenv.AWSConfig(t)
	ctx := testenv.Context(t, time.Minute)
	ec := ec2.NewFromConfig(cfg)
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("describe images: %v (%d images)", err, len(imgs.Images))
	}
	ami := aws.ToString(imgs.Images[0].ImageId)
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeM6gLarge, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
	})
	if err != nil {
		t.Fatalf("run instances: %v", err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	t.Cleanup(func() {
		_, _ = ec.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	})

	name := testenv.Name(t, "svc-lt")
	if _, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeM6gLarge},
	}); err != nil {
		t.Fatalf("create launch template: %v", err)
	}
	as := autoscaling.NewFromConfig(cfg)
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name),
		MinSize:              aws.Int32(0), MaxSize: aws.Int32(4), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{testenv.Region + "a"},
		MixedInstancesPolicy: &astypes.MixedInstancesPolicy{
			LaunchTemplate: &astypes.LaunchTemplate{
				LaunchTemplateSpecification: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(name), Version: aws.String("$Latest")},
				Overrides:                   []astypes.LaunchTemplateOverrides{{InstanceType: aws.String("m6g.large")}, {InstanceType: aws.String("c6g.large")}},
			},
			InstancesDistribution: &astypes.InstancesDistribution{
				OnDemandPercentageAboveBaseCapacity: aws.Int32(0),
				SpotAllocationStrategy:              aws.String("price-capacity-optimized"),
			},
		},
	}); err != nil {
		t.Fatalf("create auto scaling group: %v", err)
	}
	t.Cleanup(func() {
		_, _ = as.DeleteAutoScalingGroup(context.Background(), &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(name), ForceDelete: aws.Bool(true)})
	})
	if _, err := as.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(name), DesiredCapacity: aws.Int32(3)}); err != nil {
		t.Fatalf("set desired capacity: %v", err)
	}
	out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("describe group: %v", err)
	}
	g := out.AutoScalingGroups[0]
	if d := aws.ToInt32(g.DesiredCapacity); d != 3 {
		t.Fatalf("desired capacity = %d, want 3", d)
	}
	if len(g.Instances) != 3 {
		t.Fatalf("group has %d instances, want 3", len(g.Instances))
	}
}

func TestCloudWatchMetricRoundTrip(t *testing.T) {
	cw := cloudwatch.NewFromConfig(testenv.AWSConfig(t))
	ctx := testenv.Context(t, time.Minute)
	ns := testenv.Name(t, "liveagg/svc")
	now := time.Now().Truncate(time.Minute)
	var data []cwtypes.MetricDatum
	for i, v := range []float64{10, 20, 30} {
		data = append(data, cwtypes.MetricDatum{
			MetricName: aws.String("records_in"), Value: aws.Float64(v), Unit: cwtypes.StandardUnitCount,
			Timestamp:  aws.Time(now.Add(-time.Duration(i) * time.Second)),
			Dimensions: []cwtypes.Dimension{{Name: aws.String("pipeline"), Value: aws.String("svc")}},
		})
	}
	if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(ns), MetricData: data}); err != nil {
		t.Fatalf("put metric data: %v", err)
	}
	out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-5 * time.Minute)), EndTime: aws.Time(now.Add(5 * time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{
			Id: aws.String("m1"),
			MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String(ns), MetricName: aws.String("records_in"),
					Dimensions: []cwtypes.Dimension{{Name: aws.String("pipeline"), Value: aws.String("svc")}}},
				Period: aws.Int32(60), Stat: aws.String("Sum"),
			},
		}},
	})
	if err != nil {
		t.Fatalf("get metric data: %v", err)
	}
	var total float64
	for _, r := range out.MetricDataResults {
		for _, v := range r.Values {
			total += v
		}
	}
	if total != 60 {
		t.Fatalf("sum of records_in = %v, want 60 (results %+v)", total, out.MetricDataResults)
	}
}

func TestTofuVersion(t *testing.T) {
	tofu := testenv.Tofu(t)
	out, err := exec.Command(tofu, "version", "-json").Output()
	if err != nil {
		t.Fatalf("tofu version: %v", err)
	}
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("tofu version -json printed %q: %v", out, err)
	}
	if !strings.HasPrefix(v.Version, "1.12.") || strings.Contains(v.Version, "dev") {
		t.Fatalf("tofu version = %q, want a 1.12.x release build", v.Version)
	}
}

func TestLambdaEmulatorInvokesGoHandler(t *testing.T) {
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-o", bootstrap, "./echolambda")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build echolambda: %v\n%s", err, out)
	}
	fn := testenv.StartLambda(t, bootstrap)
	out, err := fn.Invoke(testenv.Context(t, time.Minute), []byte(`{"message":"spot"}`))
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ Echo string }
	if err := json.Unmarshal(out, &r); err != nil || r.Echo != "SPOT" {
		t.Fatalf("lambda answered %q (%v), want echo SPOT", out, err)
	}
}
