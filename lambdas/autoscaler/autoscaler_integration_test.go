//go:build integration

package autoscaler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/lambdas/autoscaler"
)

// TestAutoscalerAgainstMoto runs the reactive capacity policy; TestLearningAllocatesAhead the
// forecasting one. Both run the built bootstrap under the Lambda runtime interface
// emulator against moto: a group per load shape, fifteen minutes of fleet metrics put into
// CloudWatch the way three workers publish them, one invocation, and the group's desired
// capacity read back. A worker is 2 cores at 60 % and records cost 100 µs: 12,000 records/s
// per worker.
func TestAutoscalerAgainstMoto(t *testing.T) {
	ctx := testenv.Context(t, 5*time.Minute)
	cfg := testenv.AWSConfig(t)
	bootstrap := testenv.Build(t, "./bootstrap", t.TempDir(), "bootstrap", "lambda.norpc")
	ec, as, cw := ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg), cloudwatch.NewFromConfig(cfg)

	ramp := func(from, to float64) func(int) float64 {
		return func(i int) float64 { return from + (to-from)*float64(i)/14 }
	}
	flat := func(v float64) func(int) float64 { return func(int) float64 { return v } }
	step := func(before, after float64, at int) func(int) float64 {
		return func(i int) float64 {
			if i < at {
				return before
			}
			return after
		}
	}
	for _, tc := range []struct {
		name     string
		rate     func(minute int) float64 // records/s of the fleet
		current  int32
		dryRun   bool
		want     int32
		applied  bool
		minCount int32
	}{
		{"rising", ramp(20_000, 60_000), 2, false, 5, true, 1},
		{"flat", flat(30_000), 3, false, 3, false, 1},
		{"falling, still within the window", step(60_000, 10_000, 10), 5, false, 5, false, 1},
		{"falling for the whole window", step(60_000, 10_000, 4), 5, false, 1, true, 1},
		{"beyond max", flat(500_000), 3, false, 6, true, 1},
		{"below min", flat(100), 4, false, 2, true, 2},
		{"dry run", ramp(20_000, 60_000), 2, true, 5, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			group := testenv.Name(t, "as")
			spec := group + "-spec"
			testenv.AutoScalingGroup(t, ctx, ec, as, group, tc.minCount, 6, tc.current)
			// Three workers each publish a third of the records every minute, and their cost.
			now := time.Now().Truncate(time.Minute)
			dims := []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String(group)}}
			for m := range 15 {
				at := aws.Time(now.Add(time.Duration(m-15)*time.Minute + 20*time.Second))
				var data []cwtypes.MetricDatum
				for range 3 {
					data = append(data,
						cwtypes.MetricDatum{MetricName: aws.String("RecordsIn"), Value: aws.Float64(tc.rate(m) * 60 / 3), Timestamp: at, Dimensions: dims, Unit: cwtypes.StandardUnitCount},
						cwtypes.MetricDatum{MetricName: aws.String("ProcessingSecondsPerRecord"), Value: aws.Float64(100e-6), Timestamp: at, Dimensions: dims, Unit: cwtypes.StandardUnitSeconds},
						cwtypes.MetricDatum{MetricName: aws.String("ConsumerLag"), Value: aws.Float64(0), Timestamp: at, Dimensions: dims, Unit: cwtypes.StandardUnitCount})
				}
				putMetrics(t, ctx, cfg, data)
			}
			r := decide(t, ctx, bootstrap, "LIVEAGG_POLICY=capacity", "LIVEAGG_ASG="+group, "LIVEAGG_SPEC="+spec, "LIVEAGG_PARTITIONS=12",
				"LIVEAGG_CORES_PER_WORKER=2", "LIVEAGG_TARGET_UTILIZATION=0.6", fmt.Sprintf("LIVEAGG_DRY_RUN=%v", tc.dryRun))
			t.Logf("%+v", r)
			if r.Desired != tc.want || r.Applied != tc.applied {
				t.Fatalf("decision %+v, want desired %d applied %v", r, tc.want, tc.applied)
			}
			g, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
			if err != nil {
				t.Fatal(err)
			}
			got := aws.ToInt32(g.AutoScalingGroups[0].DesiredCapacity)
			want := tc.want
			if tc.dryRun {
				want = tc.current
			}
			if got != want || got < tc.minCount || got > 6 {
				t.Fatalf("group desired capacity %d, want %d", got, want)
			}
			// The decision is in CloudWatch too.
			res, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{StartTime: aws.Time(now.Add(-time.Minute)), EndTime: aws.Time(time.Now().Add(time.Minute)),
				MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("d"), MetricStat: &cwtypes.MetricStat{Metric: &cwtypes.Metric{
					Namespace: aws.String("liveagg"), MetricName: aws.String("DesiredWorkers"),
					Dimensions: []cwtypes.Dimension{{Name: aws.String("AutoScalingGroup"), Value: aws.String(group)}}}, Period: aws.Int32(60), Stat: aws.String("Maximum")}}}})
			if err != nil || len(res.MetricDataResults) == 0 || len(res.MetricDataResults[0].Values) == 0 || res.MetricDataResults[0].Values[0] != float64(tc.want) {
				t.Fatalf("DesiredWorkers metric: %+v %v", res, err)
			}
		})
	}
}

