package spotinterrupt

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

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
	// TagStack marks an instance as part of a liveagg stack; the handler acts only on
	// instances whose value is its own stack.
	TagStack = "liveagg:stack"
	// TagDrained records which event's drain was done, so later events for the instance (and
	// redeliveries) do not do it again. Claims (TagClaimPrefix) cover the drain while it runs.
	TagDrained = "liveagg:drained"
	// tagASG is written by Auto Scaling itself; the aws: prefix is reserved, so no one else can.
	tagASG = "aws:autoscaling:groupName"
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
	ec2    EC2
	asg    AutoScaling
	ssm    SSM
	cw     CloudWatch
	log    *slog.Logger
	param  string
	stack  string
	groups []string
	// worker makes an admin client for an endpoint and token.
	worker func(endpoint, token string) Worker
	// notice is how long after its event time a spot warning's instance may be reclaimed.
	notice       time.Duration
	settle       time.Duration
	port         int
	tls          *tls.Config
	dialOverride map[string]string
	now          func() time.Time
	invocation   func(context.Context) string

	mu      sync.Mutex
	token   string
	tokenAt time.Time
	done    map[string]Outcome // event id -> outcome, for redeliveries to this container
}

// Option configures a Handler.
type Option func(*Handler)

// WithWorkerClient replaces how admin clients are made (tests count calls with it). The
// default is workers/admin's client over the handler's own HTTP client (see WithAdminTLS).
func WithWorkerClient(f func(endpoint, token string) Worker) Option {
	return func(h *Handler) { h.worker = f }
}

// WithNotice sets the time between an event and the instance's end (default 2 minutes). It is
// also how long a claim on a drain stands.
func WithNotice(d time.Duration) Option { return func(h *Handler) { h.notice = d } }

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// WithClaimSettle sets how long an invocation waits between writing its claim and reading
// everyone's (default 2 s; see TagClaimPrefix).
func WithClaimSettle(d time.Duration) Option { return func(h *Handler) { h.settle = d } }

// WithAdminPort sets the workers' admin API port (default DefaultAdminPort, 7070).
func WithAdminPort(p int) Option { return func(h *Handler) { h.port = p } }

// WithAdminTLS makes admin calls over HTTPS, verified with c (build it with AdminTLS). The
// default, nil, is plain HTTP: acceptable only while the admin port is open to this function's
// security group alone, as modules/spot-workers does.
func WithAdminTLS(c *tls.Config) Option { return func(h *Handler) { h.tls = c } }

// WithAdminDialOverride is a test hook: it maps the address the handler would dial (the
// private ip:port EC2 reports, which does not exist on a test machine) to a loopback address
// where a test's worker listens. Requests keep their URL, Host and TLS server name; only the
// TCP connection goes elsewhere, and an address not in the map is not dialled at all. Default:
// none. Deployments never set it (ParseDialOverride refuses targets off the loopback).
func WithAdminDialOverride(m map[string]string) Option {
	return func(h *Handler) { h.dialOverride = m }
}

// withInvocation sets how an invocation is named in its claim (tests).
func withInvocation(f func(context.Context) string) Option {
	return func(h *Handler) { h.invocation = f }
}

// New returns a handler for cfg's stack and groups.
func New(e EC2, a AutoScaling, s SSM, c CloudWatch, cfg Config, log *slog.Logger, opts ...Option) *Handler {
	h := &Handler{ec2: e, asg: a, ssm: s, cw: c, param: cfg.TokenParameter, stack: cfg.Stack, groups: slices.Clone(cfg.Groups),
		log: log, notice: 2 * time.Minute, settle: 2 * time.Second, port: DefaultAdminPort,
		now: time.Now, invocation: invocationID, done: map[string]Outcome{}}
	for _, o := range opts {
		o(h)
	}
	if h.worker == nil {
		hc := h.adminHTTPClient()
		h.worker = func(endpoint, token string) Worker { return admin.NewClient(endpoint, token, hc) }
	}
	return h
}

// Outcome says what the handler did with one event; it is the Lambda's response.
type Outcome struct {
	EventID  string `json:"event_id"`
	Kind     string `json:"kind"`
	Instance string `json:"instance,omitempty"`
	// Action is drained, already-draining, already-drained, ignored or failed.
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
	ActionDrained = "drained"
	// ActionAlreadyDraining: another invocation holds the drain (the same event delivered
	// twice, or another event for the instance); not a failure.
	ActionAlreadyDraining = "already-draining"
	ActionAlreadyDrained  = "already-drained"
	ActionIgnored         = "ignored"
	ActionFailed          = "failed"
)

