package autoscaler

import (
	"fmt"
	"math"
	"slices"
)

// Learning is the policy that allocates ahead of load. A new spot worker needs minutes to boot
// and restore state, so it sizes the fleet for what the forecast says will arrive by the time
// a worker started now is ready, at the forecast's upper bound:
//
//	workers = max( max(upper forecast, load now) over the lead time / (learned capacity × target),
//	               forecast state / (memory per worker × memory target),
//	               (forecast or load now + lag by the time a worker is ready / catch-up time) / learned capacity )
//	          + the capacity spot interruptions are expected to take during a lead time
//
// bounded by min/max and the partition count. Per-worker capacity is learned from the
// workers' own processing time per record. "Load now" is the median of the last published
// minutes, or the latest minute when it stands out of the minute-to-minute noise, less twice
// that noise. It scales up at once, to past the noise; it scales down only when the backlog is
// not growing, to no less than a high percentile of the stabilisation window's load (relative
// to the seasonal shape when there is one), and only by a step larger than the least step and
// the noise. Forecast (Predict) and policy are robust by construction; lambdas/README.md says
// how.
type Learning struct {
	// TargetUtilization is the CPU the plan aims at under the upper forecast (default 0.92).
	TargetUtilization float64
	// CoresPerWorker is the vCPUs of one worker (default 2).
	CoresPerWorker float64
	// LeadMinutes is the time from asking for a worker to its consuming (default 4).
	LeadMinutes int
	// CatchUpSeconds is how fast lag should be worked off (default 60).
	CatchUpSeconds float64
	// MemoryPerWorker and MemoryTarget bound state per worker (default 4 GiB at 0.8).
	MemoryPerWorker, MemoryTarget float64
	// StabilizationPoints is how many recent minutes a scale-down must respect (default 15).
	StabilizationPoints int
}

func (l Learning) withDefaults() Learning {
	if l.TargetUtilization <= 0 || l.TargetUtilization > 1 {
		l.TargetUtilization = 0.92
	}
	if l.CoresPerWorker <= 0 {
		l.CoresPerWorker = 2
	}
	if l.LeadMinutes <= 0 {
		l.LeadMinutes = 4
	}
	if l.CatchUpSeconds <= 0 {
		l.CatchUpSeconds = 60
	}
	if l.MemoryPerWorker <= 0 {
		l.MemoryPerWorker = 4 << 30
	}
	if l.MemoryTarget <= 0 || l.MemoryTarget > 1 {
		l.MemoryTarget = 0.8
	}
	if l.StabilizationPoints <= 0 {
		l.StabilizationPoints = 15
	}
	return l
}

