package spotinterrupt

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/spot"
)

func TestParseSamples(t *testing.T) {
	for _, tc := range []struct {
		file, kind, instance string
		lifecycle            bool
		err                  string
	}{
		{"spot-interruption-warning.json", DetailSpotWarning, "i-1234567890abcdef0", false, ""},
		{"rebalance-recommendation.json", DetailRebalance, "i-1234567890abcdef0", false, ""},
		{"lifecycle-terminate.json", DetailLifecycle, "i-1234567890abcdef0", true, ""},
		{"malformed-no-instance.json", "", "", false, "without an instance id"},
		{"unknown-detail-type.json", "", "", false, "not one this function handles"},
		{"truncated.json", "", "", false, "bad event"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			n, err := Parse(raw)
			if tc.err != "" {
				if !errors.Is(err, ErrBadEvent) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Kind != tc.kind || n.InstanceID != tc.instance || (n.Lifecycle != nil) != tc.lifecycle || n.Time.IsZero() {
				t.Fatalf("parsed %+v", n)
			}
			if tc.lifecycle && (n.Lifecycle.Group != "sampleASG" || n.Lifecycle.Token == "" || n.Lifecycle.Hook == "") {
				t.Fatalf("lifecycle %+v", n.Lifecycle)
			}
		})
	}
}

// fakeAWS is an in-memory stand-in for the four AWS APIs, for the fast table-driven tests of
// the handler's decisions; the integration test runs the same handler against moto, a real
// worker and a recording Auto Scaling endpoint.
type fakeAWS struct {
	mu        sync.Mutex
	tags      map[string]map[string]string // instance -> tags
	rebalance bool
	completed []string
	replaced  []string
	metrics   []string
}

func (f *fakeAWS) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tags, ok := f.tags[in.InstanceIds[0]]
	if !ok {
		return &ec2.DescribeInstancesOutput{}, nil
	}
	inst := ec2types.Instance{InstanceId: aws.String(in.InstanceIds[0])}
	for k, v := range tags {
		inst.Tags = append(inst.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: []ec2types.Instance{inst}}}}, nil
}

func (f *fakeAWS) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range in.Tags {
		f.tags[in.Resources[0]][aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return &ec2.CreateTagsOutput{}, nil
}

func (f *fakeAWS) DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
	return &autoscaling.DescribeAutoScalingGroupsOutput{AutoScalingGroups: []astypes.AutoScalingGroup{{CapacityRebalance: aws.Bool(f.rebalance)}}}, nil
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
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Value: aws.String("token-0123456789abcdef")}}, nil
}

func (f *fakeAWS) PutMetricData(_ context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	f.mu.Lock()
	for _, d := range in.MetricData {
		f.metrics = append(f.metrics, aws.ToString(d.MetricName))
	}
	f.mu.Unlock()
	return &cloudwatch.PutMetricDataOutput{}, nil
}

type fakeWorker struct {
	drains int
	fail   error
}

func (w *fakeWorker) Checkpoint(context.Context) (admin.Result, error) { return admin.Result{}, nil }
func (w *fakeWorker) Drain(ctx context.Context) (admin.Result, error) {
	w.drains++
	return admin.Result{}, w.fail
}

func sample(t *testing.T, file string) events.CloudWatchEvent {
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev.Time = time.Now()
	return ev
}

