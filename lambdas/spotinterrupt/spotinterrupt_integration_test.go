//go:build integration

package spotinterrupt_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/lambdas/spotinterrupt"
	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/spot"
	"github.com/liveagg/liveagg/workers/worker"
)

// recorder stands in front of moto for the Auto Scaling API: moto answers
// CompleteLifecycleAction and RecordLifecycleActionHeartbeat with HTTP 500, so those two are
// recorded here and answered as the Auto Scaling query protocol documents; every other call
// goes through to moto unchanged.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	calls []url.Values
}

func newRecorder(t *testing.T, moto string) *recorder {
	target, err := url.Parse(moto)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		form, _ := url.ParseQuery(string(body))
		switch action := form.Get("Action"); action {
		case "CompleteLifecycleAction", "RecordLifecycleActionHeartbeat":
			r.mu.Lock()
			r.calls = append(r.calls, form)
			r.mu.Unlock()
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprintf(w, `<%sResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><%sResult/><ResponseMetadata><RequestId>rec-1</RequestId></ResponseMetadata></%sResponse>`, action, action, action)
		default:
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
			proxy.ServeHTTP(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) completed() []url.Values {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]url.Values(nil), r.calls...)
}

// TestSpotEventsDrainRealWorkers runs the built bootstrap under the Lambda runtime interface
// emulator against moto (instances, tags, an Auto Scaling group with a lifecycle hook, SSM,
// CloudWatch) and real liveagg workers on the real Kafka. A terminate lifecycle action for
// worker A's instance drains A and completes the action; a spot warning for worker B's drains
// B and has the group replace the instance; the last worker ends up with every partition, and
// the rollups of everything produced are exact. The workers are reached at the addresses moto
// reports for their instances, never at the ones their tags name.
func TestSpotEventsDrainRealWorkers(t *testing.T) {
	ctx := testenv.Context(t, 6*time.Minute)
	brokers := testenv.KafkaBrokers(t)
	awsEP := testenv.AWSEndpoint(t)
	cfg := testenv.AWSConfig(t)
	dir := t.TempDir()
	liveagg := testenv.Build(t, "../../workers/cmd/liveagg", dir, "liveagg")
	bootstrap := testenv.Build(t, "./bootstrap", dir, "bootstrap", "lambda.norpc")
	name := testenv.Name(t, "spot")

	// The admin token, where workers and the lambda both read it.
	param := "/" + name + "/admin-token"
	// Overwrite: the name is the test's own, and an SDK retry of a put moto answered late must
	// not fail on the parameter the first attempt made.
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(param),
		Value: aws.String("token-" + name), Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}

	// The input and the workers.
	topic := name + "-raw"
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	specPath := filepath.Join(dir, "spec.yaml")
	writeFile(t, specPath, fmt.Sprintf(`
name: %s
input: {topic: %s, time_field: t, partitioned_by: [k]}
key: [k]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: file, path: %q}]
`, name, topic, out))
	workers, ports := map[string]*testenv.Proc{}, map[string]int{}
	startWorker := func(id string) {
		port := testenv.FreePort(t)
		cfgPath := filepath.Join(dir, id+".yaml")
		writeFile(t, cfgPath, fmt.Sprintf(`
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s}
aws: {endpoint: %q, region: us-east-1}
admin: {listen: "127.0.0.1:%d", token_ssm_parameter: %q}
`, specPath, strings.Join(brokers, ","), filepath.Join(dir, "ckpt"), awsEP, port, param))
		workers[id] = testenv.Start(t, dir, id, liveagg, []string{"worker", "--config", cfgPath}, "LIVEAGG_WORKER_ID="+id)
		ports[id] = port
	}
	status := func(id string) (worker.Status, error) {
		var st worker.Status
		err := admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", ports[id]), "token-"+name, nil).Status(ctx, &st)
		return st, err
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				for id, w := range workers {
					t.Logf("%s log:\n%s", id, tail(w.Log(), 15))
				}
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	owns := func(id string, n int) func() bool {
		return func() bool { st, err := status(id); return err == nil && len(st.Partitions) == n }
	}
	produced := 0
	produce := func(n int) {
		var recs []*kgo.Record
		for i := range n {
			j := produced + i
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(j % 4), Key: fmt.Appendf(nil, "k%d", j%4),
				Value: fmt.Appendf(nil, `{"k":"k%d","t":%d}`, j%4, 1767225600000+int64(j)*50)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		produced += n
	}
	startWorker("A")
	startWorker("B")
	waitFor("A and B to share the partitions", func() bool { return owns("A", 2)() && owns("B", 2)() })
	produce(20_000)

	// The fleet in moto: three instances of a group with a lifecycle hook, two tagged with this
	// stack. Their admin-endpoint tags name a trap that must receive nothing: the function
	// reaches a worker at the private IP EC2 reports, which the test hook
	// LIVEAGG_ADMIN_HOST_OVERRIDE moves onto the worker's loopback port. Nothing connects to
	// moto's instance addresses.
	ec := ec2.NewFromConfig(cfg)
	as := autoscaling.NewFromConfig(cfg)
	group := name
	instances := newGroup(t, ctx, ec, as, group)
	trap := newListener(t, "")
	for _, inst := range instances[:2] {
		if _, err := ec.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{inst}, Tags: []ec2types.Tag{
			{Key: aws.String(spotinterrupt.TagStack), Value: aws.String(name)},
			{Key: aws.String(spot.AdminEndpointTag), Value: aws.String(trap.URL)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	ips := privateIPs(t, ctx, ec, instances[0], instances[1])
	override := fmt.Sprintf("%s:7070=127.0.0.1:%d,%s:7070=127.0.0.1:%d", ips[instances[0]], ports["A"], ips[instances[1]], ports["B"])

	rec := newRecorder(t, awsEP)
	lam := testenv.StartLambda(t, bootstrap, "LIVEAGG_ADMIN_TOKEN_PARAMETER="+param, "LIVEAGG_STACK="+name, "LIVEAGG_ASG="+group,
		"LIVEAGG_ADMIN_HOST_OVERRIDE="+override, "AWS_ENDPOINT_URL="+awsEP,
		"AWS_ENDPOINT_URL_AUTO_SCALING="+rec.URL, "AWS_REGION="+testenv.Region, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing")
	invoke := func(file string, edit func(map[string]any)) spotinterrupt.Outcome {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		ev["time"] = time.Now().UTC().Format(time.RFC3339)
		edit(ev)
		body, _ := json.Marshal(ev)
		resp, err := lam.Invoke(ctx, body)
		if err != nil {
			t.Fatal(err)
		}
		var o spotinterrupt.Outcome
		if err := json.Unmarshal(resp, &o); err != nil {
			t.Fatalf("lambda answered %s", resp)
		}
		t.Logf("%s -> %+v", file, o)
		return o
	}

	// 1. The group terminates A's instance: its hook sends a lifecycle action.
	o := invoke("lifecycle-terminate.json", func(ev map[string]any) {
		ev["id"] = name + "-lifecycle"
		d := ev["detail"].(map[string]any)
		d["EC2InstanceId"], d["AutoScalingGroupName"], d["LifecycleHookName"] = instances[0], group, "drain"
	})
	if o.Action != spotinterrupt.ActionDrained || o.Lifecycle != "CONTINUE" {
		t.Fatalf("lifecycle action: %+v", o)
	}
	calls := rec.completed()
	if len(calls) != 1 || calls[0].Get("InstanceId") != instances[0] || calls[0].Get("LifecycleActionResult") != "CONTINUE" ||
		calls[0].Get("LifecycleHookName") != "drain" || calls[0].Get("AutoScalingGroupName") != group {
		t.Fatalf("CompleteLifecycleAction calls: %v", calls)
	}
	waitFor("A to exit after its drain", workers["A"].Exited)
	waitFor("B to take every partition", owns("B", 4))

	// 2. A spot warning for B's instance, with C running to take over.
	startWorker("C")
	waitFor("C to join", owns("C", 2))
	produce(10_000)
	spotEvent := func(ev map[string]any) {
		ev["id"] = name + "-spot"
		ev["detail"].(map[string]any)["instance-id"] = instances[1]
	}
	o = invoke("spot-interruption-warning.json", spotEvent)
	if o.Action != spotinterrupt.ActionDrained || !o.Replacement || o.Group != group || o.DrainSeconds <= 0 {
		t.Fatalf("spot warning: %+v", o)
	}
	waitFor("B to exit after its drain", workers["B"].Exited)
	waitFor("C to take every partition", owns("C", 4))
	// The group replaced the drained instance: B's is gone, the group is back to three.
	waitFor("a replacement instance", func() bool {
		g := describeGroup(t, ctx, as, group)
		ids := map[string]bool{}
		for _, i := range g.Instances {
			ids[aws.ToString(i.InstanceId)] = true
		}
		return !ids[instances[1]] && len(g.Instances) == 3
	})

	// 3. The same event delivered again does nothing more; an instance that is not ours is ignored.
	if again := invoke("spot-interruption-warning.json", spotEvent); again != o {
		t.Fatalf("redelivered event: %+v, first %+v", again, o)
	}
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(testenv.AMI(t, ctx, ec)), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	stranger := aws.ToString(run.Instances[0].InstanceId)
	if o := invoke("rebalance-recommendation.json", func(ev map[string]any) {
		ev["id"] = name + "-stranger"
		ev["detail"].(map[string]any)["instance-id"] = stranger
	}); o.Action != spotinterrupt.ActionIgnored {
		t.Fatalf("instance without the stack tag: %+v", o)
	}

	// 4. Everything produced is in the rollups once: close every window and count.
	produce(10_000)
	for p := range int32(4) {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Key: []byte("flush"),
			Value: fmt.Appendf(nil, `{"k":"flush","t":%d}`, 1767225600000+int64(86_400_000))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var total int
	waitFor("every record in the rollups", func() bool {
		var err error
		total, err = countRows(out)
		if err != nil {
			t.Fatal(err)
		}
		return total >= produced
	})
	time.Sleep(2 * time.Second)
	if total, err = countRows(out); err != nil || total != produced {
		t.Fatalf("rollups count %d records, produced %d (%v)", total, produced, err)
	}

	// CloudWatch has the handled events and the drain times, counted exactly: see metricSum for
	// why an SDK retry cannot count the event twice.
	cw := cloudwatch.NewFromConfig(cfg)
	res, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(time.Now().Add(-10 * time.Minute)), EndTime: aws.Time(time.Now().Add(time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("h"), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String("liveagg"), MetricName: aws.String("SpotInterruptionsHandled"),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("EventType"), Value: aws.String(spotinterrupt.DetailSpotWarning)},
					{Name: aws.String("AutoScalingGroup"), Value: aws.String(group)}}},
			Period: aws.Int32(60), Stat: aws.String("Sum")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, v := range res.MetricDataResults[0].Values {
		sum += v
	}
	if sum != 1 {
		t.Fatalf("SpotInterruptionsHandled for the spot warning = %v, want 1", sum)
	}
	if got := trap.received(); len(got) != 0 {
		t.Fatalf("the listener named by the admin-endpoint tags received %v", got)
	}
	if workers["C"].Exited() {
		t.Fatalf("C exited:\n%s", tail(workers["C"].Log(), 20))
	}
}

func newGroup(t *testing.T, ctx context.Context, ec *ec2.Client, as *autoscaling.Client, name string) []string {
	ids := testenv.AutoScalingGroup(t, ctx, ec, as, name, 0, 6, 3)
	if _, err := as.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String(name),
		LifecycleHookName: aws.String("drain"), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"),
		HeartbeatTimeout: aws.Int32(120), DefaultResult: aws.String("CONTINUE")}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 {
		t.Fatalf("group has %d instances", len(ids))
	}
	return ids
}

func describeGroup(t *testing.T, ctx context.Context, as *autoscaling.Client, name string) astypes.AutoScalingGroup {
	out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("describe group %s: %v", name, err)
	}
	return out.AutoScalingGroups[0]
}

// countRows sums the count of every rollup row (flush rows aside) and fails on a (key, window)
// written twice.
func countRows(dir string) (int, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	seen := map[string]bool{}
	total := 0
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var row struct {
				K     string `json:"k"`
				Start string `json:"window_start"`
				Count int    `json:"count"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				f.Close()
				return 0, err
			}
			if row.K == "flush" {
				continue
			}
			if seen[row.K+row.Start] {
				f.Close()
				return 0, fmt.Errorf("row %s@%s written twice", row.K, row.Start)
			}
			seen[row.K+row.Start] = true
			total += row.Count
		}
		f.Close()
	}
	return total, nil
}

func writeFile(t *testing.T, path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