// TestLearningAllocatesAhead puts two days of fleet metrics in moto with a daily surge (three
// times the load) that starts three minutes from now each day, and today's quiet minutes. The
// learning policy, reading the history through the lambda, scales up before the surge; the
// reactive policy, seeing only the quiet present, does not.
func TestLearningAllocatesAhead(t *testing.T) {
	ctx := testenv.Context(t, 5*time.Minute)
	cfg := testenv.AWSConfig(t)
	bootstrap := testenv.Build(t, "./bootstrap", t.TempDir(), "bootstrap", "lambda.norpc")
	ec, as := ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg)
	group := testenv.Name(t, "learn")
	spec := group + "-spec"
	testenv.AutoScalingGroup(t, ctx, ec, as, group, 1, 20, 2)
	now := time.Now().Truncate(time.Minute)
	dims := []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String(group)}}
	// 20,000 records/s quietly, 60,000 from three minutes past now to an hour later, each day.
	rate := func(at time.Time) float64 {
		since := at.Sub(now.Add(3 * time.Minute))
		for since < 0 {
			since += 24 * time.Hour
		}
		if since%(24*time.Hour) < time.Hour {
			return 60_000
		}
		return 20_000
	}
	var data []cwtypes.MetricDatum
	flush := func() {
		if len(data) == 0 {
			return
		}
		putMetrics(t, ctx, cfg, data)
		data = data[:0]
	}
	for at := now.Add(-50 * time.Hour); at.Before(now); at = at.Add(time.Minute) {
		ts := aws.Time(at.Add(10 * time.Second))
		data = append(data,
			cwtypes.MetricDatum{MetricName: aws.String("RecordsIn"), Value: aws.Float64(rate(at) * 60), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitCount},
			cwtypes.MetricDatum{MetricName: aws.String("ProcessingSecondsPerRecord"), Value: aws.Float64(100e-6), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitSeconds},
			cwtypes.MetricDatum{MetricName: aws.String("ConsumerLag"), Value: aws.Float64(0), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitCount})
		if len(data) >= 900 {
			flush()
		}
	}
	flush()
	ask := func(policy string) autoscaler.Result {
		r := decide(t, ctx, bootstrap, "LIVEAGG_POLICY="+policy, "LIVEAGG_DRY_RUN=true", "LIVEAGG_ASG="+group, "LIVEAGG_SPEC="+spec,
			"LIVEAGG_PARTITIONS=24", "LIVEAGG_CORES_PER_WORKER=2", "LIVEAGG_TARGET_UTILIZATION=0.75",
			"LIVEAGG_HISTORY_DAYS=3") // the 50 hours put; moto reads 15 days of minutes slowly
		t.Logf("%s: %+v", policy, r)
		return r
	}
	// 20,000 rec/s at 100 µs on 2 cores at 75 %: 1.33 workers; 60,000: 4.
	reactive, learning := ask("capacity"), ask("learning")
	if reactive.Desired != 2 {
		t.Fatalf("reactive policy: %+v, want to hold 2 for the quiet present", reactive)
	}
	if learning.Desired < 4 || !strings.Contains(learning.Reason, "daily") {
		t.Fatalf("learning policy: %+v, want at least 4 workers ahead of the daily surge", learning)
	}
}

