package spotinterrupt

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// One event, one drain: how concurrent invocations agree.
//
// The same instance can be the subject of several invocations at once: EventBridge delivers at
// least once, a retried invocation runs beside a slow first one in another container, and one
// instance gets a rebalance recommendation, a spot warning and a terminate lifecycle action
// within seconds. The worker's drain is idempotent (a second drain of a draining worker answers
// at once; a drained one has exited), so two drains lose no data; what they do cost is a false
// SpotDrainFailures ("connection refused" for whoever comes second), interruptions counted
// twice (the autoscaler sizes its spot headroom from that count), and two lifecycle
// completions or replacement requests.
//
// Nothing this function may call offers compare-and-swap (no table to put conditionally into,
// and the worker's admin API answers a second drain exactly like the first), so invocations
// agree through EC2 tags, using an order every invocation computes the same way rather than
// relying on which write lands last:
//
//  1. Every invocation tags the instance with a claim of its own: the key is TagClaimPrefix
//     plus its invocation id (so no claim overwrites another), the value is when it claimed,
//     its state and its event id.
//  2. It waits a settle time (2 s by default, WithClaimSettle), long enough for EC2's
//     eventually consistent DescribeInstances to show claims written at about the same time,
//     then reads every claim.
//  3. Claims are ordered by (time, invocation id). Among the claims of its own event, only the
//     first one's invocation goes on; the others answer already-draining and publish nothing,
//     so an event is counted once. Among the live claims of any event, only the first one's
//     invocation drains; an invocation that represents another event (say a spot warning that
//     arrives while a rebalance recommendation's drain runs) answers already-draining, counts
//     its event, and, for a lifecycle action, waits for that drain before completing it.
//
// Two invocations disagree only if one does not see the other's claim a settle time after
// writing its own, and the later one also missed the earlier one's claim before writing: with
// EC2's propagation well under a second that needs two invocations within a settle time of
// each other and a read slower than the settle. Even then the worker stays the last arbiter:
// the second drain call finds it draining (success at once) or gone, and a drain that fails
// while another claim or the liveagg:drained mark is visible is reported as already-draining,
// not as a failure.
//
// A claim is live while it is younger than the notice (an invocation cannot outlive its
// deadline; an older claim belongs to one that crashed) or once it records a failure (a
// redelivery of a failed event stays quiet; a new event may try again). After a drain, the
// liveagg:drained tag names the event that did it and stops every later event at once. Claims
// stay on the instance (blanking or deleting them would need ec2:DeleteTags and buy nothing:
// the instance is about to go), and their number is bounded by the invocations that find no
// live claim before writing, in practice one or two per event.
const TagClaimPrefix = "liveagg:claim:"

// Claim states.
const (
	claimHeld   = "claimed"
	claimFailed = "failed"
)

// claim is one invocation's claim on draining an instance.
type claim struct {
	By    string // invocation id
	At    time.Time
	State string
	Event string
}

// value is the claim's tag value: <unix ms>/<state>/<event id>. The event id is last because
// it is the one part that may contain a slash.
func (c claim) value() string {
	return strconv.FormatInt(c.At.UnixMilli(), 10) + "/" + c.State + "/" + c.Event
}

// before orders claims: the earlier first, ties by invocation id, so every reader agrees.
func (c claim) before(d claim) bool {
	return cmp.Or(c.At.Compare(d.At), strings.Compare(c.By, d.By)) < 0
}

// claims reads the claims among an instance's tags, earliest first. Malformed ones (which
// this code never writes) are skipped: a claim that cannot be ordered cannot win.
func claims(tags map[string]string) []claim {
	var out []claim
	for k, v := range tags {
		by, ok := strings.CutPrefix(k, TagClaimPrefix)
		if !ok || by == "" {
			continue
		}
		parts := strings.SplitN(v, "/", 3)
		if len(parts) != 3 || (parts[1] != claimHeld && parts[1] != claimFailed) || parts[2] == "" {
			continue
		}
		ms, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, claim{By: by, At: time.UnixMilli(ms), State: parts[1], Event: parts[2]})
	}
	slices.SortFunc(out, func(a, b claim) int {
		if a.before(b) {
			return -1
		}
		if b.before(a) {
			return 1
		}
		return 0
	})
	return out
}

// live says whether a claim still stands: a failure always does (it answers its event's
// redeliveries), a held claim until the notice is over.
func (h *Handler) live(c claim) bool {
	return c.State == claimFailed || h.now().Sub(c.At) < h.notice
}

// firstOf returns the first live claim of event, if any.
func (h *Handler) firstOf(cs []claim, event string) (claim, bool) {
	for _, c := range cs {
		if c.Event == event && h.live(c) {
			return c, true
		}
	}
	return claim{}, false
}

// firstHeld returns the first live held claim of any event: the invocation that drains.
func (h *Handler) firstHeld(cs []claim) (claim, bool) {
	for _, c := range cs {
		if c.State == claimHeld && h.live(c) {
			return c, true
		}
	}
	return claim{}, false
}

// takeClaim writes this invocation's claim, waits the settle time, and returns the instance's
// tags as EC2 then shows them, with the claim added if EC2 does not show it yet (it was
// written; only the read is behind). A claim that cannot be written is logged and the
// invocation goes on without it: draining twice is safe, not draining is what costs.
func (h *Handler) takeClaim(ctx context.Context, n Notice, mine claim) (map[string]string, error) {
	key := TagClaimPrefix + mine.By
	if _, err := h.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{n.InstanceID},
		Tags: []ec2types.Tag{{Key: aws.String(key), Value: aws.String(mine.value())}}}); err != nil {
		h.log.Warn("could not claim the drain; going on without a claim", "event", n.EventID, "instance", n.InstanceID, "err", err)
	}
	if h.settle > 0 {
		t := time.NewTimer(h.settle)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("settle after claiming %s: %w", n.InstanceID, ctx.Err())
		case <-t.C:
		}
	}
	inst, err := h.instance(ctx, n.InstanceID)
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	if inst != nil {
		tags = tagMap(inst)
	}
	if _, ok := tags[key]; !ok {
		tags[key] = mine.value()
	}
	return tags, nil
}

// markClaim rewrites this invocation's claim with a new state; best effort.
func (h *Handler) markClaim(ctx context.Context, n Notice, mine claim, state string) {
	mine.State = state
	if _, err := h.ec2.CreateTags(context.WithoutCancel(ctx), &ec2.CreateTagsInput{Resources: []string{n.InstanceID},
		Tags: []ec2types.Tag{{Key: aws.String(TagClaimPrefix + mine.By), Value: aws.String(mine.value())}}}); err != nil {
		h.log.Warn("could not mark the claim "+state, "event", n.EventID, "instance", n.InstanceID, "err", err)
	}
}

// invocationID names this invocation in its claim: the Lambda request id, or a random one
// outside Lambda (tests calling Handle directly).
func invocationID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