// Decide implements Policy. It forecasts from RateHistory and StateHistory when the inputs
// carry them, and from Rate and StateBytes otherwise.
func (l Learning) Decide(in Inputs) Decision {
	l = l.withDefaults()
	rates, step := in.RateHistory, max(in.HistoryStep, 1)
	if len(rates) == 0 {
		rates, step = in.Rate, 1
	}
	if len(rates) == 0 {
		return Decision{Desired: in.Current, Reason: "no metrics: keeping the current size"}
	}
	// Capacity of one worker: its cores over the recent median processing time per record.
	var sprs []float64
	for _, v := range in.SecondsPerRecord[max(0, len(in.SecondsPerRecord)-15):] {
		if !math.IsNaN(v) && v > 0 {
			sprs = append(sprs, v)
		}
	}
	if len(sprs) == 0 {
		return Decision{Desired: clamp(in.Current, in), Reason: "no processing cost measured yet: keeping the current size"}
	}
	slices.Sort(sprs)
	capacity := l.CoresPerWorker / sprs[len(sprs)/2]

	// The forecast covers the minutes until a worker asked for now is ready, and the one it
	// starts in: what the fleet must hold until the next worker can come.
	minutes := l.LeadMinutes + 1
	fr := PredictAhead(rates, step, in.HistoryAhead, minutes)
	// "Now" is the median of the last published minutes, not one noisy minute; without a
	// season to go by, persistence of the one-minute series beats coarse history.
	now := lastValid(rates)
	if recent := validTail(in.Rate, nowMinutes); len(recent) > 0 {
		now = median(recent)
		if fr.Method == "persistence" && step > 1 {
			fr = Predict(in.Rate, 1, minutes)
		}
	}
	if math.IsNaN(fr.Mean) || math.IsNaN(now) {
		// No rate published at all: a NaN forecast would read as "scale down to Min".
		return Decision{Desired: in.Current, Reason: "no rate metrics: keeping the current size"}
	}
	// The load now is a floor under the forecast (a burst under way, a level the clamped
	// ratio does not reach), without the forecast's error margin: that margin measures the
	// forecast, not the present. On noisy minutes only what "now" shows beyond its own noise
	// counts: the median of a few noisy minutes swings by more than the load moves, and a
	// backlog absorbs a minute's noise. The latest minute alone counts as soon as it stands
	// out of the minute noise: a burst is planned for a minute earlier than the median sees it.
	minuteNoise := min(maxMinuteNoise, noiseOf(in.Rate, l.StabilizationPoints))
	noise := minuteNoise / math.Sqrt(nowMinutes)
	present := now * (1 - 2*noise)
	if last := lastValid(in.Rate); len(in.Rate) > 0 && !math.IsNaN(last) {
		present = max(present, last*(1-2*minuteNoise))
	}
	upper := max(fr.Upper, present)
	cpu := upper / (capacity * l.TargetUtilization)
	lag := 0.0
	if v := lastValid(in.Lag); len(in.Lag) > 0 && !math.IsNaN(v) {
		lag = v // the latest minute may not be published yet, as in Capacity
	}
	// The lag to work off is the one the fleet will have when a worker asked for now is
	// ready: what it has plus what the load now beyond its capacity adds over the lead time
	// (a rise still to come is the forecast's part).
	lag += max(0, present-float64(in.Current)*capacity) * 60 * float64(l.LeadMinutes)
	catchUp := (max(fr.Mean, present) + lag/l.CatchUpSeconds) / capacity
	mem := 0.0
	states, sstep := in.StateHistory, max(in.HistoryStep, 1)
	if len(states) == 0 {
		states, sstep = in.StateBytes, 1
	}
	if s := lastValid(states); len(states) > 0 && !math.IsNaN(s) {
		mem = s / (l.MemoryPerWorker * l.MemoryTarget)
		// The state is forecast only when it comes within half of binding: the forecast
		// costs as much as the rate's, and far from binding it changes nothing.
		if 2*mem >= max(cpu, catchUp) {
			if fs := PredictAhead(states, sstep, in.HistoryAhead, minutes); !math.IsNaN(fs.Upper) {
				mem = max(fs.Upper, s) / (l.MemoryPerWorker * l.MemoryTarget)
			}
		}
	}
	need, why := cpu, "forecast"
	if present > fr.Upper {
		why = "load now"
	}
	if catchUp > need {
		need, why = catchUp, "lag catch-up"
	}
	if mem > need {
		need, why = mem, "memory"
	}
	// Spot-aware headroom: the workers interruptions will take while replacements boot.
	// The expected number, not rounded up on its own: one interruption in the last hour
	// does not call for a whole spare worker for the next.
	spare := float64(in.Interruptions) / 60 * float64(l.LeadMinutes+1)
	d := Decision{Need: need + spare, Rate: upper,
		Reason: fmt.Sprintf("%s (%s, level %.2f, shift %+d min, margin %.0f%%): upper %.0f rec/s over %d min, now %.0f, lag %.0f, capacity %.0f rec/s per worker, state needs %.2f, +%.2f for %d interruptions/h",
			why, fr.Method, fr.Level, fr.ShiftMinutes, 100*fr.Margin, upper, minutes, now, lag, capacity, mem, spare, in.Interruptions)}
	want := int32(math.Ceil(need + spare - 1e-9))
	if want > in.Current {
		// Up at once, and past the noise of the measurement: on noisy minutes the next
		// excursion is then already covered rather than another step.
		d.Desired = clamp(int32(math.Ceil((need+spare)*(1+noise)-1e-9)), in)
	}
	if want >= in.Current {
		d.Desired = clamp(max(want, d.Desired), in)
		if d.Desired > in.Current {
			d.Reason = "scale up: " + d.Reason
		} else {
			d.Reason = "hold: " + d.Reason
		}
		return d
	}
	// Never down while a backlog grows: that capacity is not spare, whatever the rate says.
	if lags := lastValidN(in.Lag, 2); len(lags) == 2 && lags[1] > lags[0] {
		d.Desired = in.Current
		d.Reason = "hold (backlog growing): " + d.Reason
		return d
	}
	// Down only to what a high percentile of the window's minutes would need (a maximum
	// would let one noisy minute hold the fleet), and only by a step worth a rebalance. With
	// a seasonal shape, the percentile is of each minute's load relative to the shape, applied
	// to the shape over the coming minutes: a decline the seasons know is followed, a dip
	// they do not know (an upstream outage, its records still to come) holds the fleet.
	floor := 0.0
	var rel, raw []float64
	w := min(len(in.Rate), l.StabilizationPoints)
	for j, v := range in.Rate[len(in.Rate)-w:] {
		if math.IsNaN(v) {
			continue
		}
		raw = append(raw, v)
		if ref := fr.Reference(j - (w - 1)); ref > 0 {
			rel = append(rel, v/ref)
		}
	}
	ahead := math.Inf(-1)
	for m := 1; m <= minutes; m++ {
		if v := fr.Reference(m); !math.IsNaN(v) {
			ahead = max(ahead, v)
		}
	}
	var load float64
	switch {
	case len(rel) > 0 && len(rel) == len(raw) && !math.IsInf(ahead, -1):
		slices.Sort(rel)
		load = rel[int(floorPercentile*float64(len(rel)-1))] * ahead
	case len(raw) > 0:
		slices.Sort(raw)
		load = raw[int(floorPercentile*float64(len(raw)-1))]
	default:
		for _, v := range validTail(rates, max(1, l.StabilizationPoints/step)) {
			load = max(load, v)
		}
	}
	floor = math.Ceil(load/(capacity*l.TargetUtilization) + spare - 1e-9)
	// A scale-down lands where a scale-up would: past the measurement's noise.
	target := clamp(min(in.Current, int32(max(math.Ceil((need+spare)*(1+noise)-1e-9), floor))), in)
	// The least step down: a fraction of the fleet, and more than the measurement's own noise
	// (what the median "now" of noisy minutes swings by), so noise does not move the fleet.
	band := max(minStepDown, 2*noise)
	step32 := max(1, int32(math.Ceil(band*float64(in.Current)-1e-9)))
	d.Desired = in.Current
	if in.Current-target >= step32 || in.Current > clamp(in.Current, in) {
		d.Desired = target
	}
	if d.Desired < in.Current {
		d.Reason = "scale down: " + d.Reason
	} else {
		d.Reason = "hold (stabilising): " + d.Reason
	}
	return d
}

