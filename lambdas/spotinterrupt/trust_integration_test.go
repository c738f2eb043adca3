//go:build integration

package spotinterrupt_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// listener records every request that reaches it and what token it carried. As a trap it must
// receive nothing; in front of a worker (proxying to its admin port) it counts the calls.
type listener struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newListener(t *testing.T, to string) *listener {
	l := &listener{}
	var next http.Handler = http.NotFoundHandler()
	if to != "" {
		target, err := url.Parse(to)
		if err != nil {
			t.Fatal(err)
		}
		next = httputil.NewSingleHostReverseProxy(target)
	}
	l.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, fmt.Sprintf("%s %s host=%s token=%t", r.Method, r.URL.Path, r.Host, r.Header.Get("Authorization") != ""))
		l.mu.Unlock()
		next.ServeHTTP(rw, r)
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *listener) received() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reqs...)
}

func (l *listener) count(method, path string) int {
	n := 0
	for _, r := range l.received() {
		if strings.HasPrefix(r, method+" "+path+" ") {
			n++
		}
	}
	return n
}

// privateIPs returns the private IP moto reports for each instance.
func privateIPs(t *testing.T, ctx context.Context, ec *ec2.Client, ids ...string) map[string]string {
	t.Helper()
	out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			ips[aws.ToString(i.InstanceId)] = aws.ToString(i.PrivateIpAddress)
		}
	}
	for _, id := range ids {
		if ips[id] == "" || strings.HasPrefix(ips[id], "127.") {
			t.Fatalf("moto reports private IP %q for %s", ips[id], id)
		}
	}
	return ips
}

