// Package spotinterrupt is the Lambda that gives a doomed spot worker's partitions to the rest
// of the fleet before the instance goes: on an EC2 Spot Instance Interruption Warning, an EC2
// Instance Rebalance Recommendation or an Auto Scaling EC2 Instance-terminate Lifecycle Action
// for an instance of its own stack and Auto Scaling group, it has the worker checkpoint and
// drain (leave its consumer group, so the others take its partitions at once), completes the
// lifecycle action, asks Auto Scaling for a replacement when capacity rebalancing will not, and
// publishes what it did to CloudWatch.
//
// What it trusts: the event names an instance, and EC2 says everything else. The instance must
// carry this stack's liveagg:stack tag and belong to one of this function's groups (the
// aws:autoscaling:groupName tag, which only Auto Scaling can write), and the worker is reached
// at the private IP address EC2 reports for it, never at an address found in a tag that anyone
// with ec2:CreateTags could have written: the admin token drains every worker of the fleet.
//
// A spot warning comes two minutes before the instance is reclaimed, so every call runs under a
// deadline derived from the event's time, and a worker that does not answer is reported rather
// than waited for: its partitions still move when its session times out, and the next owner
// replays from the last checkpoint. Nothing is lost either way; draining only makes the
// hand-over fast.
package spotinterrupt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// The EventBridge detail types the handler acts on.
const (
	DetailSpotWarning = "EC2 Spot Instance Interruption Warning"
	DetailRebalance   = "EC2 Instance Rebalance Recommendation"
	DetailLifecycle   = "EC2 Instance-terminate Lifecycle Action"
)

// ErrBadEvent is wrapped by the errors of events that are not well-formed: not JSON, not an
// object, or a detail that lacks what its type promises. The handler returns these as errors,
// so the event ends in the function's dead-letter queue where it can be looked at.
var ErrBadEvent = errors.New("bad event")

// ErrNotHandled is wrapped by the errors of well-formed events this function has nothing to do
// with (another detail type, a lifecycle transition that is not a termination); the handler
// answers them with an ignored outcome.
var ErrNotHandled = errors.New("event not handled")

// maxEventID bounds an event id: it is written into an instance tag value (256 characters at
// most) next to a timestamp. EventBridge's ids are 36-character UUIDs.
const maxEventID = 128

// instanceID is the form of an EC2 instance id: the short (8) and long (17) forms.
var instanceID = regexp.MustCompile(`^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$`)

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

// envelope is the part of an EventBridge event the handler reads. Time is kept raw so a bad
// one is reported as the time field's fault rather than as a decoding error of the whole event.
type envelope struct {
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Time       json.RawMessage `json:"time"`
	Detail     json.RawMessage `json:"detail"`
}

