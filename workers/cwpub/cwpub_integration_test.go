//go:build integration

package cwpub

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/metrics"
)

// TestPublishReadsBack publishes two samples to moto's CloudWatch and reads the sum of
// RecordsIn back with GetMetricData, as the autoscaler does.
func TestPublishReadsBack(t *testing.T) {
	cl := onceClient(t)
	ctx := testenv.Context(t, 2*time.Minute)
	spec := testenv.Name(t, "cw")
	p := New(cl, spec, "asg-1")
	now := time.Now().Truncate(time.Minute)
	dims := []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String("asg-1")}}
	for i, n := range []float64{1200, 800} {
		publishOnce(t, ctx, cl, p, Sample{RecordsIn: n, ConsumerLag: 5}, now.Add(time.Duration(i)*time.Second), i+1, dims)
	}
	total := sumOf(t, cl, now, metrics.RecordsIn, dims...)
	if total != 2000 {
		t.Fatalf("RecordsIn sum = %v, want 2000", total)
	}
}

// TestDeadLettersPerReason: dead letters are published in total and per reason (with a Reason
// dimension), so an alarm can watch every reason but late, and both read back from moto.
func TestDeadLettersPerReason(t *testing.T) {
	cl := onceClient(t)
	ctx := testenv.Context(t, 2*time.Minute)
	spec := testenv.Name(t, "cwdl")
	p := New(cl, spec, "asg-1")
	now := time.Now().Truncate(time.Minute)
	publishOnce(t, ctx, cl, p, Sample{DeadLettered: 7, DeadLetteredByReason: map[string]float64{"late": 5, "invalid_utf8": 2}}, now, 1,
		[]cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String("asg-1")}})
	read := func(dims ...cwtypes.Dimension) float64 {
		t.Helper()
		dims = append([]cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String("asg-1")}}, dims...)
		return sumOf(t, cl, now, metrics.DeadLettered, dims...)
	}
	reason := func(r string) cwtypes.Dimension {
		return cwtypes.Dimension{Name: aws.String("Reason"), Value: aws.String(r)}
	}
	if all, late, utf := read(), read(reason("late")), read(reason("invalid_utf8")); all != 7 || late != 5 || utf != 2 {
		t.Fatalf("dead letters read back: all %v, late %v, invalid_utf8 %v; want 7, 5, 2", all, late, utf)
	}
}

// onceClient is a CloudWatch client that never retries. PutMetricData is not idempotent: an SDK
// retry of a put whose answer was lost stores the sample twice and doubles the sums these tests
// check exactly. publishOnce does the retrying, after looking whether the put was stored.
func onceClient(t *testing.T) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(testenv.AWSConfig(t), func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 })
}

// publishOnce publishes s at at exactly once; it is the n-th sample with these dimensions.
// Publish sends a sample in one request, so after a failed one the RecordsIn samples read back
// say whether it was stored: n of them, it was; n-1, it is published again.
func publishOnce(t *testing.T, ctx context.Context, cl *cloudwatch.Client, p *Publisher, s Sample, at time.Time, n int, dims []cwtypes.Dimension) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := p.Publish(ctx, s, at)
		if err == nil {
			return
		}
		stored, rerr := statOf(ctx, cl, at.Truncate(time.Minute), "SampleCount", metrics.RecordsIn, dims...)
		switch {
		case rerr == nil && stored == float64(n):
			t.Logf("publish %d failed (%v) but was stored", n, err)
			return
		case rerr == nil && stored != float64(n-1):
			t.Fatalf("publish %d failed (%v); %v samples stored, want %d or %d", n, err, stored, n-1, n)
		case attempt == 5:
			t.Fatalf("publish %d: %v (reading back: %v)", n, err, rerr)
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
}

// sumOf reads back the sum of a metric with exactly these dimensions around now, as the
// autoscaler reads its inputs.
func sumOf(t *testing.T, cl *cloudwatch.Client, now time.Time, m metrics.Metric, dims ...cwtypes.Dimension) float64 {
	t.Helper()
	total, err := statOf(t.Context(), cl, now, "Sum", m, dims...)
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// statOf reads back stat of a metric with exactly these dimensions within a minute of now.
func statOf(ctx context.Context, cl *cloudwatch.Client, now time.Time, stat string, m metrics.Metric, dims ...cwtypes.Dimension) (float64, error) {
	out, err := cl.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-time.Minute)), EndTime: aws.Time(now.Add(time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("m"), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(metrics.Namespace), MetricName: aws.String(m.CloudWatch), Dimensions: dims},
			Period: aws.Int32(60), Stat: aws.String(stat)}}},
	})
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, r := range out.MetricDataResults {
		for _, v := range r.Values {
			total += v
		}
	}
	return total, nil
}
