package spotinterrupt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/metrics"
	"github.com/liveagg/liveagg/workers/spot"
)

// Tags the handler reads and writes on instances.
const (
	// TagStack marks an instance as part of a liveagg stack; others are ignored.
	TagStack = "liveagg:stack"
	// TagDrained records that an event's drain was done, so a redelivered event (or a second
	// event for the same instance) does not do it again.
	TagDrained = "liveagg:drained"
	tagASG     = "aws:autoscaling:groupName"
)

// EC2 is the part of the EC2 API the handler uses.
type EC2 interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// AutoScaling is the part of the Auto Scaling API the handler uses.
type AutoScaling interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	CompleteLifecycleAction(context.Context, *autoscaling.CompleteLifecycleActionInput, ...func(*autoscaling.Options)) (*autoscaling.CompleteLifecycleActionOutput, error)
	TerminateInstanceInAutoScalingGroup(context.Context, *autoscaling.TerminateInstanceInAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error)
}

// SSM is the part of the SSM API the handler uses: the admin token.
type SSM interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// CloudWatch is the part of the CloudWatch API the handler uses.
type CloudWatch interface {
	PutMetricData(context.Context, *cloudwatch.PutMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// Worker is a worker's admin API, as workers/admin's client serves it.
type Worker interface {
	Checkpoint(context.Context) (admin.Result, error)
	Drain(context.Context) (admin.Result, error)
}

// Handler handles interruption events. Build it in main with New.
type Handler struct {
	ec2   EC2
	asg   AutoScaling
	ssm   SSM
	cw    CloudWatch
	log   *slog.Logger
	param string
	// worker makes an admin client for an endpoint and token.
	worker func(endpoint, token string) Worker
	// notice is how long after its event time a spot warning's instance may be reclaimed.
	notice time.Duration
	now    func() time.Time

	mu      sync.Mutex
	token   string
	tokenAt time.Time
	done    map[string]Outcome // event id -> outcome, for redeliveries to this container
}

// Option configures a Handler.
type Option func(*Handler)

// WithWorkerClient replaces how admin clients are made (tests point it elsewhere).
func WithWorkerClient(f func(endpoint, token string) Worker) Option {
	return func(h *Handler) { h.worker = f }
}

// WithNotice sets the time between an event and the instance's end (default 2 minutes).
func WithNotice(d time.Duration) Option { return func(h *Handler) { h.notice = d } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// New returns a handler; tokenParameter names the SSM SecureString that holds the workers'
// admin token.
func New(e EC2, a AutoScaling, s SSM, c CloudWatch, tokenParameter string, log *slog.Logger, opts ...Option) *Handler {
	h := &Handler{ec2: e, asg: a, ssm: s, cw: c, param: tokenParameter, log: log, notice: 2 * time.Minute,
		now: time.Now, done: map[string]Outcome{},
		worker: func(endpoint, token string) Worker { return admin.NewClient(endpoint, token, nil) }}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Outcome says what the handler did with one event; it is the Lambda's response.
type Outcome struct {
	EventID  string `json:"event_id"`
	Kind     string `json:"kind"`
	Instance string `json:"instance,omitempty"`
	// Action is drained, already-drained, ignored or failed.
	Action       string  `json:"action"`
	Reason       string  `json:"reason,omitempty"`
	Group        string  `json:"group,omitempty"`
	DrainSeconds float64 `json:"drain_seconds,omitempty"`
	// Lifecycle is the result the lifecycle action was completed with (CONTINUE, ABANDON).
	Lifecycle   string `json:"lifecycle,omitempty"`
	Replacement bool   `json:"replacement,omitempty"`
}

// Actions of an Outcome.
const (
	ActionDrained        = "drained"
	ActionAlreadyDrained = "already-drained"
	ActionIgnored        = "ignored"
	ActionFailed         = "failed"
)

// Handle is the Lambda entry point. It returns an error only for failures worth a retry (an AWS
// API that did not answer); an event it cannot or need not act on, or a worker that did not
// drain in time, is an Outcome.
func (h *Handler) Handle(ctx context.Context, ev events.CloudWatchEvent) (Outcome, error) {
	n, err := FromEvent(ev)
	out := Outcome{EventID: ev.ID, Kind: ev.DetailType, Instance: n.InstanceID}
	if err != nil {
		out.Action, out.Reason = ActionIgnored, err.Error()
		h.log.Warn("event ignored", "event", ev.ID, "detail_type", ev.DetailType, "reason", err)
		return out, nil
	}
	h.mu.Lock()
	prev, seen := h.done[n.EventID]
	h.mu.Unlock()
	if seen {
		h.log.Info("event already handled", "event", n.EventID, "action", prev.Action)
		return prev, nil
	}
	out, err = h.handle(ctx, n, out)
	if err != nil {
		return out, err
	}
	h.mu.Lock()
	h.done[n.EventID] = out
	h.mu.Unlock()
	return out, nil
}

func (h *Handler) handle(ctx context.Context, n Notice, out Outcome) (Outcome, error) {
	// Everything must finish before the instance is gone: two minutes after a spot warning's
	// event time, less a margin for completing the lifecycle action and publishing. An event
	// delivered late still gets a few seconds: the instance may outlive its notice. (The
	// Lambda's own timeout bounds ctx as well.)
	deadline := h.now().Add(h.notice - 10*time.Second)
	if !n.Time.IsZero() {
		deadline = n.Time.Add(h.notice - 10*time.Second)
	}
	if least := h.now().Add(min(5*time.Second, h.notice/2)); deadline.Before(least) {
		deadline = least
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	inst, err := h.instance(dctx, n.InstanceID)
	if err != nil {
		return out, err
	}
	if inst == nil {
		out.Action, out.Reason = ActionIgnored, "instance not found"
		h.log.Info("event ignored: instance not found", "event", n.EventID, "instance", n.InstanceID)
		return out, nil
	}
	tags := map[string]string{}
	for _, t := range inst.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	if _, ours := tags[TagStack]; !ours {
		out.Action, out.Reason = ActionIgnored, "instance is not tagged "+TagStack
		h.log.Info("event ignored: not a liveagg instance", "event", n.EventID, "instance", n.InstanceID)
		if n.Lifecycle != nil {
			// Not ours, but a hook someone pointed here still must not hang the group.
			out.Lifecycle = h.complete(ctx, n, "CONTINUE")
		}
		return out, nil
	}
	out.Group = tags[tagASG]
	if n.Lifecycle != nil {
		out.Group = n.Lifecycle.Group
	}

	// The same event delivered again to another container (the done cache is per container):
	// handled already, and counting it again would inflate the autoscaler's spot headroom.
	redelivered := tags[TagDrained] == n.EventID
	if tags[TagDrained] != "" {
		out.Action, out.Reason = ActionAlreadyDrained, "drained for event "+tags[TagDrained]
		h.log.Info("worker already drained", "event", n.EventID, "instance", n.InstanceID, "by", tags[TagDrained])
	} else {
		out = h.drain(dctx, n, tags, out)
	}

	result := "CONTINUE"
	if out.Action == ActionFailed {
		// The instance terminates either way; ABANDON says the hand-over was not clean, and
		// the partitions move when the worker's session expires.
		result = "ABANDON"
	}
	if n.Lifecycle != nil {
		out.Lifecycle = h.complete(ctx, n, result)
	} else if out.Action == ActionDrained && out.Group != "" {
		out.Replacement = h.replace(ctx, n, out.Group)
	}
	if !redelivered {
		h.publish(ctx, n, out)
	}
	return out, nil
}

// instance describes one instance; nil when it does not exist.
func (h *Handler) instance(ctx context.Context, id string) (*ec2types.Instance, error) {
	res, err := h.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		var nf interface{ ErrorCode() string }
		if errors.As(err, &nf) && nf.ErrorCode() == "InvalidInstanceID.NotFound" {
			return nil, nil
		}
		return nil, fmt.Errorf("describe instance %s: %w", id, err)
	}
	for _, r := range res.Reservations {
		for i := range r.Instances {
			return &r.Instances[i], nil
		}
	}
	return nil, nil
}

// drain checkpoints and drains the instance's worker, then marks the instance drained.
func (h *Handler) drain(ctx context.Context, n Notice, tags map[string]string, out Outcome) Outcome {
	endpoint := tags[spot.AdminEndpointTag]
	if endpoint == "" {
		out.Action, out.Reason = ActionFailed, "instance has no "+spot.AdminEndpointTag+" tag: its worker never published its admin endpoint"
		h.log.Error("cannot drain", "event", n.EventID, "instance", n.InstanceID, "reason", out.Reason)
		return out
	}
	token, err := h.adminToken(ctx)
	if err != nil {
		out.Action, out.Reason = ActionFailed, err.Error()
		h.log.Error("cannot drain: admin token", "event", n.EventID, "err", err)
		return out
	}
	w := h.worker(endpoint, token)
	start := h.now()
	// Checkpoint first: a drain that runs out of time still leaves the newest state durable.
	// It gets at most half the time left, so a worker slow to checkpoint still gets to leave
	// its group and hand its partitions over.
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		cctx, cancel = context.WithTimeout(ctx, time.Until(dl)/2)
	}
	_, err = w.Checkpoint(cctx)
	cancel()
	if err != nil {
		h.log.Warn("checkpoint before drain failed; draining anyway", "instance", n.InstanceID, "endpoint", endpoint, "err", err)
	}
	if _, err := w.Drain(ctx); err != nil {
		out.Action, out.Reason = ActionFailed, fmt.Sprintf("drain %s: %v", endpoint, err)
		out.DrainSeconds = h.now().Sub(start).Seconds()
		h.log.Error("worker did not drain; its partitions move when its session expires", "event", n.EventID,
			"instance", n.InstanceID, "endpoint", endpoint, "seconds", out.DrainSeconds, "err", err)
		return out
	}
	out.Action, out.DrainSeconds = ActionDrained, h.now().Sub(start).Seconds()
	h.log.Info("worker drained", "event", n.EventID, "instance", n.InstanceID, "seconds", out.DrainSeconds)
	if _, err := h.ec2.CreateTags(context.WithoutCancel(ctx), &ec2.CreateTagsInput{Resources: []string{n.InstanceID},
		Tags: []ec2types.Tag{{Key: aws.String(TagDrained), Value: aws.String(n.EventID)}}}); err != nil {
		h.log.Warn("could not mark the instance drained; a redelivered event would drain again (harmless)", "err", err)
	}
	return out
}

// adminToken reads the admin token from SSM, cached for 5 minutes across invocations.
func (h *Handler) adminToken(ctx context.Context) (string, error) {
	h.mu.Lock()
	if h.token != "" && h.now().Sub(h.tokenAt) < 5*time.Minute {
		t := h.token
		h.mu.Unlock()
		return t, nil
	}
	h.mu.Unlock()
	t, err := spot.Token(ctx, h.ssm, h.param)
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	h.token, h.tokenAt = t, h.now()
	h.mu.Unlock()
	return t, nil
}

// complete completes a lifecycle action with result and returns it ("" if the call failed).
func (h *Handler) complete(ctx context.Context, n Notice, result string) string {
	_, err := h.asg.CompleteLifecycleAction(context.WithoutCancel(ctx), &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String(n.Lifecycle.Group), LifecycleHookName: aws.String(n.Lifecycle.Hook),
		LifecycleActionToken: aws.String(n.Lifecycle.Token), InstanceId: aws.String(n.InstanceID),
		LifecycleActionResult: aws.String(result),
	})
	if err != nil {
		h.log.Error("complete lifecycle action failed; the hook times out on its own", "event", n.EventID, "err", err)
		return ""
	}
	return result
}

// replace asks the group for a replacement now, unless capacity rebalancing launches one
// already: the drained instance is terminated without lowering the desired capacity.
func (h *Handler) replace(ctx context.Context, n Notice, group string) bool {
	ctx = context.WithoutCancel(ctx)
	res, err := h.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil || len(res.AutoScalingGroups) == 0 {
		h.log.Warn("cannot read the group; no replacement asked", "group", group, "err", err)
		return false
	}
	if aws.ToBool(res.AutoScalingGroups[0].CapacityRebalance) {
		h.log.Info("capacity rebalancing replaces the instance", "group", group)
		return false
	}
	if _, err := h.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(n.InstanceID), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}); err != nil {
		h.log.Warn("replacement not asked", "group", group, "err", err)
		return false
	}
	h.log.Info("drained instance terminated in its group, which launches a replacement", "group", group, "instance", n.InstanceID)
	return true
}