// putMetrics puts data (whose first datum is a RecordsIn) into CloudWatch exactly once. A
// PutMetricData is not idempotent, and the SDK retries one whose answer was lost, which
// counts its minute twice (a flake: the capacity policy once saw 20,000 records/s where
// 10,000 were put). So the SDK does not retry here; after a failed put the data are looked
// for, and put again only if they are not there.
func putMetrics(t *testing.T, ctx context.Context, cfg aws.Config, data []cwtypes.MetricDatum) {
	t.Helper()
	cw := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 })
	first := data[0]
	at := aws.ToTime(first.Timestamp).Truncate(time.Minute)
	for attempt := 1; ; attempt++ {
		_, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("liveagg"), MetricData: data})
		if err == nil {
			return
		}
		res, gerr := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{StartTime: aws.Time(at), EndTime: aws.Time(at.Add(time.Minute)),
			MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("r"), MetricStat: &cwtypes.MetricStat{Metric: &cwtypes.Metric{
				Namespace: aws.String("liveagg"), MetricName: first.MetricName, Dimensions: first.Dimensions}, Period: aws.Int32(60), Stat: aws.String("SampleCount")}}}})
		if gerr == nil && len(res.MetricDataResults) > 0 && len(res.MetricDataResults[0].Values) > 0 {
			t.Logf("put of %d datums at %v failed (%v) but was stored", len(data), at, err)
			return
		}
		if attempt == 5 {
			t.Fatalf("put metric data: %v", err)
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
}

// TestLearningReadsFleetStateHistory: three workers each publish 2 GiB of state every minute
// for a day, with little traffic. The fleet holds 6 GiB; at 4 GiB per worker and 80 % that
// needs 2 workers. Summing the gauge over five-minute periods would read 30 GiB and ask for 10.
func TestLearningReadsFleetStateHistory(t *testing.T) {
	ctx := testenv.Context(t, 5*time.Minute)
	cfg := testenv.AWSConfig(t)
	bootstrap := testenv.Build(t, "./bootstrap", t.TempDir(), "bootstrap", "lambda.norpc")
	ec, as := ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg)
	group := testenv.Name(t, "mem")
	spec := group + "-spec"
	testenv.AutoScalingGroup(t, ctx, ec, as, group, 1, 20, 2)
	now := time.Now().Truncate(time.Minute)
	dims := []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String(group)}}
	var data []cwtypes.MetricDatum
	for at := now.Add(-24 * time.Hour); at.Before(now); at = at.Add(time.Minute) {
		ts := aws.Time(at.Add(10 * time.Second))
		data = append(data,
			cwtypes.MetricDatum{MetricName: aws.String("RecordsIn"), Value: aws.Float64(1000 * 60), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitCount},
			cwtypes.MetricDatum{MetricName: aws.String("ProcessingSecondsPerRecord"), Value: aws.Float64(100e-6), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitSeconds},
			cwtypes.MetricDatum{MetricName: aws.String("ConsumerLag"), Value: aws.Float64(0), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitCount})
		for range 3 {
			data = append(data, cwtypes.MetricDatum{MetricName: aws.String("StateBytes"), Value: aws.Float64(2 << 30), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitBytes})
		}
		if len(data) >= 900 {
			putMetrics(t, ctx, cfg, data)
			data = data[:0]
		}
	}
	if len(data) > 0 {
		putMetrics(t, ctx, cfg, data)
	}
	r := decide(t, ctx, bootstrap, "LIVEAGG_POLICY=learning", "LIVEAGG_DRY_RUN=true", "LIVEAGG_ASG="+group, "LIVEAGG_SPEC="+spec,
		"LIVEAGG_PARTITIONS=24", "LIVEAGG_CORES_PER_WORKER=2", "LIVEAGG_TARGET_UTILIZATION=0.75", "LIVEAGG_HISTORY_DAYS=2")
	t.Logf("%+v", r)
	if r.Desired != 2 {
		t.Fatalf("learning policy: %+v, want 2 workers for 6 GiB of state", r)
	}
}