const (
	// nowMinutes is how many published minutes "now" is the median of.
	nowMinutes = 3
	// floorPercentile of the stabilisation window's rates is what a scale-down keeps.
	floorPercentile = 0.8
	// minStepDown is the least scale-down worth its rebalance, as a fraction of the fleet.
	minStepDown = 0.05
	// maxMinuteNoise bounds the minute-to-minute noise the policy allows for: beyond it a
	// minute says little, and the discount on "now" (twice the median's noise) and the step
	// past it stay within a half and a quarter.
	maxMinuteNoise = 0.43
)

// noiseOf is the relative minute-to-minute noise of the last n points of x: the robust
// standard deviation of each minute's log ratio to the mean of its two neighbours, so a trend
// or a level change is not counted as noise.
func noiseOf(x []float64, n int) float64 {
	v := x[max(0, len(x)-n):]
	var devs []float64
	for i := 1; i+1 < len(v); i++ {
		m := (v[i-1] + v[i+1]) / 2
		if v[i] > 0 && m > 0 {
			devs = append(devs, math.Abs(math.Log(v[i]/m)))
		}
	}
	if len(devs) < 4 {
		return 0
	}
	// Against the mean of two neighbours a minute's log ratio has 1.22 times its own spread.
	return 1.4826 * median(devs) / 1.2247
}

// lastValidN returns the last k points of x that are not NaN, oldest first.
func lastValidN(x []float64, k int) []float64 {
	var out []float64
	for i := len(x) - 1; i >= 0 && len(out) < k; i-- {
		if !math.IsNaN(x[i]) {
			out = append(out, x[i])
		}
	}
	slices.Reverse(out)
	return out
}

// validTail returns the last n points of x that are not NaN, copied.
func validTail(x []float64, n int) []float64 {
	var out []float64
	for _, v := range x[max(0, len(x)-n):] {
		if !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

// NeedsHistory tells the lambda to read the long history the forecast learns from.
func (Learning) NeedsHistory() bool { return true }
