package spotinterrupt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/spot"
)

func TestHandlerDecisions(t *testing.T) {
	ours := map[string]string{TagStack: testStack, tagASG: testGroup}
	with := func(extra map[string]string) map[string]string {
		m := clone(ours)
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	otherGroupHook := func(ev map[string]any) { ev["detail"].(map[string]any)["AutoScalingGroupName"] = "other-fleet" }
	for _, tc := range []struct {
		name      string
		file      string
		edit      func(map[string]any)
		tags      map[string]string
		noIP      bool
		notMember bool
		rebalance bool
		drainErr  error
		action    string
		lifecycle string
		replaced  bool
		drains    int
		metrics   []string // published, in any order; nil: none at all
	}{
		{name: "spot warning drains and asks a replacement", file: "spot-interruption-warning.json", tags: ours,
			action: ActionDrained, replaced: true, drains: 1, metrics: []string{"SpotInterruptionsHandled", "DrainSeconds"}},
		{name: "capacity rebalancing replaces by itself", file: "spot-interruption-warning.json", tags: ours, rebalance: true,
			action: ActionDrained, drains: 1, metrics: []string{"SpotInterruptionsHandled", "DrainSeconds"}},
		{name: "rebalance recommendation", file: "rebalance-recommendation.json", tags: ours,
			action: ActionDrained, replaced: true, drains: 1, metrics: []string{"SpotInterruptionsHandled", "DrainSeconds"}},
		{name: "lifecycle hook completes with CONTINUE", file: "lifecycle-terminate.json", tags: ours,
			action: ActionDrained, lifecycle: "CONTINUE", drains: 1, metrics: []string{"SpotInterruptionsHandled", "DrainSeconds"}},
		{name: "failed drain abandons the hook", file: "lifecycle-terminate.json", tags: ours, drainErr: errors.New("timeout"),
			action: ActionFailed, lifecycle: "ABANDON", drains: 1, metrics: []string{"SpotInterruptionsHandled", "SpotDrainFailures", "DrainSeconds"}},
		{name: "instance without the stack tag", file: "spot-interruption-warning.json", tags: map[string]string{"Name": "web", tagASG: testGroup},
			action: ActionIgnored},
		{name: "instance of another stack", file: "spot-interruption-warning.json", tags: with(map[string]string{TagStack: "other-stack"}),
			action: ActionIgnored},
		{name: "instance of this stack in another group", file: "spot-interruption-warning.json", tags: with(map[string]string{tagASG: "other-fleet"}),
			notMember: true, action: ActionIgnored},
		{name: "untagged member of the group, found by asking Auto Scaling", file: "spot-interruption-warning.json",
			tags: map[string]string{TagStack: testStack}, action: ActionDrained, replaced: false, drains: 1,
			metrics: []string{"SpotInterruptionsHandled", "DrainSeconds"}},
		{name: "untagged instance in no group of ours", file: "spot-interruption-warning.json",
			tags: map[string]string{TagStack: testStack}, notMember: true, action: ActionIgnored},
		{name: "another stack's instance in our group: the hook still completes", file: "lifecycle-terminate.json",
			tags: with(map[string]string{TagStack: "other-stack"}), action: ActionIgnored, lifecycle: "CONTINUE"},
		{name: "another group's hook is not ours to complete", file: "lifecycle-terminate.json", edit: otherGroupHook,
			tags: ours, action: ActionIgnored},
		{name: "no private IP", file: "spot-interruption-warning.json", tags: ours, noIP: true,
			action: ActionFailed, metrics: []string{"SpotInterruptionsHandled", "SpotDrainFailures"}},
		{name: "already drained by another event", file: "spot-interruption-warning.json", tags: with(map[string]string{TagDrained: "earlier"}),
			action: ActionAlreadyDrained, metrics: []string{"SpotInterruptionsHandled"}},
		{name: "unknown instance", file: "spot-interruption-warning.json", action: ActionIgnored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(tc.tags)
			f.rebalance = tc.rebalance
			if tc.noIP {
				f.instances[testInstance].ip = ""
			}
			if tc.notMember {
				f.groups = map[string][]string{}
			}
			w := &fakeWorker{fail: tc.drainErr}
			h := newTestHandler(f, w)
			ev := sample(t, tc.file, tc.edit)
			out, err := h.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			replaced := len(f.replaced) > 0
			if out.Action != tc.action || out.Lifecycle != tc.lifecycle || replaced != tc.replaced || w.count() != tc.drains {
				t.Fatalf("outcome %+v, replaced %v, drains %d", out, replaced, w.count())
			}
			if tc.lifecycle == "" && len(f.completed) > 0 {
				t.Fatalf("completed a lifecycle action it should not have: %v", f.completed)
			}
			if fmt.Sprint(sorted(f.metrics)) != fmt.Sprint(sorted(tc.metrics)) {
				t.Fatalf("metrics %v, want %v", f.metrics, tc.metrics)
			}
			for _, ep := range w.endpoints {
				if ep != "http://"+testIP+":7070" {
					t.Fatalf("admin endpoint %s, want EC2's private IP and the admin port", ep)
				}
			}
			// The same event again, to the same container: no second drain, the same answer.
			again, err := h.Handle(context.Background(), ev)
			if err != nil || again != out || w.count() != tc.drains {
				t.Fatalf("redelivery: %+v %v, drains %d", again, err, w.count())
			}
			if out.Action != ActionDrained {
				return
			}
			published := len(f.metrics)
			// The first event redelivered to another container: not drained nor counted again.
			o3, err := newTestHandler(f, w).Handle(context.Background(), ev)
			if err != nil || o3.Action != ActionAlreadyDrained || w.count() != tc.drains || len(f.metrics) != published {
				t.Fatalf("redelivered to another container: %+v %v, drains %d, metrics %v", o3, err, w.count(), f.metrics[published:])
			}
			// Another event for the drained instance, in a fresh container: the mark stops the
			// drain; the event is counted (it is a distinct interruption event).
			o2, err := newTestHandler(f, w).Handle(context.Background(), sample(t, tc.file, withID("another-event")))
			if err != nil || o2.Action != ActionAlreadyDrained || w.count() != tc.drains || f.count("SpotInterruptionsHandled") != 2 {
				t.Fatalf("second event: %+v %v, drains %d, metrics %v", o2, err, w.count(), f.metrics)
			}
		})
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestConcurrentInvocationsDrainOnce: several containers get the same event at once, with EC2
// showing each tag write only after a lag shorter than the settle time. Exactly one drains,
// the others answer already-draining, and the event is counted once, with no failure.
func TestConcurrentInvocationsDrainOnce(t *testing.T) {
	for round := range 5 {
		f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
		f.lag = 40 * time.Millisecond
		w := &fakeWorker{hold: 50 * time.Millisecond}
		ev := sample(t, "spot-interruption-warning.json", withID(fmt.Sprintf("event-%d", round)))
		const n = 4
		outs := make([]Outcome, n)
		var wg sync.WaitGroup
		for i := range n {
			h := newTestHandler(f, w, WithClaimSettle(150*time.Millisecond))
			wg.Go(func() {
				var err error
				if outs[i], err = h.Handle(context.Background(), ev); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		actions := map[string]int{}
		for _, o := range outs {
			actions[o.Action]++
		}
		if w.count() != 1 || actions[ActionDrained] != 1 || actions[ActionAlreadyDraining] != n-1 {
			t.Fatalf("round %d: drains %d, outcomes %v", round, w.count(), outs)
		}
		if f.count("SpotInterruptionsHandled") != 1 || f.count("SpotDrainFailures") != 0 || len(f.replaced) != 1 {
			t.Fatalf("round %d: metrics %v, replacements %v", round, f.metrics, f.replaced)
		}
		if f.tag(TagDrained) != fmt.Sprintf("event-%d", round) {
			t.Fatalf("round %d: drained mark %q", round, f.tag(TagDrained))
		}
	}
}

// TestTwoEventsForOneInstance: a rebalance recommendation and a spot warning for the same
// instance at once, each delivered twice. One drain; each event counted once; the lifecycle
// action that comes in the middle of the drain waits for it, then completes with CONTINUE.
func TestTwoEventsForOneInstance(t *testing.T) {
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
	f.lag = 40 * time.Millisecond
	w := &fakeWorker{hold: 1500 * time.Millisecond, started: make(chan struct{})}
	events := [][]byte{
		sample(t, "rebalance-recommendation.json", withID("rebalance")), sample(t, "rebalance-recommendation.json", withID("rebalance")),
		sample(t, "spot-interruption-warning.json", withID("warning")), sample(t, "spot-interruption-warning.json", withID("warning")),
	}
	var wg sync.WaitGroup
	for _, ev := range events {
		h := newTestHandler(f, w, WithClaimSettle(150*time.Millisecond))
		wg.Go(func() {
			if _, err := h.Handle(context.Background(), ev); err != nil {
				t.Error(err)
			}
		})
	}
	// The group's hook fires while the drain runs.
	select {
	case <-w.started:
	case <-time.After(time.Minute):
		t.Fatal("no drain began")
	}
	lc, err := newTestHandler(f, w, WithClaimSettle(150*time.Millisecond)).Handle(context.Background(), sample(t, "lifecycle-terminate.json", nil))
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if w.count() != 1 {
		t.Fatalf("drains %d, want 1", w.count())
	}
	if f.count("SpotInterruptionsHandled") != 3 || f.count("SpotDrainFailures") != 0 {
		t.Fatalf("metrics %v: want one SpotInterruptionsHandled per event (3) and no failure", f.metrics)
	}
	if lc.Action != ActionAlreadyDraining || lc.Lifecycle != "CONTINUE" || fmt.Sprint(f.lifecycles()) != "[CONTINUE]" {
		t.Fatalf("lifecycle: %+v, completions %v", lc, f.lifecycles())
	}
}

// TestWorkerGoneAfterAnotherDrain: the drainer finds the worker not listening, and the instance
// now shows another drain's mark (the worker exits after a drain): already drained, not a
// failure, no failure metric.
func TestWorkerGoneAfterAnotherDrain(t *testing.T) {
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
	w := &fakeWorker{fail: fmt.Errorf("post: dial tcp: %w", syscall.ECONNREFUSED)}
	w.onDrain = func() { _, _ = f.CreateTags(context.Background(), tagInput(TagDrained, "other-event")) }
	out, err := newTestHandler(f, w).Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil))
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != ActionAlreadyDrained || f.count("SpotDrainFailures") != 0 || f.count("SpotInterruptionsHandled") != 1 {
		t.Fatalf("outcome %+v, metrics %v", out, f.metrics)
	}
	// Without another drain in sight, a worker that refuses the connection is a failure, and
	// the claim records it so the event's redeliveries stay quiet.
	f2 := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
	w2 := &fakeWorker{fail: w.fail}
	h := newTestHandler(f2, w2, withInvocation(func(context.Context) string { return "inv-1" }))
	if out, _ := h.Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil)); out.Action != ActionFailed {
		t.Fatalf("refused without another drain: %+v", out)
	}
	if v := f2.tag(TagClaimPrefix + "inv-1"); !contains(v, "/failed/") {
		t.Fatalf("claim after a failed drain: %q", v)
	}
	again, _ := newTestHandler(f2, w2).Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil))
	if again.Action != ActionAlreadyDraining || w2.count() != 1 || f2.count("SpotDrainFailures") != 1 {
		t.Fatalf("redelivery after a failure: %+v, drains %d, metrics %v", again, w2.count(), f2.metrics)
	}
}

