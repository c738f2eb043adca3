package spotinterrupt

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/liveagg/liveagg/workers/admin"
)

const (
	testInstance = "i-1234567890abcdef0"
	testIP       = "10.0.0.5"
	testGroup    = "sampleASG"
	testStack    = "prod"
	testToken    = "token-0123456789abcdef"
)

// fakeAWS is an in-memory stand-in for the four AWS APIs, for the fast tests of the handler's
// decisions; the integration tests run the built handler against moto and real workers.
// Like EC2, it shows a tag write to DescribeInstances only after lag: the claim protocol is
// built for that.
type fakeAWS struct {
	mu        sync.Mutex
	lag       time.Duration
	instances map[string]*fakeInstance
	groups    map[string][]string // group -> instances, for DescribeAutoScalingGroups
	rebalance bool
	completed []string
	replaced  []string
	metrics   []string
}

type fakeInstance struct {
	ip     string
	tags   map[string]string // visible at once
	writes []tagWrite
}

type tagWrite struct {
	at         time.Time
	key, value string
}

func newFake(tags map[string]string) *fakeAWS {
	f := &fakeAWS{instances: map[string]*fakeInstance{}, groups: map[string][]string{testGroup: {testInstance}}}
	if tags != nil {
		f.instances[testInstance] = &fakeInstance{ip: testIP, tags: clone(tags)}
	}
	return f
}

func clone(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (f *fakeAWS) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, ok := f.instances[in.InstanceIds[0]]
	if !ok {
		return &ec2.DescribeInstancesOutput{}, nil
	}
	tags := clone(fi.tags)
	for _, w := range fi.writes {
		if time.Since(w.at) >= f.lag {
			tags[w.key] = w.value
		}
	}
	inst := ec2types.Instance{InstanceId: aws.String(in.InstanceIds[0])}
	if fi.ip != "" {
		inst.PrivateIpAddress = aws.String(fi.ip)
	}
	for k, v := range tags {
		inst.Tags = append(inst.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: []ec2types.Instance{inst}}}}, nil
}

func (f *fakeAWS) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi := f.instances[in.Resources[0]]
	for _, t := range in.Tags {
		fi.writes = append(fi.writes, tagWrite{time.Now(), aws.ToString(t.Key), aws.ToString(t.Value)})
	}
	return &ec2.CreateTagsOutput{}, nil
}

// tag reads a tag as it stands once every write is visible.
func (f *fakeAWS) tag(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi := f.instances[testInstance]
	v := fi.tags[key]
	for _, w := range fi.writes {
		if w.key == key {
			v = w.value
		}
	}
	return v
}

func (f *fakeAWS) DescribeAutoScalingGroups(_ context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, _ ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out autoscaling.DescribeAutoScalingGroupsOutput
	for _, name := range in.AutoScalingGroupNames {
		ids, ok := f.groups[name]
		if !ok {
			continue
		}
		g := astypes.AutoScalingGroup{AutoScalingGroupName: aws.String(name), CapacityRebalance: aws.Bool(f.rebalance)}
		for _, id := range ids {
			g.Instances = append(g.Instances, astypes.Instance{InstanceId: aws.String(id)})
		}
		out.AutoScalingGroups = append(out.AutoScalingGroups, g)
	}
	return &out, nil
}

func (f *fakeAWS) CompleteLifecycleAction(_ context.Context, in *autoscaling.CompleteLifecycleActionInput, _ ...func(*autoscaling.Options)) (*autoscaling.CompleteLifecycleActionOutput, error) {
	f.mu.Lock()
	f.completed = append(f.completed, aws.ToString(in.LifecycleActionResult))
	f.mu.Unlock()
	return &autoscaling.CompleteLifecycleActionOutput{}, nil
}

func (f *fakeAWS) TerminateInstanceInAutoScalingGroup(_ context.Context, in *autoscaling.TerminateInstanceInAutoScalingGroupInput, _ ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error) {
	f.mu.Lock()
	f.replaced = append(f.replaced, aws.ToString(in.InstanceId))
	f.mu.Unlock()
	return &autoscaling.TerminateInstanceInAutoScalingGroupOutput{}, nil
}

func (f *fakeAWS) GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Value: aws.String(testToken)}}, nil
}

func (f *fakeAWS) PutMetricData(_ context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	f.mu.Lock()
	for _, d := range in.MetricData {
		f.metrics = append(f.metrics, aws.ToString(d.MetricName))
	}
	f.mu.Unlock()
	return &cloudwatch.PutMetricDataOutput{}, nil
}

// count returns how many times metric was published.
func (f *fakeAWS) count(metric string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.metrics {
		if m == metric {
			n++
		}
	}
	return n
}

func (f *fakeAWS) lifecycles() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.completed)
}

// fakeWorker counts the admin calls and remembers where they were meant to go.
type fakeWorker struct {
	mu        sync.Mutex
	drains    int
	endpoints []string
	fail      error
	onDrain   func()
	hold      time.Duration
	// started, if set, is closed when the first Drain begins: a test that acts during a drain
	// waits for it rather than for a pause a loaded machine may outlast.
	started   chan struct{}
	startOnce sync.Once
}

func (w *fakeWorker) Checkpoint(context.Context) (admin.Result, error) { return admin.Result{}, nil }
func (w *fakeWorker) Drain(context.Context) (admin.Result, error) {
	if w.started != nil {
		w.startOnce.Do(func() { close(w.started) })
	}
	time.Sleep(w.hold)
	w.mu.Lock()
	w.drains++
	w.mu.Unlock()
	if w.onDrain != nil {
		w.onDrain()
	}
	return admin.Result{Done: true}, w.fail
}

func (w *fakeWorker) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drains
}

func (w *fakeWorker) client(endpoint, _ string) Worker {
	w.mu.Lock()
	w.endpoints = append(w.endpoints, endpoint)
	w.mu.Unlock()
	return w
}

var testConfig = Config{Stack: testStack, Groups: []string{testGroup}, TokenParameter: "/liveagg/token"}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestHandler(f *fakeAWS, w *fakeWorker, opts ...Option) *Handler {
	return New(f, f, f, f, testConfig, quiet(), append([]Option{WithWorkerClient(w.client), WithClaimSettle(0)}, opts...)...)
}

// sample reads a testdata event, with its time set to now and edit applied, as the raw JSON the
// runtime passes on.
func sample(t *testing.T, file string, edit func(map[string]any)) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev["time"] = time.Now().UTC().Format(time.RFC3339)
	if edit != nil {
		edit(ev)
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func withID(id string) func(map[string]any) { return func(ev map[string]any) { ev["id"] = id } }

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func tagInput(key, value string) *ec2.CreateTagsInput {
	return &ec2.CreateTagsInput{Resources: []string{testInstance}, Tags: []ec2types.Tag{{Key: aws.String(key), Value: aws.String(value)}}}
}