// publish records the event in CloudWatch: handled, drain seconds, failures.
func (h *Handler) publish(ctx context.Context, n Notice, out Outcome) {
	dims := []cwtypes.Dimension{{Name: aws.String("EventType"), Value: aws.String(n.Kind)}}
	if out.Group != "" {
		dims = append(dims, cwtypes.Dimension{Name: aws.String("AutoScalingGroup"), Value: aws.String(out.Group)})
	}
	at := aws.Time(h.now())
	datum := func(m metrics.Metric, v float64) cwtypes.MetricDatum {
		return cwtypes.MetricDatum{MetricName: aws.String(m.CloudWatch), Value: aws.Float64(v), Unit: cwtypes.StandardUnit(m.Unit), Dimensions: dims, Timestamp: at}
	}
	data := []cwtypes.MetricDatum{datum(metrics.SpotInterruptions, 1)}
	if out.Action == ActionFailed {
		data = append(data, datum(metrics.SpotDrainFailures, 1))
	}
	if out.DrainSeconds > 0 {
		data = append(data, datum(metrics.DrainSeconds, out.DrainSeconds))
	}
	if _, err := h.cw.PutMetricData(context.WithoutCancel(ctx), &cloudwatch.PutMetricDataInput{
		Namespace: aws.String(metrics.Namespace), MetricData: data}); err != nil {
		h.log.Warn("metrics not published", "err", err)
	}
}