func TestHandlerDecisions(t *testing.T) {
	const id = "i-1234567890abcdef0"
	ours := map[string]string{TagStack: "prod", spot.AdminEndpointTag: "http://127.0.0.1:1", "aws:autoscaling:groupName": "sampleASG"}
	for _, tc := range []struct {
		name       string
		file       string
		tags       map[string]string
		rebalance  bool
		drainErr   error
		action     string
		lifecycle  string
		replaced   bool
		drains     int
		wantMetric string
	}{
		{"spot warning drains and asks a replacement", "spot-interruption-warning.json", ours, false, nil, ActionDrained, "", true, 1, "SpotInterruptionsHandled"},
		{"capacity rebalancing replaces by itself", "spot-interruption-warning.json", ours, true, nil, ActionDrained, "", false, 1, "DrainSeconds"},
		{"rebalance recommendation", "rebalance-recommendation.json", ours, false, nil, ActionDrained, "", true, 1, "SpotInterruptionsHandled"},
		{"lifecycle hook completes with CONTINUE", "lifecycle-terminate.json", ours, false, nil, ActionDrained, "CONTINUE", false, 1, "DrainSeconds"},
		{"failed drain abandons the hook", "lifecycle-terminate.json", ours, false, errors.New("timeout"), ActionFailed, "ABANDON", false, 1, "SpotDrainFailures"},
		{"not our instance", "spot-interruption-warning.json", map[string]string{"Name": "web"}, false, nil, ActionIgnored, "", false, 0, ""},
		{"not ours, but its hook still completes", "lifecycle-terminate.json", map[string]string{"Name": "web"}, false, nil, ActionIgnored, "CONTINUE", false, 0, ""},
		{"no admin endpoint", "spot-interruption-warning.json", map[string]string{TagStack: "prod"}, false, nil, ActionFailed, "", false, 0, "SpotDrainFailures"},
		{"already drained", "spot-interruption-warning.json", map[string]string{TagStack: "prod", TagDrained: "earlier"}, false, nil, ActionAlreadyDrained, "", false, 0, "SpotInterruptionsHandled"},
		{"unknown instance", "spot-interruption-warning.json", nil, false, nil, ActionIgnored, "", false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAWS{tags: map[string]map[string]string{}, rebalance: tc.rebalance}
			if tc.tags != nil {
				f.tags[id] = map[string]string{}
				for k, v := range tc.tags {
					f.tags[id][k] = v
				}
			}
			w := &fakeWorker{fail: tc.drainErr}
			h := New(f, f, f, f, "/liveagg/token", slog.New(slog.NewTextHandler(io.Discard, nil)),
				WithWorkerClient(func(string, string) Worker { return w }))
			ev := sample(t, tc.file)
			out, err := h.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if out.Action != tc.action || out.Lifecycle != tc.lifecycle || out.Replacement != tc.replaced || w.drains != tc.drains {
				t.Fatalf("outcome %+v, drains %d", out, w.drains)
			}
			if tc.wantMetric != "" && !strings.Contains(strings.Join(f.metrics, " "), tc.wantMetric) {
				t.Errorf("metrics %v lack %s", f.metrics, tc.wantMetric)
			}
			// The same event again: no second drain, the same answer.
			again, err := h.Handle(context.Background(), ev)
			if err != nil || again != out || w.drains != tc.drains {
				t.Fatalf("redelivery: %+v %v, drains %d", again, err, w.drains)
			}
			// Another event for a drained instance, in a fresh container: the tag stops it.
			if out.Action == ActionDrained {
				h2 := New(f, f, f, f, "/liveagg/token", slog.New(slog.NewTextHandler(io.Discard, nil)),
					WithWorkerClient(func(string, string) Worker { return w }))
				first := ev.ID
				ev.ID = "another-delivery"
				o2, err := h2.Handle(context.Background(), ev)
				if err != nil || o2.Action != ActionAlreadyDrained || w.drains != tc.drains {
					t.Fatalf("second event: %+v %v, drains %d", o2, err, w.drains)
				}
				// The first event redelivered to a third container is not counted again: the
				// autoscaler sizes its spare capacity from the count.
				published := len(f.metrics)
				h3 := New(f, f, f, f, "/liveagg/token", slog.New(slog.NewTextHandler(io.Discard, nil)),
					WithWorkerClient(func(string, string) Worker { return w }))
				ev.ID = first
				o3, err := h3.Handle(context.Background(), ev)
				if err != nil || o3.Action != ActionAlreadyDrained || w.drains != tc.drains || len(f.metrics) != published {
					t.Fatalf("redelivered to another container: %+v %v, drains %d, metrics %v", o3, err, w.drains, f.metrics[published:])
				}
			}
		})
	}
}

type hangingWorker struct{}

func (hangingWorker) Checkpoint(ctx context.Context) (admin.Result, error) {
	<-ctx.Done()
	return admin.Result{}, ctx.Err()
}
func (hangingWorker) Drain(ctx context.Context) (admin.Result, error) {
	<-ctx.Done()
	return admin.Result{}, ctx.Err()
}

// TestWorkerThatDoesNotAnswer: the handler gives up at the notice's end, reports a failure and
// still completes the hook, instead of hanging the Lambda.
func TestWorkerThatDoesNotAnswer(t *testing.T) {
	f := &fakeAWS{tags: map[string]map[string]string{"i-1234567890abcdef0": {TagStack: "prod", spot.AdminEndpointTag: "http://127.0.0.1:1"}}}
	h := New(f, f, f, f, "/p", slog.New(slog.NewTextHandler(io.Discard, nil)), WithNotice(12*time.Second),
		WithWorkerClient(func(string, string) Worker { return hangingWorker{} }))
	start := time.Now()
	out, err := h.Handle(context.Background(), sample(t, "lifecycle-terminate.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("took %v; the deadline is the notice less a margin", d)
	}
	if out.Action != ActionFailed || out.Lifecycle != "ABANDON" || !strings.Contains(out.Reason, "deadline") {
		t.Fatalf("outcome %+v", out)
	}
}

type hangingCheckpointWorker struct{ hangingWorker }

func (hangingCheckpointWorker) Drain(ctx context.Context) (admin.Result, error) {
	return admin.Result{}, ctx.Err() // drains at once, if any time is left
}

// A checkpoint that hangs gets half the notice, not all of it: the drain that hands the
// partitions over still runs.
func TestCheckpointThatHangsLeavesTimeToDrain(t *testing.T) {
	f := &fakeAWS{tags: map[string]map[string]string{"i-1234567890abcdef0": {TagStack: "prod", spot.AdminEndpointTag: "http://127.0.0.1:1"}}}
	h := New(f, f, f, f, "/p", slog.New(slog.NewTextHandler(io.Discard, nil)), WithNotice(12*time.Second),
		WithWorkerClient(func(string, string) Worker { return hangingCheckpointWorker{} }))
	out, err := h.Handle(context.Background(), sample(t, "lifecycle-terminate.json"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != ActionDrained || out.Lifecycle != "CONTINUE" {
		t.Fatalf("outcome %+v", out)
	}
}
