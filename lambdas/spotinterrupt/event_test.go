package spotinterrupt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSamples(t *testing.T) {
	for _, tc := range []struct {
		file, kind string
		lifecycle  bool
		sentinel   error
		err        []string // all in the message
	}{
		{"spot-interruption-warning.json", DetailSpotWarning, false, nil, nil},
		{"rebalance-recommendation.json", DetailRebalance, false, nil, nil},
		{"lifecycle-terminate.json", DetailLifecycle, true, nil, nil},
		{"malformed-no-instance.json", "", false, ErrBadEvent, []string{"event detail of type EC2 Spot Instance Interruption Warning: missing instance-id"}},
		{"unknown-detail-type.json", "", false, ErrNotHandled, []string{`detail-type "EC2 Instance State-change Notification" is none of`}},
		{"truncated.json", "", false, ErrBadEvent, []string{"event is not JSON: unexpected end of JSON input at byte 69 of 69"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			n, err := Parse(raw)
			if tc.sentinel != nil {
				if !errors.Is(err, tc.sentinel) || !contains(errString(err), tc.err...) {
					t.Fatalf("err %v, want %v saying %q", err, tc.sentinel, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Kind != tc.kind || n.InstanceID != testInstance || (n.Lifecycle != nil) != tc.lifecycle || n.Time.IsZero() {
				t.Fatalf("parsed %+v", n)
			}
			if tc.lifecycle && (n.Lifecycle.Group != testGroup || n.Lifecycle.Token == "" || n.Lifecycle.Hook == "") {
				t.Fatalf("lifecycle %+v", n.Lifecycle)
			}
		})
	}
}

// Each way an event can be wrong is named in the error: which part, and what was expected.
func TestParseSaysWhatIsWrong(t *testing.T) {
	spot := func(detail string) string {
		return `{"id":"e1","detail-type":"EC2 Spot Instance Interruption Warning","time":"2026-11-26T10:00:00Z","detail":` + detail + `}`
	}
	life := func(detail string) string {
		return `{"id":"e1","detail-type":"EC2 Instance-terminate Lifecycle Action","detail":` + detail + `}`
	}
	for _, tc := range []struct {
		raw      string
		sentinel error
		want     string
	}{
		{``, ErrBadEvent, "event is empty (want a JSON object)"},
		{`{"id": "e1", "detail-type": "x"`, ErrBadEvent, "event is not JSON: unexpected end of JSON input at byte 31 of 31"},
		{`{"id": "e1",, }`, ErrBadEvent, "event is not JSON: invalid character ',' looking for beginning of object key string at byte 13"},
		{`[1, 2]`, ErrBadEvent, "event is a JSON array, want a JSON object"},
		{`null`, ErrBadEvent, "event is JSON null, want a JSON object"},
		{`{"id": 7}`, ErrBadEvent, "event field id is a JSON number, want a string"},
		{`{"detail-type": "x"}`, ErrBadEvent, "event has no id"},
		{`{"id": "` + strings.Repeat("x", 129) + `"}`, ErrBadEvent, "event id is 129 bytes long, want at most 128"},
		{`{"id": "e1"}`, ErrBadEvent, "event e1 has no detail-type"},
		{`{"id":"e1","detail-type":"EC2 Spot Instance Interruption Warning","time":12}`, ErrBadEvent, "event e1: time is 12, want an RFC 3339 string"},
		{`{"id":"e1","detail-type":"EC2 Spot Instance Interruption Warning","time":"yesterday"}`, ErrBadEvent, `event e1: time "yesterday" is not RFC 3339`},
		{`{"id":"e1","detail-type":"EC2 Spot Instance Interruption Warning"}`, ErrBadEvent, "event detail of type EC2 Spot Instance Interruption Warning: missing (want an object)"},
		{spot(`"i-1234567890abcdef0"`), ErrBadEvent, "event detail of type EC2 Spot Instance Interruption Warning: is a JSON string, want a JSON object"},
		{spot(`{"instance-id": 5}`), ErrBadEvent, "event detail of type EC2 Spot Instance Interruption Warning: field instance-id is a JSON number, want a string"},
		{spot(`{}`), ErrBadEvent, "event detail of type EC2 Spot Instance Interruption Warning: missing instance-id"},
		{spot(`{"instance-id": "i-xyz; rm -rf"}`), ErrBadEvent, `instance-id "i-xyz; rm -rf" is not an EC2 instance id`},
		{life(`{"LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"}`), ErrNotHandled, `LifecycleTransition "autoscaling:EC2_INSTANCE_LAUNCHING" is not autoscaling:EC2_INSTANCE_TERMINATING`},
		{life(`{"LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "AutoScalingGroupName": "g", "LifecycleHookName": "h"}`), ErrBadEvent,
			"event detail of type EC2 Instance-terminate Lifecycle Action: missing LifecycleActionToken"},
		{life(`{"LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "AutoScalingGroupName": "g", "LifecycleHookName": "h", "LifecycleActionToken": "t"}`), ErrBadEvent,
			"event detail of type EC2 Instance-terminate Lifecycle Action: missing EC2InstanceId"},
	} {
		_, err := Parse([]byte(tc.raw))
		if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%.60s):\n got %v\nwant %v saying %q", tc.raw, err, tc.sentinel, tc.want)
		}
	}
}

// A malformed event is the Lambda's error, with the parser's message, so the runtime's retries
// and the dead-letter queue carry the reason; an event of another kind is an ignored outcome.
func TestHandleReturnsParseErrors(t *testing.T) {
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
	h := newTestHandler(f, &fakeWorker{})
	raw, _ := os.ReadFile("testdata/truncated.json")
	if _, err := h.Handle(context.Background(), raw); err == nil || !strings.Contains(err.Error(), "event is not JSON: unexpected end of JSON input at byte") {
		t.Fatalf("truncated event: %v", err)
	}
	raw, _ = os.ReadFile("testdata/unknown-detail-type.json")
	if out, err := h.Handle(context.Background(), raw); err != nil || out.Action != ActionIgnored || !strings.Contains(out.Reason, "is none of") {
		t.Fatalf("unknown detail type: %+v %v", out, err)
	}
	if len(f.metrics) != 0 {
		t.Fatalf("metrics for events not acted on: %v", f.metrics)
	}
}

// FuzzParseEvent: no input makes Parse panic; every rejection wraps one of the two sentinels
// and says more than the sentinel (which part of the event, what was expected); every
// acceptance is a notice the handler can act on.
func FuzzParseEvent(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("seed corpus: %v %v", files, err)
	}
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"id":"e","detail-type":"EC2 Instance-terminate Lifecycle Action","detail":{"LifecycleTransition":"autoscaling:EC2_INSTANCE_TERMINATING","AutoScalingGroupName":"g","LifecycleHookName":"h","LifecycleActionToken":"t","EC2InstanceId":"i-0123abcd"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := Parse(raw)
		if err != nil {
			bad, other := errors.Is(err, ErrBadEvent), errors.Is(err, ErrNotHandled)
			if bad == other {
				t.Fatalf("error %q wraps ErrBadEvent %v, ErrNotHandled %v: want exactly one", err, bad, other)
			}
			msg := errString(err)
			sentinel := ErrBadEvent.Error() + ": "
			if other {
				sentinel = ErrNotHandled.Error() + ": "
			}
			rest, ok := strings.CutPrefix(msg, sentinel)
			if !ok || !strings.Contains(rest, "event") && !strings.Contains(rest, "detail-type") {
				t.Fatalf("error %q does not say which part of the event was wrong", msg)
			}
			// Values quoted in errors are clipped: a huge event makes no huge log line.
			if len(msg) > 1000 {
				t.Fatalf("error of %d bytes for an input of %d", len(msg), len(raw))
			}
			return
		}
		if n.EventID == "" || len(n.EventID) > maxEventID || !instanceID.MatchString(n.InstanceID) {
			t.Fatalf("accepted a notice the handler cannot act on: %+v", n)
		}
		switch n.Kind {
		case DetailSpotWarning, DetailRebalance:
			if n.Lifecycle != nil {
				t.Fatalf("%s with a lifecycle: %+v", n.Kind, n)
			}
		case DetailLifecycle:
			if n.Lifecycle == nil || n.Lifecycle.Group == "" || n.Lifecycle.Hook == "" || n.Lifecycle.Token == "" {
				t.Fatalf("lifecycle notice without what completing it needs: %+v", n)
			}
		default:
			t.Fatalf("accepted detail type %q", n.Kind)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