// decide starts the built bootstrap under the runtime interface emulator with env (and moto's
// endpoint and credentials), sends it one scheduled event and returns its decision.
func decide(t *testing.T, ctx context.Context, bootstrap string, env ...string) autoscaler.Result {
	t.Helper()
	env = append(env, "AWS_ENDPOINT_URL="+testenv.AWSEndpoint(t), "AWS_REGION="+testenv.Region,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing")
	resp, err := testenv.StartLambda(t, bootstrap, env...).Invoke(ctx, []byte(`{"source":"aws.events","detail-type":"Scheduled Event"}`))
	if err != nil {
		t.Fatal(err)
	}
	var r autoscaler.Result
	if err := json.Unmarshal(resp, &r); err != nil {
		t.Fatalf("lambda answered %s", resp)
	}
	return r
}

// TestLearningHistoryNewestBucket: a steady 60,000 records/s for three hours, the newest minute
// not yet published (as every minute, when the lambda runs). The newest history point is the
// mean of the minutes published, 60,000; CloudWatch's five-minute Sum of that bucket holds
// four minutes of five, and over 300 s reads 48,000, a fifth too low where the forecast's level
// and "now" look.
func TestLearningHistoryNewestBucket(t *testing.T) {
	ctx := testenv.Context(t, 5*time.Minute)
	cfg := testenv.AWSConfig(t)
	bootstrap := testenv.Build(t, "./bootstrap", t.TempDir(), "bootstrap", "lambda.norpc")
	ec, as := ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg)
	group := testenv.Name(t, "bucket")
	spec := group + "-spec"
	testenv.AutoScalingGroup(t, ctx, ec, as, group, 1, 20, 2)
	now := time.Now().Truncate(time.Minute)
	dims := []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String(group)}}
	var data []cwtypes.MetricDatum
	for at := now.Add(-3 * time.Hour); at.Before(now.Add(-time.Minute)); at = at.Add(time.Minute) {
		ts := aws.Time(at.Add(10 * time.Second))
		data = append(data,
			cwtypes.MetricDatum{MetricName: aws.String("RecordsIn"), Value: aws.Float64(60_000 * 60), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitCount},
			cwtypes.MetricDatum{MetricName: aws.String("ProcessingSecondsPerRecord"), Value: aws.Float64(100e-6), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitSeconds},
			cwtypes.MetricDatum{MetricName: aws.String("ConsumerLag"), Value: aws.Float64(0), Timestamp: ts, Dimensions: dims, Unit: cwtypes.StandardUnitCount})
		if len(data) >= 900 {
			putMetrics(t, ctx, cfg, data)
			data = data[:0]
		}
	}
	if len(data) > 0 {
		putMetrics(t, ctx, cfg, data)
	}
	r := decide(t, ctx, bootstrap, "LIVEAGG_POLICY=learning", "LIVEAGG_DRY_RUN=true", "LIVEAGG_ASG="+group, "LIVEAGG_SPEC="+spec,
		"LIVEAGG_PARTITIONS=24", "LIVEAGG_CORES_PER_WORKER=2", "LIVEAGG_TARGET_UTILIZATION=0.75", "LIVEAGG_HISTORY_DAYS=1")
	t.Logf("%+v", r)
	if r.HistoryRate < 59_400 || r.HistoryRate > 60_600 {
		t.Fatalf("newest history point %.0f records/s, want 60,000: %+v", r.HistoryRate, r)
	}
	// 60,000 at 100 µs on 2 cores at 92 % (learning's own target): 3.3 workers; a history a
	// fifth low would not change that much, the rate it plans for would.
	if r.Rate < 59_400 {
		t.Fatalf("planned for %.0f records/s, want at least 60,000: %+v", r.Rate, r)
	}
}
