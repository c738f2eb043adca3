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
	// Buckets on the clock's five minutes (the trace starts on one), the last holding the
	// current five so far.
	hend := (end + HistoryStep - 1) / HistoryStep * HistoryStep
	nb := min(HistoryDays*1440, hend) / HistoryStep
	rates, states := make([]float64, nb), make([]float64, nb)
	for b := range nb {
		lo := hend - (nb-b)*HistoryStep
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
	autoscaler.FoldRecentMinutes(rates, HistoryStep, hend-end, consumed)
	in := autoscaler.Inputs{
		Rate: window(o.Rate, 1), Lag: window(o.Lag, 1), SecondsPerRecord: window(o.SPR, 1), CPU: window(o.CPU, 100), StateBytes: window(o.State, 1),
		Current: int32(o.Desired), Min: int32(o.Fleet.Min), Max: int32(o.Fleet.Max), Partitions: int32(o.Fleet.Partitions),
		RateHistory: rates, StateHistory: states, HistoryStep: HistoryStep, HistoryAhead: hend - end, Interruptions: o.Interruptions,
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

// PredictiveScaling behaves like EC2 Auto Scaling predictive scaling in forecast-and-scale mode
// beside a target-tracking policy, as AWS recommends running it: each hour it forecasts the
// load of every hour of the next 48 from the history (at least a day of it, up to 14 days),
// and holds the capacity that hour's forecast needs at the target as the group's minimum from
// BufferMinutes before the hour (the scheduling buffer that launches instances ahead);
// target tracking at the same target scales out above that minimum and in down to it.
//
// The forecast of an hour is its mean load a week earlier, scaled by how the last day compares
// with the same day a week earlier, with a week of history; with less, the mean of the same
// hour over the last days. Like AWS's, it forecasts hourly means: a peak within the hour is
// left to target tracking.
type PredictiveScaling struct {
	Target        float64 // 0.75
	BufferMinutes int     // 5
	tt            *TargetTracking
	hourly        []float64 // mean ingest per hour of the trace so far
	plan          map[int]int
	planned       int // hour of the last forecast
}

// Name implements Policy.
func (p *PredictiveScaling) Name() string {
	return fmt.Sprintf("predictive+target-tracking-%.0f", 100*p.Target)
}

// DelayMinutes implements Delayed: the target tracking half reads EC2's CPU metric.
func (p *PredictiveScaling) DelayMinutes() int { return 2 }

// Desired implements Policy.
func (p *PredictiveScaling) Desired(o *Observation) int {
	if p.tt == nil {
		p.tt = &TargetTracking{Target: p.Target, WarmupMinutes: 5, ScaleInCooldown: 5, MetricDelay: 2}
		p.plan, p.planned = map[int]int{}, -1
	}
	buffer := max(p.BufferMinutes, 1)
	// Complete hours of metrics so far.
	for h := len(p.hourly); (h+1)*60 <= len(o.Rate); h++ {
		sum := 0.0
		for _, v := range o.Rate[h*60 : (h+1)*60] {
			sum += v
		}
		p.hourly = append(p.hourly, sum/60)
	}
	nowHour := (o.Minute + buffer) / 60
	if hrs := len(p.hourly); hrs >= 24 && nowHour != p.planned {
		p.planned = nowHour
		level := 1.0
		if hrs >= 168+24 {
			var last, before float64
			for i := hrs - 24; i < hrs; i++ {
				last += p.hourly[i]
				before += p.hourly[i-168]
			}
			if before > 0 {
				level = max(0.5, min(2, last/before))
			}
		}
		for h := nowHour; h < nowHour+48; h++ {
			var load float64
			if hrs >= 168 {
				ref := h - 168
				for ref >= hrs {
					ref -= 168
				}
				load = p.hourly[ref] * level
			} else {
				var sum float64
				k := 0
				for ref := h - 24; ref >= 0 && k < 7; ref -= 24 {
					if ref < hrs {
						sum += p.hourly[ref]
						k++
					}
				}
				load = sum / float64(max(k, 1))
			}
			p.plan[h] = int(math.Ceil(load / (o.Fleet.Capacity() * p.Target)))
		}
	}
	floor := p.plan[nowHour]
	want := p.tt.Desired(o)
	return max(want, floor)
}

// StepScaling behaves like an EC2 Auto Scaling step scaling policy on average CPU: a high
// alarm when CPU is at or above High for 3 consecutive minutes adds 10 % of the group below
// High+10 points, 20 % below High+20 and 30 % above; a low alarm when it stays under Low for 15
// minutes removes 10 %; at least one instance per step, and no further step while new
// instances warm up.
type StepScaling struct {
	High, Low     float64 // 0.75, 0.5
	WarmupMinutes int     // 5
	lastStep      int
	initialised   bool
}

// Name implements Policy.
func (s *StepScaling) Name() string {
	return fmt.Sprintf("step-scaling-cpu-%.0f-%.0f", 100*s.Low, 100*s.High)
}

// DelayMinutes implements Delayed: EC2's CPU metric.
func (s *StepScaling) DelayMinutes() int { return 2 }

// Desired implements Policy.
func (s *StepScaling) Desired(o *Observation) int {
	if !s.initialised {
		s.lastStep, s.initialised = -1000, true
	}
	n := len(o.CPU)
	if n == 0 || o.Minute-s.lastStep < max(s.WarmupMinutes, 1) {
		return o.Desired
	}
	above, below := n >= 3, n >= 15
	for i := max(0, n-3); i < n && above; i++ {
		above = o.CPU[i] >= s.High
	}
	for i := max(0, n-15); i < n && below; i++ {
		below = o.CPU[i] < s.Low
	}
	cpu, cur := o.CPU[n-1], o.Desired
	switch {
	case above:
		pct := 0.10
		if cpu >= s.High+0.2 {
			pct = 0.30
		} else if cpu >= s.High+0.1 {
			pct = 0.20
		}
		s.lastStep = o.Minute
		return cur + max(1, int(math.Round(pct*float64(cur))))
	case below && cur > 1:
		s.lastStep = o.Minute
		return cur - max(1, int(math.Round(0.10*float64(cur))))
	}
	return cur
}
