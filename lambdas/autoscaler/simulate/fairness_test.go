package simulate

import (
	"math"
	"testing"

	"github.com/liveagg/liveagg/lambdas/autoscaler"
)

// fixed holds the group at one size.
type fixed struct {
	name string
	n    int
}

func (f fixed) Name() string             { return f.name }
func (f fixed) Desired(*Observation) int { return f.n }

// flapping alternates between two sizes every few minutes.
type flapping struct{ lo, hi, every int }

func (f flapping) Name() string { return "flapping" }
func (f flapping) Desired(o *Observation) int {
	if (o.Minute/f.every)%2 == 0 {
		return f.lo
	}
	return f.hi
}

func flat(rate float64, minutes int) Trace {
	r := make([]float64, minutes)
	for i := range r {
		r[i] = rate
	}
	return Trace{Rate: r, Name: "flat"}
}

// Every policy meets the same interruptions: the same instance slots in the same minutes.
// Two policies holding the same size are interrupted alike; a larger fleet meets those and
// more, never others.
func TestInterruptionsAreTheSameForEveryPolicy(t *testing.T) {
	tr := flat(400_000, 3*1440)
	f := Fleet{InterruptionsPerHour: 0.2}
	ev := DrawInterruptions(tr, f)
	a, b := RunWith(tr, f, fixed{"a", 12}, ev), RunWith(tr, f, fixed{"b", 12}, ev)
	big := RunWith(tr, f, fixed{"big", 24}, ev)
	if a.Interruptions == 0 || a.Interruptions != b.Interruptions || a.WorkerHours != b.WorkerHours {
		t.Fatalf("same size, different luck: %d and %d interruptions", a.Interruptions, b.Interruptions)
	}
	if big.Interruptions <= a.Interruptions {
		t.Fatalf("twice the instances met %d interruptions, half as many met %d", big.Interruptions, a.Interruptions)
	}
	// The events do not depend on which policy runs first or how often they are drawn.
	if again := DrawInterruptions(tr, f); len(again.At) != len(ev.At) {
		t.Fatalf("drawn twice: %d and %d minutes with events", len(again.At), len(ev.At))
	}
}

// A spot notice: the worker drains at once and its instance is billed until the notice ends;
// the group's replacement is asked for at the notice.
func TestSpotNotice(t *testing.T) {
	tr := flat(100_000, 600)
	f := Fleet{}
	f.defaults()
	ev := Interruptions{At: map[int][]int{100: {0}}}
	r := RunWith(tr, f, fixed{"fixed", 4}, ev)
	if r.Interruptions != 1 {
		t.Fatalf("%d interruptions, want 1", r.Interruptions)
	}
	// Billed: 4 workers for 600 minutes, plus the noticed one's 2 minutes beside its
	// replacement.
	if want := (4*600.0 + float64(f.NoticeMinutes)) / 60; math.Abs(r.WorkerHours-want) > 0.01 {
		t.Fatalf("worker-hours %.2f, want %.2f", r.WorkerHours, want)
	}
	// The replacement is ready a lead time after the notice; meanwhile three workers carry
	// the load.
	if got := r.Capacity[101] / f.Capacity(); got > 3.001 {
		t.Fatalf("%.1f workers' capacity during the replacement's boot, want 3", got)
	}
	if got := r.Capacity[100+f.LeadMinutes+1] / f.Capacity(); got < 3.999 {
		t.Fatalf("%.1f workers' capacity after the replacement's boot, want 4", got)
	}
}

// Scaling is not free: every move of a partition pauses it for the rebalance, the leaver's
// checkpoint and the restore of its state, and with enough state that shows as lag.
func TestMovedPartitionsCost(t *testing.T) {
	tr := flat(300_000, 1440)
	small := Fleet{}
	steady := RunWith(tr, small, fixed{"fixed", 10}, Interruptions{})
	flap := RunWith(tr, small, flapping{10, 12, 10}, Interruptions{})
	if steady.MovedPartitions != 0 || flap.MovedPartitions == 0 {
		t.Fatalf("moved partitions: steady %d, flapping %d", steady.MovedPartitions, flap.MovedPartitions)
	}
	// 64 GB of state (the fleet's, at 300,000 records/s): a move of a tenth of the
	// partitions restores 25 MB each, serially on each taker, and lags past the SLO.
	big := Fleet{StateBytesPerRecordPerSecond: 1e6}
	heavy := RunWith(tr, big, flapping{10, 12, 10}, Interruptions{})
	if heavy.MaxLagSeconds <= flap.MaxLagSeconds || heavy.SLOViolationMinutes == 0 {
		t.Fatalf("with 300 GB of state, max lag %.0f s and %d SLO minutes; with 0.6 GB %.0f s", heavy.MaxLagSeconds,
			heavy.SLOViolationMinutes, flap.MaxLagSeconds)
	}
}