// Parse reads an EventBridge event into a Notice. Its errors wrap ErrBadEvent or ErrNotHandled
// and say which part of the event was wrong and what was expected there.
func Parse(raw []byte) (Notice, error) {
	var ev envelope
	if err := strictJSON(raw, &ev); err != nil {
		return Notice{}, fmt.Errorf("%w: event %s", ErrBadEvent, err)
	}
	n := Notice{EventID: ev.ID, Kind: ev.DetailType}
	switch {
	case ev.ID == "":
		return n, fmt.Errorf("%w: event has no id (want EventBridge's event id, a string)", ErrBadEvent)
	case len(ev.ID) > maxEventID:
		return n, fmt.Errorf("%w: event id is %d bytes long, want at most %d", ErrBadEvent, len(ev.ID), maxEventID)
	case ev.DetailType == "":
		return n, fmt.Errorf("%w: event %s has no detail-type", ErrBadEvent, ev.ID)
	}
	if len(ev.Time) > 0 && !bytes.Equal(ev.Time, []byte("null")) {
		var s string
		if err := json.Unmarshal(ev.Time, &s); err != nil {
			return n, fmt.Errorf("%w: event %s: time is %s, want an RFC 3339 string", ErrBadEvent, ev.ID, clip(ev.Time))
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return n, fmt.Errorf("%w: event %s: time %q is not RFC 3339 (2006-01-02T15:04:05Z)", ErrBadEvent, ev.ID, clip([]byte(s)))
		}
		n.Time = t
	}
	detail := func(v any) error {
		if len(ev.Detail) == 0 || bytes.Equal(ev.Detail, []byte("null")) {
			return fmt.Errorf("%w: event detail of type %s: missing (want an object)", ErrBadEvent, ev.DetailType)
		}
		if err := strictJSON(ev.Detail, v); err != nil {
			return fmt.Errorf("%w: event detail of type %s: %s", ErrBadEvent, ev.DetailType, err)
		}
		return nil
	}
	switch ev.DetailType {
	case DetailSpotWarning, DetailRebalance:
		var d struct {
			InstanceID string `json:"instance-id"`
		}
		if err := detail(&d); err != nil {
			return n, err
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
		if err := detail(&d); err != nil {
			return n, err
		}
		if d.Transition != "autoscaling:EC2_INSTANCE_TERMINATING" {
			return n, fmt.Errorf("%w: event detail of type %s: LifecycleTransition %q is not autoscaling:EC2_INSTANCE_TERMINATING",
				ErrNotHandled, ev.DetailType, clip([]byte(d.Transition)))
		}
		for _, f := range []struct{ name, v string }{{"AutoScalingGroupName", d.Group}, {"LifecycleHookName", d.Hook}, {"LifecycleActionToken", d.Token}} {
			if f.v == "" {
				return n, fmt.Errorf("%w: event detail of type %s: missing %s", ErrBadEvent, ev.DetailType, f.name)
			}
		}
		n.InstanceID = d.InstanceID
		n.Lifecycle = &Lifecycle{Group: d.Group, Hook: d.Hook, Token: d.Token, Transition: d.Transition}
	default:
		return n, fmt.Errorf("%w: detail-type %q is none of %q, %q, %q", ErrNotHandled, clip([]byte(ev.DetailType)),
			DetailSpotWarning, DetailRebalance, DetailLifecycle)
	}
	field := "instance-id"
	if n.Lifecycle != nil {
		field = "EC2InstanceId"
	}
	if n.InstanceID == "" {
		return n, fmt.Errorf("%w: event detail of type %s: missing %s", ErrBadEvent, ev.DetailType, field)
	}
	if !instanceID.MatchString(n.InstanceID) {
		return n, fmt.Errorf("%w: event detail of type %s: %s %q is not an EC2 instance id (i- and 8 or 17 hex digits)",
			ErrBadEvent, ev.DetailType, field, clip([]byte(n.InstanceID)))
	}
	return n, nil
}

// strictJSON decodes one JSON object into v and describes a failure by where it happened:
// "is not JSON: unexpected end of JSON input at byte 120", "field time is a number, want string".
func strictJSON(raw []byte, v any) error {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return errors.New("is empty (want a JSON object)")
	}
	if !json.Valid(raw) {
		// Unmarshal reports the first syntax error and its offset in raw.
		var syn *json.SyntaxError
		if err := json.Unmarshal(raw, new(any)); errors.As(err, &syn) {
			return fmt.Errorf("is not JSON: %s at byte %d of %d", syn.Error(), syn.Offset, len(raw))
		}
		return errors.New("is not JSON")
	}
	if trimmed[0] != '{' {
		return fmt.Errorf("is %s, want a JSON object", jsonKind(trimmed[0]))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fmt.Errorf("field %s is a JSON %s, want %s", typ.Field, typ.Value, jsonType(typ.Type.Kind().String()))
		}
		return fmt.Errorf("does not decode: %w", err)
	}
	return nil
}

func jsonKind(first byte) string {
	switch first {
	case '[':
		return "a JSON array"
	case '"':
		return "a JSON string"
	case 't', 'f':
		return "a JSON boolean"
	case 'n':
		return "JSON null"
	default:
		return "a JSON number"
	}
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	default:
		return goKind
	}
}

// clip keeps a value quoted in an error short: events can be large and errors end up in logs.
func clip(b []byte) string {
	const n = 64
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
