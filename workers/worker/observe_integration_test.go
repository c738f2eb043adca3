//go:build integration

package worker_test

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/metrics"
)

// TestWorkerExportsMetrics: a running worker serves Prometheus metrics and publishes the
// autoscaler's inputs to CloudWatch (moto), under the shared names.
func TestWorkerExportsMetrics(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	awsEP := testenv.AWSEndpoint(t)
	ctx := testenv.Context(t, 4*time.Minute)
	name := testenv.Name(t, "obs")
	topic := name + "-raw"
	cl := newTopic(t, brokers, topic, 1)
	var recs []*kgo.Record
	for i := range 500 {
		recs = append(recs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, `{"k":"k%d","t":%d}`, i%5, 1767225600000+int64(i))})
	}
	recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(`not json`)})
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	specPath := countSpec(t, dir, name, topic)
	port := testenv.FreePort(t)
	cfgPath := writeFile(t, dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s}
aws: {endpoint: %q}
metrics: {listen: "127.0.0.1:%d", cloudwatch_interval: 1s, auto_scaling_group: %s}
`, specPath, strings.Join(brokers, ","), filepath.Join(dir, "ckpt"), awsEP, port, name)
	w := startWorker(t, dir, cfgPath, "w", "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing")

	// Prometheus. The spec does not declare its keying, so it runs in two stages, and every
	// metric says which.
	want := []string{metrics.RecordsIn.Prom + `{partition="0",stage="1"} 501`, metrics.DeadLettered.Prom + `{reason="malformed_json",stage="1"} 1`,
		metrics.CheckpointDuration.Prom + `_count{stage="2"}`}
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		ok := true
		for _, s := range want {
			ok = ok && strings.Contains(body, s)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %v:\n%s\nworker log:\n%s", want, body, w.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// CloudWatch, read back as the autoscaler does. The sum must be exact: the worker puts each
	// interval's sample once, through the SDK's default client, which has no response timeout, so
	// a slow moto makes a put wait rather than be retried. The SDK retries only an error answer
	// or a broken connection, which moto gives before it stores anything; a retry that counted a
	// sample twice would be a real double count on CloudWatch too. A loaded machine only delays
	// the samples, so they are waited for generously.
	cw := cloudwatch.NewFromConfig(testenv.AWSConfig(t))
	dims := []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(name)}, {Name: aws.String("AutoScalingGroup"), Value: aws.String(name)}}
	for deadline := time.Now().Add(90 * time.Second); ; {
		out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(time.Now().Add(-10 * time.Minute)), EndTime: aws.Time(time.Now().Add(time.Minute)),
			MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("r"), MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String(metrics.Namespace), MetricName: aws.String(metrics.RecordsIn.CloudWatch), Dimensions: dims},
				Period: aws.Int32(60), Stat: aws.String("Sum")}}},
		})
		total := 0.0
		if err == nil {
			for _, r := range out.MetricDataResults {
				for _, v := range r.Values {
					total += v
				}
			}
		}
		if total == 501 {
			break
		}
		if total > 501 {
			t.Fatalf("CloudWatch RecordsIn sum = %v, over the 501 records consumed: a sample counted twice\nworker log:\n%s", total, w.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("CloudWatch RecordsIn sum = %v (%v), want 501\nworker log:\n%s", total, err, w.Log())
		}
		time.Sleep(500 * time.Millisecond)
	}
}