// metricSum reads back the sum of a metric the function published for eventType and group over
// the last ten minutes. The tests compare it exactly: the function puts a handled event's
// metrics once, after the handling, through the SDK's default client, which has no response
// timeout (a slow moto makes the put wait, not retry) and retries only an error answer or a
// broken connection, which moto gives before it stores anything. A sum over the count is a
// double count the function would make on CloudWatch too.
func metricSum(t *testing.T, ctx context.Context, cw *cloudwatch.Client, metric, eventType, group string) float64 {
	t.Helper()
	res, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(time.Now().Add(-10 * time.Minute)), EndTime: aws.Time(time.Now().Add(time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("m"), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String("liveagg"), MetricName: aws.String(metric),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("EventType"), Value: aws.String(eventType)},
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
	return sum
}

// TestSpotInterruptTrustsEC2NotTags runs the built bootstrap under two Lambda runtime interface
// emulators against moto and two real workers on the real Kafka, and reproduces what a user
// found:
//
//   - exfiltration: every instance carries a liveagg:admin-endpoint tag naming a listener the
//     test controls; the listener must receive nothing, and the drain must go to the private IP
//     moto reports for the instance. moto's private IPs (10.x) do not exist here and the test
//     never connects to them: LIVEAGG_ADMIN_HOST_OVERRIDE, a test hook, moves the connection for
//     ip:7070 to a loopback proxy in front of the right worker while the request still names
//     ip:7070, and refuses to dial any address it does not list.
//   - stack and group: an instance in the group tagged liveagg:stack=other-stack, and an
//     instance of this stack in another group, are ignored; the worker behind them sees no call.
//   - one event, one drain: the same spot warning is posted at once to both emulators (one
//     emulator serves one invocation at a time, so there are two, as two containers would be):
//     one invocation drains, the other answers already-draining, the worker gets one drain
//     call, and CloudWatch counts the event once with no drain failure.
func TestSpotInterruptTrustsEC2NotTags(t *testing.T) {
	ctx := testenv.Context(t, 4*time.Minute)
	brokers := testenv.KafkaBrokers(t)
	awsEP := testenv.AWSEndpoint(t)
	cfg := testenv.AWSConfig(t)
	dir := t.TempDir()
	liveagg := testenv.Build(t, "../../workers/cmd/liveagg", dir, "liveagg")
	bootstrap := testenv.Build(t, "./bootstrap", dir, "bootstrap", "lambda.norpc")
	if b := os.Getenv("LIVEAGG_TEST_SPOTINTERRUPT_BOOTSTRAP"); b != "" {
		// Another build of the function (an older commit's), to show this test fails on it.
		bootstrap = b
	}
	name := testenv.Name(t, "trust")
	token := "token-" + name

	param := "/" + name + "/admin-token"
	// Overwrite: the name is the test's own, and an SDK retry of a put moto answered late must
	// not fail on the parameter the first attempt made.
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(param),
		Value: aws.String(token), Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	topic := name + "-raw"
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "spec.yaml")
	writeFile(t, specPath, fmt.Sprintf(`
name: %s
input: {topic: %s, time_field: t, partitioned_by: [k]}
key: [k]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: file, path: %q}]
`, name, topic, filepath.Join(dir, "out")))
	workers, admins := map[string]*testenv.Proc{}, map[string]string{}
	for _, id := range []string{"ours", "theirs"} {
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
		admins[id] = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	owns := func(id string, n int) bool {
		var st worker.Status
		return admin.NewClient(admins[id], token, nil).Status(ctx, &st) == nil && len(st.Partitions) == n
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
	waitFor("both workers to share the partitions", func() bool { return owns("ours", 2) && owns("theirs", 2) })

	// Proxies in front of the workers count what reaches each; the trap must stay empty.
	ours, theirs, trap := newListener(t, admins["ours"]), newListener(t, admins["theirs"]), newListener(t, "")

	ec := ec2.NewFromConfig(cfg)
	as := autoscaling.NewFromConfig(cfg)
	group := name
	ids := testenv.AutoScalingGroup(t, ctx, ec, as, group, 0, 4, 2)
	otherGroup := testenv.AutoScalingGroup(t, ctx, ec, as, name+"-other", 0, 1, 1)
	if len(ids) != 2 || len(otherGroup) != 1 {
		t.Fatalf("groups have %d and %d instances", len(ids), len(otherGroup))
	}
	mine, otherStack, otherFleet := ids[0], ids[1], otherGroup[0]
	tag := func(inst, stack string) {
		if _, err := ec.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{inst}, Tags: []ec2types.Tag{
			{Key: aws.String(spotinterrupt.TagStack), Value: aws.String(stack)},
			{Key: aws.String(spot.AdminEndpointTag), Value: aws.String(trap.URL)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	tag(mine, name)
	tag(otherStack, "other-stack")
	tag(otherFleet, name)
	ips := privateIPs(t, ctx, ec, mine, otherStack, otherFleet)
	override := strings.Join([]string{
		ips[mine] + ":7070=" + ours.Listener.Addr().String(),
		ips[otherStack] + ":7070=" + theirs.Listener.Addr().String(),
		ips[otherFleet] + ":7070=" + theirs.Listener.Addr().String(),
	}, ",")

	rec := newRecorder(t, awsEP)
	env := []string{"LIVEAGG_ADMIN_TOKEN_PARAMETER=" + param, "LIVEAGG_STACK=" + name, "LIVEAGG_ASG=" + group,
		"LIVEAGG_ADMIN_HOST_OVERRIDE=" + override, "AWS_ENDPOINT_URL=" + awsEP, "AWS_ENDPOINT_URL_AUTO_SCALING=" + rec.URL,
		"AWS_REGION=" + testenv.Region, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing"}
	lambdas := []*testenv.Lambda{testenv.StartLambda(t, bootstrap, env...), testenv.StartLambda(t, bootstrap, env...)}
	event := func(id, inst string) []byte {
		raw, err := os.ReadFile(filepath.Join("testdata", "spot-interruption-warning.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		ev["id"], ev["time"] = id, time.Now().UTC().Format(time.RFC3339)
		ev["detail"].(map[string]any)["instance-id"] = inst
		body, _ := json.Marshal(ev)
		return body
	}
	invoke := func(l *testenv.Lambda, body []byte) spotinterrupt.Outcome {
		resp, err := l.Invoke(ctx, body)
		if err != nil {
			t.Error(err)
			return spotinterrupt.Outcome{}
		}
		var o spotinterrupt.Outcome
		if err := json.Unmarshal(resp, &o); err != nil {
			t.Errorf("lambda answered %s", resp)
		}
		t.Logf("%s -> %+v", o.Instance, o)
		return o
	}

	// Another stack's instance in this group, and this stack's instance in another group.
	for _, inst := range []string{otherStack, otherFleet} {
		if o := invoke(lambdas[0], event(name+"-"+inst, inst)); o.Action != spotinterrupt.ActionIgnored {
			t.Errorf("instance %s: %+v, want ignored", inst, o)
		}
	}
	if got := theirs.received(); len(got) != 0 {
		t.Errorf("the worker behind the foreign instances received %v", got)
	}

	// The same spot warning for this stack's instance, to both emulators at once. Both are
	// warmed first (an event of another kind, ignored), so neither waits for a cold start and
	// the two invocations overlap.
	warm, err := os.ReadFile(filepath.Join("testdata", "unknown-detail-type.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lambdas {
		if o := invoke(l, warm); o.Action != spotinterrupt.ActionIgnored {
			t.Fatalf("warm-up event: %+v", o)
		}
	}
	body := event(name+"-spot", mine)
	outs := make([]spotinterrupt.Outcome, len(lambdas))
	var wg sync.WaitGroup
	for i, l := range lambdas {
		wg.Go(func() { outs[i] = invoke(l, body) })
	}
	wg.Wait()
	actions := map[string]int{}
	for _, o := range outs {
		actions[o.Action]++
	}
	if actions[spotinterrupt.ActionDrained] != 1 || actions["already-draining"]+actions[spotinterrupt.ActionAlreadyDrained] != 1 {
		t.Errorf("concurrent invocations: %+v, want one drained and one already draining", outs)
	}
	if got := trap.received(); len(got) != 0 {
		t.Fatalf("the listener named by the admin-endpoint tag received %v: the admin token left the fleet", got)
	}
	// Two claims mean both invocations got past their first look before either claim showed;
	// one means the second saw the first's claim at once. Either way one drain is the result;
	// the unit test TestConcurrentInvocationsDrainOnce forces the first case every time.
	if res, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{mine}}); err == nil {
		n := 0
		for _, tg := range res.Reservations[0].Instances[0].Tags {
			if strings.HasPrefix(aws.ToString(tg.Key), "liveagg:claim:") {
				n++
			}
		}
		t.Logf("claims written on the instance: %d", n)
	}
	if n := ours.count("POST", "/v1/drain"); n != 1 {
		t.Errorf("the worker got %d drain calls (%v), want 1", n, ours.received())
	}
	for _, r := range ours.received() {
		if !strings.Contains(r, "host="+ips[mine]+":7070") || !strings.Contains(r, "token=true") {
			t.Errorf("admin request %q: want it addressed to the private IP moto reports, with the token", r)
		}
	}
	waitFor("our worker to exit after its drain", workers["ours"].Exited)
	waitFor("the other worker to take every partition", func() bool { return owns("theirs", 4) })
	if workers["theirs"].Exited() {
		t.Fatalf("the other stack's worker exited:\n%s", tail(workers["theirs"].Log(), 20))
	}

	cw := cloudwatch.NewFromConfig(cfg)
	if n := metricSum(t, ctx, cw, "SpotInterruptionsHandled", spotinterrupt.DetailSpotWarning, group); n != 1 {
		t.Errorf("SpotInterruptionsHandled = %v, want 1", n)
	}
	if n := metricSum(t, ctx, cw, "SpotDrainFailures", spotinterrupt.DetailSpotWarning, group); n != 0 {
		t.Errorf("SpotDrainFailures = %v, want 0", n)
	}
}