// A claim older than the notice belongs to an invocation that died: a new event drains.
func TestStaleClaimDoesNotBlock(t *testing.T) {
	old := claim{By: "dead", At: time.Now().Add(-3 * time.Minute), State: claimHeld, Event: "old-event"}
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup, TagClaimPrefix + "dead": old.value()})
	w := &fakeWorker{}
	out, err := newTestHandler(f, w).Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil))
	if err != nil || out.Action != ActionDrained || w.count() != 1 {
		t.Fatalf("outcome %+v %v, drains %d", out, err, w.count())
	}
	// A fresh one does block.
	fresh := claim{By: "alive", At: time.Now().Add(-10 * time.Second), State: claimHeld, Event: "old-event"}
	f = newFake(map[string]string{TagStack: testStack, tagASG: testGroup, TagClaimPrefix + "alive": fresh.value()})
	out, err = newTestHandler(f, w).Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil))
	if err != nil || out.Action != ActionAlreadyDraining || w.count() != 1 || f.count("SpotInterruptionsHandled") != 1 {
		t.Fatalf("behind a live claim: %+v %v, drains %d, metrics %v", out, err, w.count(), f.metrics)
	}
}

func TestClaimOrder(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	tags := map[string]string{
		TagClaimPrefix + "b":       claim{At: at, State: claimHeld, Event: "e/with/slashes"}.value(),
		TagClaimPrefix + "a":       claim{At: at, State: claimFailed, Event: "e2"}.value(),
		TagClaimPrefix + "c":       claim{At: at.Add(-time.Millisecond), State: claimHeld, Event: "e3"}.value(),
		TagClaimPrefix + "garbage": "not-a-claim",
		TagClaimPrefix + "bad":     "1/unknown/e",
		"Name":                     "x",
	}
	cs := claims(tags)
	got := ""
	for _, c := range cs {
		got += c.By + ":" + c.Event + ":" + c.State + " "
	}
	if got != "c:e3:claimed a:e2:failed b:e/with/slashes:claimed " {
		t.Fatalf("claims in order: %q", got)
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
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
	h := New(f, f, f, f, testConfig, quiet(), WithNotice(12*time.Second), WithClaimSettle(0),
		WithWorkerClient(func(string, string) Worker { return hangingWorker{} }))
	start := time.Now()
	out, err := h.Handle(context.Background(), sample(t, "lifecycle-terminate.json", nil))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("took %v; the deadline is the notice less a margin", d)
	}
	if out.Action != ActionFailed || out.Lifecycle != "ABANDON" || !contains(out.Reason, "deadline") {
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
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
	h := New(f, f, f, f, testConfig, quiet(), WithNotice(12*time.Second), WithClaimSettle(0),
		WithWorkerClient(func(string, string) Worker { return hangingCheckpointWorker{} }))
	out, err := h.Handle(context.Background(), sample(t, "lifecycle-terminate.json", nil))
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != ActionDrained || out.Lifecycle != "CONTINUE" {
		t.Fatalf("outcome %+v", out)
	}
}

// The admin endpoint tag is never what the handler connects to, even when it is all there is.
func TestEndpointTagIsNotUsed(t *testing.T) {
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup, spot.AdminEndpointTag: "http://203.0.113.9:80"})
	w := &fakeWorker{}
	if out, err := newTestHandler(f, w).Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil)); err != nil || out.Action != ActionDrained {
		t.Fatalf("%+v %v", out, err)
	}
	if fmt.Sprint(w.endpoints) != "[http://10.0.0.5:7070]" {
		t.Fatalf("endpoints %v", w.endpoints)
	}
}
