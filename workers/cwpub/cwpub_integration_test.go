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
	out, err := cl.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-time.Minute)), EndTime: aws.Time(now.Add(time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("r"), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(metrics.Namespace), MetricName: aws.String(metrics.RecordsIn.CloudWatch),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String("asg-1")}}},
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
	if total != 2000 {
		t.Fatalf("RecordsIn sum = %v, want 2000", total)
	}
}
