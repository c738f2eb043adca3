// Package spotinterrupt is the Lambda that gives a doomed spot worker's partitions to the rest
// of the fleet before the instance goes: on an EC2 Spot Instance Interruption Warning, an EC2
// Instance Rebalance Recommendation or an Auto Scaling EC2 Instance-terminate Lifecycle Action
// for an instance of a liveagg stack, it finds the worker's admin endpoint in the instance's
// tags, has the worker checkpoint and drain (leave its consumer group, so the others take its
// partitions at once), completes the lifecycle action, asks Auto Scaling for a replacement when
// capacity rebalancing will not, and publishes what it did to CloudWatch.
//
// A spot warning comes two minutes before the instance is reclaimed, so every call runs under a
// deadline derived from the event's time, and a worker that does not answer is reported rather
// than waited for: its partitions still move when its session times out, and the next owner
// replays from the last checkpoint. Nothing is lost either way; draining only makes the
// hand-over fast.
package spotinterrupt

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// The EventBridge detail types the handler acts on.
const (
	DetailSpotWarning = "EC2 Spot Instance Interruption Warning"
	DetailRebalance   = "EC2 Instance Rebalance Recommendation"
	DetailLifecycle   = "EC2 Instance-terminate Lifecycle Action"
)

// ErrBadEvent is wrapped by the errors of events that cannot be acted on.
var ErrBadEvent = errors.New("bad event")

// Notice is what an event asks for, whatever its type.
type Notice struct {
	EventID    string
	Kind       string // the detail type
	Time       time.Time
	InstanceID string
	// Lifecycle is set for lifecycle actions: what completing it needs.
	Lifecycle *Lifecycle
}

// Lifecycle identifies a pending Auto Scaling lifecycle action.
type Lifecycle struct {
	Group, Hook, Token, Transition string
}

// Parse reads an EventBridge event into a Notice.
func Parse(raw []byte) (Notice, error) {
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return Notice{}, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	return FromEvent(ev)
}

// FromEvent reads a decoded EventBridge event into a Notice.
func FromEvent(ev events.CloudWatchEvent) (Notice, error) {
	n := Notice{EventID: ev.ID, Kind: ev.DetailType, Time: ev.Time}
	if n.EventID == "" {
		return n, fmt.Errorf("%w: no id", ErrBadEvent)
	}
	switch ev.DetailType {
	case DetailSpotWarning, DetailRebalance:
		var d struct {
			InstanceID string `json:"instance-id"`
		}
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			return n, fmt.Errorf("%w: %s detail: %v", ErrBadEvent, ev.DetailType, err)
		}
		n.InstanceID = d.InstanceID
	case DetailLifecycle:
		var d struct {
			Token      string `json:"LifecycleActionToken"`
			Group      string `json:"AutoScalingGroupName"`
			Hook       string `json:"LifecycleHookName"`
			InstanceID string `json:"EC2InstanceId"`
			Transition string `json:"LifecycleTransition"`
		}
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			return n, fmt.Errorf("%w: %s detail: %v", ErrBadEvent, ev.DetailType, err)
		}
		if d.Transition != "autoscaling:EC2_INSTANCE_TERMINATING" {
			return n, fmt.Errorf("%w: lifecycle transition %q is not a termination", ErrBadEvent, d.Transition)
		}
		if d.Group == "" || d.Hook == "" || d.Token == "" {
			return n, fmt.Errorf("%w: lifecycle action without group, hook or token", ErrBadEvent)
		}
		n.InstanceID = d.InstanceID
		n.Lifecycle = &Lifecycle{Group: d.Group, Hook: d.Hook, Token: d.Token, Transition: d.Transition}
	default:
		return n, fmt.Errorf("%w: detail type %q is not one this function handles", ErrBadEvent, ev.DetailType)
	}
	if n.InstanceID == "" {
		return n, fmt.Errorf("%w: %s without an instance id", ErrBadEvent, ev.DetailType)
	}
	return n, nil
}