// The lambda's policies read what the lambda reads: fifteen one-minute points with the minute
// under way not published, and five-minute history on the clock whose newest point is the
// mean of the minutes published so far, not their sum over 300 s.
func TestAutoscalerSeesCloudWatchShapes(t *testing.T) {
	var got []autoscaler.Inputs
	tr := flat(100_000, 123)
	RunWith(tr, Fleet{}, Autoscaler{Label: "spy", Policy: spyDecider{f: func(in autoscaler.Inputs) { got = append(got, in) }}}, Interruptions{})
	in := got[len(got)-1] // the end of minute 122
	if len(in.Rate) != Window || !math.IsNaN(in.Rate[Window-1]) || math.IsNaN(in.Rate[Window-2]) {
		t.Fatalf("window %v: want %d points, the last unpublished", in.Rate, Window)
	}
	if in.HistoryStep != HistoryStep || in.HistoryAhead != 2 || len(in.RateHistory) != 125/HistoryStep {
		t.Fatalf("history step %d, ahead %d, %d points; want 5, 2 (minutes 120-124 so far), 25", in.HistoryStep, in.HistoryAhead, len(in.RateHistory))
	}
	// Minutes 120 and 121 are published: the newest point is their mean.
	if last := in.RateHistory[len(in.RateHistory)-1]; math.Abs(last-100_000) > 1 {
		t.Fatalf("newest history point %.0f, want 100,000", last)
	}
}

type spyDecider struct{ f func(autoscaler.Inputs) }

func (s spyDecider) Decide(in autoscaler.Inputs) autoscaler.Decision {
	s.f(in)
	return autoscaler.Decision{Desired: in.Current}
}

// Predictive scaling launches ahead of a daily surge it has seen; target tracking alone
// meets it late.
func TestPredictiveScalingLaunchesAhead(t *testing.T) {
	rate := make([]float64, 3*1440)
	for m := range rate {
		rate[m] = 200_000
		if h := m % 1440; h >= 600 && h < 720 {
			rate[m] = 800_000
		}
	}
	tr := Trace{Rate: rate, Name: "surge"}
	f := Fleet{InterruptionsPerHour: 1e-9}
	pred := RunWith(tr, f, &PredictiveScaling{Target: 0.75, BufferMinutes: 5}, Interruptions{})
	tt := RunWith(tr, f, &TargetTracking{Target: 0.75, WarmupMinutes: 5, ScaleInCooldown: 5, MetricDelay: 2}, Interruptions{})
	// On the third day, the minute the surge starts.
	at := 2*1440 + 600
	if pred.Capacity[at] < 800_000 || tt.Capacity[at] >= 800_000 {
		t.Fatalf("capacity at the surge: predictive %.0f, target tracking %.0f", pred.Capacity[at], tt.Capacity[at])
	}
	if pred.SLOViolationMinutes >= tt.SLOViolationMinutes && tt.SLOViolationMinutes > 0 {
		t.Fatalf("SLO minutes: predictive %d, target tracking %d", pred.SLOViolationMinutes, tt.SLOViolationMinutes)
	}
}

// Step scaling adds 10, 20 or 30 % by how far CPU is over the alarm, and removes 10 % below
// the low alarm.
func TestStepScalingSteps(t *testing.T) {
	for _, tc := range []struct {
		cpu  float64
		cur  int
		want int
	}{{0.80, 20, 22}, {0.90, 20, 24}, {1.0, 20, 26}, {0.60, 20, 20}, {0.40, 20, 18}, {0.80, 3, 4}} {
		s := &StepScaling{High: 0.75, Low: 0.5, WarmupMinutes: 5}
		cpu := make([]float64, 20)
		for i := range cpu {
			cpu[i] = tc.cpu
		}
		if got := s.Desired(&Observation{Minute: 100, CPU: cpu, Desired: tc.cur}); got != tc.want {
			t.Errorf("CPU %.2f at %d workers: %d, want %d", tc.cpu, tc.cur, got, tc.want)
		}
	}
}
