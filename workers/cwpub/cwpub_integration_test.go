//go:build integration

package cwpub

import (
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
	cl := cloudwatch.NewFromConfig(testenv.AWSConfig(t))
	ctx := testenv.Context(t, time.Minute)
	spec := testenv.Name(t, "cw")
	p := New(cl, spec, "asg-1")
	now := time.Now().Truncate(time.Minute)
	for i, n := range []float64{1200, 800} {
		if err := p.Publish(ctx, Sample{RecordsIn: n, ConsumerLag: 5}, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	total := sumOf(t, cl, now, metrics.RecordsIn, cwtypes.Dimension{Name: aws.String("Spec"), Value: aws.String(spec)},
		cwtypes.Dimension{Name: aws.String("AutoScalingGroup"), Value: aws.String("asg-1")})
	if total != 2000 {
		t.Fatalf("RecordsIn sum = %v, want 2000", total)
	}
}

// TestDeadLettersPerReason: dead letters are published in total and per reason (with a Reason
// dimension), so an alarm can watch every reason but late, and both read back from moto.
func TestDeadLettersPerReason(t *testing.T) {
	cl := cloudwatch.NewFromConfig(testenv.AWSConfig(t))
	ctx := testenv.Context(t, time.Minute)
	spec := testenv.Name(t, "cwdl")
	p := New(cl, spec, "asg-1")
	now := time.Now().Truncate(time.Minute)
	if err := p.Publish(ctx, Sample{DeadLettered: 7, DeadLetteredByReason: map[string]float64{"late": 5, "invalid_utf8": 2}}, now); err != nil {
		t.Fatal(err)
	}
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

// sumOf reads back the sum of a metric with exactly these dimensions around now, as the
// autoscaler reads its inputs.
func sumOf(t *testing.T, cl *cloudwatch.Client, now time.Time, m metrics.Metric, dims ...cwtypes.Dimension) float64 {
	t.Helper()
	out, err := cl.GetMetricData(t.Context(), &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-time.Minute)), EndTime: aws.Time(now.Add(time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("m"), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(metrics.Namespace), MetricName: aws.String(m.CloudWatch), Dimensions: dims},
			Period: aws.Int32(60), Stat: aws.String("Sum")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, r := range out.MetricDataResults {
		for _, v := range r.Values {
			total += v
		}
	}
	return total
}