// Handle is the Lambda entry point. It takes the event undecoded so that a malformed one is
// answered with an error that says what is wrong with it (the runtime's own decoding says only
// "unexpected EOF"); such events wrap ErrBadEvent and end in the dead-letter queue. Otherwise it
// returns an error only for failures worth a retry (an AWS API that did not answer); an event
// it cannot or need not act on, or a worker that did not drain in time, is an Outcome.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (Outcome, error) {
	n, err := Parse(raw)
	out := Outcome{EventID: n.EventID, Kind: n.Kind, Instance: n.InstanceID}
	if errors.Is(err, ErrNotHandled) {
		out.Action, out.Reason = ActionIgnored, err.Error()
		h.log.Info("event ignored", "event", n.EventID, "detail_type", n.Kind, "reason", err)
		return out, nil
	}
	if err != nil {
		h.log.Error("bad event", "event", n.EventID, "err", err, "bytes", len(raw))
		return out, err
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
	if least := h.now().Add(min(5*time.Second+h.settle, h.notice/2)); deadline.Before(least) {
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
	tags := tagMap(inst)
	out.Group = tags[tagASG]
	// A hook of one of this function's groups is completed whatever is decided below, so the
	// group never waits for the hook's timeout; anyone else's is not this function's to touch.
	ownHook := n.Lifecycle != nil && slices.Contains(h.groups, n.Lifecycle.Group)
	if reason, err := h.foreign(dctx, n, tags); err != nil {
		return out, err
	} else if reason != "" {
		out.Action, out.Reason = ActionIgnored, reason
		h.log.Info("event ignored: not this function's instance", "event", n.EventID, "instance", n.InstanceID, "reason", reason)
		if ownHook {
			out.Lifecycle = h.complete(ctx, n, "CONTINUE")
		}
		return out, nil
	}
	if out.Group == "" && n.Lifecycle != nil {
		out.Group = n.Lifecycle.Group
	}

	// The same event delivered again after its drain: the answer it had, counted once.
	if tags[TagDrained] == n.EventID {
		out.Action, out.Reason = ActionAlreadyDrained, "drained for this event already"
		h.log.Info("event already handled", "event", n.EventID, "instance", n.InstanceID)
		if n.Lifecycle != nil {
			out.Lifecycle = h.complete(ctx, n, "CONTINUE")
		}
		return out, nil
	}
	me := claim{By: h.invocation(ctx), At: h.now(), State: claimHeld, Event: n.EventID}
	if dup, ok := h.duplicate(claims(tags), n.EventID, me.By); ok {
		return h.duplicateOutcome(n, out, dup), nil
	}
	if tags, err = h.takeClaim(dctx, n, me); err != nil {
		return out, err
	}
	cs := claims(tags)
	if dup, ok := h.duplicate(cs, n.EventID, me.By); ok && dup.before(me) {
		return h.duplicateOutcome(n, out, dup), nil
	}

	// This invocation speaks for its event: it counts it, and completes its lifecycle action.
	switch first, _ := h.firstHeld(cs); {
	case tags[TagDrained] != "":
		out.Action, out.Reason = ActionAlreadyDrained, "drained for event "+tags[TagDrained]
		h.log.Info("worker already drained", "event", n.EventID, "instance", n.InstanceID, "by", tags[TagDrained])
	case first.By != "" && first.By != me.By:
		out.Action, out.Reason = ActionAlreadyDraining, "draining for event "+first.Event
		h.log.Info("worker already draining", "event", n.EventID, "instance", n.InstanceID, "by_event", first.Event, "by", first.By)
		if n.Lifecycle != nil {
			// Completing now would terminate the instance under the running drain.
			out.Lifecycle = h.complete(ctx, n, h.awaitDrain(dctx, n, first))
		}
		h.publish(ctx, n, out)
		return out, nil
	default:
		out = h.drain(dctx, n, inst, tags, me, out)
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
	h.publish(ctx, n, out)
	return out, nil
}

// duplicate returns the first live claim of event by an invocation other than me: whoever
// holds it speaks for the event.
func (h *Handler) duplicate(cs []claim, event, me string) (claim, bool) {
	first, ok := h.firstOf(cs, event)
	return first, ok && first.By != me
}

// duplicateOutcome answers an event another invocation speaks for: no drain, no metric, no
// lifecycle completion (that invocation does all three).
func (h *Handler) duplicateOutcome(n Notice, out Outcome, by claim) Outcome {
	out.Action, out.Reason = ActionAlreadyDraining, "event handled by invocation "+by.By
	if by.State == claimFailed {
		out.Reason += ", whose drain failed"
	}
	h.log.Info("event already handled by another invocation", "event", n.EventID, "instance", n.InstanceID, "by", by.By, "state", by.State)
	return out
}

// foreign says why an instance is not this function's to drain ("" when it is): it must carry
// this stack's liveagg:stack tag and belong to one of this function's groups. A lifecycle
// action must also be for the group the instance is in.
func (h *Handler) foreign(ctx context.Context, n Notice, tags map[string]string) (string, error) {
	stack, tagged := tags[TagStack]
	switch {
	case !tagged:
		return "instance is not tagged " + TagStack, nil
	case h.stack == "" || stack != h.stack:
		return fmt.Sprintf("instance is tagged %s=%q; this function serves %q", TagStack, stack, h.stack), nil
	}
	group := tags[tagASG]
	if group == "" {
		// Auto Scaling tags its instances; asking it covers an instance it has not tagged yet.
		var err error
		if group, err = h.groupOf(ctx, n.InstanceID); err != nil {
			return "", err
		}
	}
	if !slices.Contains(h.groups, group) {
		if group == "" {
			return fmt.Sprintf("instance is in none of this function's groups (%s)", strings.Join(h.groups, ", ")), nil
		}
		return fmt.Sprintf("instance is in group %q, not one of this function's (%s)", group, strings.Join(h.groups, ", ")), nil
	}
	if n.Lifecycle != nil && n.Lifecycle.Group != group {
		return fmt.Sprintf("lifecycle action of group %q for an instance of group %q", n.Lifecycle.Group, group), nil
	}
	return "", nil
}

// groupOf returns which of this function's groups has the instance ("" for none).
func (h *Handler) groupOf(ctx context.Context, id string) (string, error) {
	res, err := h.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: h.groups})
	if err != nil {
		return "", fmt.Errorf("describe groups %s: %w", strings.Join(h.groups, ","), err)
	}
	for _, g := range res.AutoScalingGroups {
		for _, i := range g.Instances {
			if aws.ToString(i.InstanceId) == id {
				return aws.ToString(g.AutoScalingGroupName), nil
			}
		}
	}
	return "", nil
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

func tagMap(inst *ec2types.Instance) map[string]string {
	tags := map[string]string{}
	for _, t := range inst.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags
}

// drain checkpoints and drains the instance's worker, then marks the instance drained (or
// this invocation's claim failed).
func (h *Handler) drain(ctx context.Context, n Notice, inst *ec2types.Instance, tags map[string]string, me claim, out Outcome) Outcome {
	fail := func(reason string) Outcome {
		out.Action, out.Reason = ActionFailed, reason
		h.markClaim(ctx, n, me, claimFailed)
		return out
	}
	endpoint, err := h.endpoint(n, inst, tags)
	if err != nil {
		h.log.Error("cannot drain", "event", n.EventID, "instance", n.InstanceID, "err", err)
		return fail(err.Error())
	}
	token, err := h.adminToken(ctx)
	if err != nil {
		h.log.Error("cannot drain: admin token", "event", n.EventID, "err", err)
		return fail(err.Error())
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
		out.DrainSeconds = h.now().Sub(start).Seconds()
		// A worker that is not listening may have been drained by someone else in the moment
		// since the claims were read (it exits after a drain): if that is visible now, this is
		// not a failure of the hand-over.
		if errors.Is(err, syscall.ECONNREFUSED) {
			if by := h.drainedElsewhere(ctx, n, me); by != "" {
				out.Action, out.Reason, out.DrainSeconds = ActionAlreadyDrained, by, 0
				h.log.Info("worker gone after another drain", "event", n.EventID, "instance", n.InstanceID, "by", by)
				return out
			}
		}
		h.log.Error("worker did not drain; its partitions move when its session expires", "event", n.EventID,
			"instance", n.InstanceID, "endpoint", endpoint, "seconds", out.DrainSeconds, "err", err)
		return fail(fmt.Sprintf("drain %s: %v", endpoint, err))
	}
	out.Action, out.DrainSeconds = ActionDrained, h.now().Sub(start).Seconds()
	h.log.Info("worker drained", "event", n.EventID, "instance", n.InstanceID, "seconds", out.DrainSeconds)
	if _, err := h.ec2.CreateTags(context.WithoutCancel(ctx), &ec2.CreateTagsInput{Resources: []string{n.InstanceID},
		Tags: []ec2types.Tag{{Key: aws.String(TagDrained), Value: aws.String(n.EventID)}}}); err != nil {
		h.log.Warn("could not mark the instance drained; later events see this invocation's claim until the notice ends", "err", err)
	}
	return out
}

// drainedElsewhere re-reads the instance and names another drain of it, if one is visible:
// the liveagg:drained mark or another invocation's held claim.
func (h *Handler) drainedElsewhere(ctx context.Context, n Notice, me claim) string {
	inst, err := h.instance(context.WithoutCancel(ctx), n.InstanceID)
	if err != nil || inst == nil {
		return ""
	}
	tags := tagMap(inst)
	if d := tags[TagDrained]; d != "" {
		return "drained for event " + d
	}
	for _, c := range claims(tags) {
		if c.By != me.By && c.State == claimHeld && h.live(c) {
			return "drained by invocation " + c.By + " for event " + c.Event
		}
	}
	return ""
}

// awaitDrain waits for another invocation's drain of the instance and returns the lifecycle
// result it calls for: CONTINUE once the instance is marked drained, ABANDON if that drain
// failed, went stale, or the deadline came first.
func (h *Handler) awaitDrain(ctx context.Context, n Notice, by claim) string {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if inst, err := h.instance(ctx, n.InstanceID); err == nil && inst != nil {
			tags := tagMap(inst)
			if tags[TagDrained] != "" {
				return "CONTINUE"
			}
			still := false
			for _, c := range claims(tags) {
				still = still || (c.By == by.By && c.State == claimHeld && h.live(c))
			}
			if !still {
				return "ABANDON"
			}
		}
		select {
		case <-ctx.Done():
			return "ABANDON"
		case <-t.C:
		}
	}
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

// publish records the event in CloudWatch: handled, drain seconds, failures. Only the
// invocation that speaks for an event calls it, so each event is counted once.
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
