package simulate

import (
	"fmt"
	"math"

	"github.com/liveagg/liveagg/lambdas/autoscaler"
)

// Autoscaler runs one of the autoscaler lambda's policies in the simulator: the observation
// becomes the Inputs the lambda would have read from CloudWatch.
type Autoscaler struct {
	Label  string
	Policy autoscaler.Policy
}

// Name implements Policy.
func (a Autoscaler) Name() string { return a.Label }

// Desired implements Policy.
func (a Autoscaler) Desired(o *Observation) int {
	last := func(s []float64, n int) []float64 { return s[max(0, len(s)-n):] }
	cpu := make([]float64, 0, 15)
	for _, u := range last(o.CPU, 15) {
		cpu = append(cpu, 100*u)
	}
	in := autoscaler.Inputs{
		Rate: last(o.Rate, 15), Lag: last(o.Lag, 15), SecondsPerRecord: last(o.SPR, 15), CPU: cpu, StateBytes: last(o.State, 15),
		Current: int32(o.Desired), Min: int32(o.Fleet.Min), Max: int32(o.Fleet.Max), Partitions: int32(o.Fleet.Partitions),
		RateHistory: o.Rate, StateHistory: o.State, HistoryStep: 1, Interruptions: o.Interruptions,
	}
	return int(a.Policy.Decide(in).Desired)
}

// StaticPeak provisions once for the trace's peak at a target utilisation, as operators do
// when they size for the busiest hour they expect.
type StaticPeak struct {
	Workers int
}

// NewStaticPeak sizes for the peak of tr at target utilisation.
func NewStaticPeak(tr Trace, f Fleet, target float64) StaticPeak {
	f.defaults()
	return StaticPeak{Workers: int(math.Ceil(tr.Peak() / (f.Capacity() * target)))}
}

// Name implements Policy.
func (s StaticPeak) Name() string { return "static-peak" }

// Desired implements Policy.
func (s StaticPeak) Desired(*Observation) int { return s.Workers }

// TargetTracking behaves like EC2 Auto Scaling target tracking on average CPU: a scale-out
// alarm when CPU is above the target for 3 consecutive minutes, a scale-in alarm when it is
// below 90 % of the target for 15, the new capacity proportional to CPU over the target, no
// further scale-out while new instances warm up, and a scale-in cooldown.
type TargetTracking struct {
	Target          float64 // 0.75
	WarmupMinutes   int     // 5 (scale-out cooldown)
	ScaleInCooldown int     // 5
	// MetricDelay is how late EC2's CPU metric arrives (2).
	MetricDelay     int
	Label           string
	lastOut, lastIn int
	initialised     bool
}

// Name implements Policy.
func (tt *TargetTracking) Name() string {
	if tt.Label != "" {
		return tt.Label
	}
	return fmt.Sprintf("target-tracking-cpu-%.0f", 100*tt.Target)
}

// DelayMinutes implements Delayed.
func (tt *TargetTracking) DelayMinutes() int { return max(1, tt.MetricDelay) }

// Desired implements Policy.
func (tt *TargetTracking) Desired(o *Observation) int {
	if !tt.initialised {
		tt.lastOut, tt.lastIn, tt.initialised = -1000, -1000, true
	}
	n := len(o.CPU)
	above, below := n >= 3, n >= 15
	for i := max(0, n-3); i < n && above; i++ {
		above = o.CPU[i] > tt.Target
	}
	for i := max(0, n-15); i < n && below; i++ {
		below = o.CPU[i] < 0.9*tt.Target
	}
	cur := o.Desired
	cpu := o.CPU[n-1]
	switch {
	case above && o.Minute-tt.lastOut >= tt.WarmupMinutes:
		// CPU is capped at 100 %: with a backlog, one step adds at most a third.
		want := int(math.Ceil(float64(max(o.Running, 1)) * cpu / tt.Target))
		if want > cur {
			tt.lastOut = o.Minute
			return want
		}
	case below && o.Minute-tt.lastIn >= tt.ScaleInCooldown && o.Minute-tt.lastOut >= tt.WarmupMinutes:
		want := max(1, int(math.Ceil(float64(o.Running)*cpu/tt.Target)))
		if want < cur {
			tt.lastIn = o.Minute
			return want
		}
	}
	return cur
}

// KEDALag scales on consumer lag as KEDA's Kafka scaler does: the HPA's desired replicas are
// the lag it reads over a lag threshold per replica, capped by the partition count, scaled up
// at once and down after the HPA's 5-minute stabilisation window. The lag KEDA reads is the
// consumer group's committed offsets against the log end, and liveagg commits an offset when a
// checkpoint lands, so besides the backlog it holds on average half a checkpoint interval of
// input: that part grows with the rate, which is what lets lag scaling track load at all.
type KEDALag struct {
	// CommitIntervalSeconds is how often offsets are committed (30: the checkpoint interval).
	CommitIntervalSeconds float64
	// LagThreshold is records of lag per replica (default: what one worker at 75 % CPU
	// shows from commit staleness alone, so steady load is sized like 75 % target tracking).
	LagThreshold float64
	// StabilizationMinutes for scale-down (5).
	StabilizationMinutes int
	history              []int
}

// Name implements Policy.
func (k *KEDALag) Name() string { return "keda-kafka-lag" }

// Desired implements Policy.
func (k *KEDALag) Desired(o *Observation) int {
	ci := k.CommitIntervalSeconds
	if ci <= 0 {
		ci = 30
	}
	th := k.LagThreshold
	if th <= 0 {
		th = o.Fleet.Capacity() * 0.75 * ci / 2
	}
	n := len(o.Lag)
	lag := o.Lag[n-1] + o.Rate[n-1]*ci/2
	want := max(1, int(math.Ceil(lag/th)))
	k.history = append(k.history, want)
	w := max(1, k.StabilizationMinutes)
	if len(k.history) > w {
		k.history = k.history[len(k.history)-w:]
	}
	if want >= o.Desired {
		return want
	}
	most := 0
	for _, h := range k.history {
		most = max(most, h)
	}
	return min(o.Desired, most)
}
