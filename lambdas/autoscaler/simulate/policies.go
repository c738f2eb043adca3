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

// Window and HistoryStep are the lambda's reads: 15 one-minute points, and five-minute
// history points.
const (
	Window      = 15
	HistoryStep = 5
	// HistoryDays is how far back the lambda reads (CloudWatch keeps one-minute data 15 days).
	HistoryDays = 15
)

// Desired implements Policy. The inputs take the shape the lambda reads from CloudWatch: a
// window of one-minute points ending with the minute under way (not published yet: NaN), and
// the history as five-minute sums of consumed records over the minutes published, folded with
// the window as the lambda does.
func (a Autoscaler) Desired(o *Observation) int {
	end := o.Minute + 1 // exclusive, like the lambda's EndTime
	window := func(s []float64, scale float64) []float64 {
		w := make([]float64, Window)
		for i := range w {
			m := end - Window + i
			w[i] = math.NaN()
			if m >= 0 && m < len(s) {
				w[i] = s[m] * scale
			}
		}
		return w
	}
	consumed := window(o.Consumed, 1)
	nb := min(HistoryDays*1440, end) / HistoryStep
	rates, states := make([]float64, nb), make([]float64, nb)
	for b := range nb {
		lo := end - (nb-b)*HistoryStep
		sum, ssum, k := 0.0, 0.0, 0
		for m := lo; m < lo+HistoryStep && m < len(o.Consumed); m++ {
			sum += o.Consumed[m]
			ssum += o.State[m]
			k++
		}
		rates[b], states[b] = math.NaN(), math.NaN()
		if k > 0 {
			rates[b] = sum / HistoryStep // CloudWatch's Sum over the bucket's 300 s
			states[b] = ssum / float64(k)
		}
	}
	autoscaler.FoldRecentMinutes(rates, HistoryStep, consumed)
	in := autoscaler.Inputs{
		Rate: window(o.Rate, 1), Lag: window(o.Lag, 1), SecondsPerRecord: window(o.SPR, 1), CPU: window(o.CPU, 100), StateBytes: window(o.State, 1),
		Current: int32(o.Desired), Min: int32(o.Fleet.Min), Max: int32(o.Fleet.Max), Partitions: int32(o.Fleet.Partitions),
		RateHistory: rates, StateHistory: states, HistoryStep: HistoryStep, Interruptions: o.Interruptions,
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
