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
//	workers = max( upper forecast rate over the lead time / (learned capacity × target),
//	               forecast state / (memory per worker × memory target),
//	               (forecast rate + lag / catch-up time) / learned capacity )
//	          + the capacity spot interruptions are expected to take during a lead time
//
// bounded by min/max and the partition count. Per-worker capacity is learned from the
// workers' own processing time per record. It scales up at once and down only to what the
// highest rate seen in the stabilisation window would need.
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

	// The horizon covers the lead time; with coarse history one point more, since the point
	// holding the moment a new worker starts only partly lies within the lead time.
	horizon := max(1, (l.LeadMinutes+step-1)/step)
	if step > 1 {
		horizon++
	}
	fr := Predict(rates, step, horizon)
	// The freshest rate is the one-minute series; without a season to go by, persistence of
	// it beats persistence of coarse history.
	now := lastValid(rates)
	if len(in.Rate) > 0 && !math.IsNaN(lastValid(in.Rate)) {
		now = lastValid(in.Rate)
		if fr.Method == "persistence" && step > 1 {
			fr = Predict(in.Rate, 1, l.LeadMinutes)
		}
	}
	if math.IsNaN(fr.Mean) || math.IsNaN(now) {
		// No rate published at all: a NaN forecast would read as "scale down to Min".
		return Decision{Desired: in.Current, Reason: "no rate metrics: keeping the current size"}
	}
	// A burst under way shows in the last minute before the forecast's hourly level moves:
	// plan for it at once, with the forecast's error margin.
	upper := max(fr.Upper, now*fr.Upper/max(fr.Mean, 1e-9))
	cpu := upper / (capacity * l.TargetUtilization)
	lag := 0.0
	if v := lastValid(in.Lag); len(in.Lag) > 0 && !math.IsNaN(v) {
		lag = v // the latest minute may not be published yet, as in Capacity
	}
	catchUp := (max(fr.Mean, now) + lag/l.CatchUpSeconds) / capacity
	mem := 0.0
	states, sstep := in.StateHistory, max(in.HistoryStep, 1)
	if len(states) == 0 {
		states, sstep = in.StateBytes, 1
	}
	if len(states) > 0 {
		fs := Predict(states, sstep, max(1, (l.LeadMinutes+sstep-1)/sstep))
		if s := max(fs.Upper, lastValid(states)); !math.IsNaN(s) {
			mem = s / (l.MemoryPerWorker * l.MemoryTarget)
		}
	}
	need, why := cpu, "forecast"
	if catchUp > need {
		need, why = catchUp, "lag catch-up"
	}
	if mem > need {
		need, why = mem, "memory"
	}
	// Spot-aware headroom: the workers interruptions will take while replacements boot.
	spare := 0.0
	if in.Interruptions > 0 {
		spare = math.Ceil(float64(in.Interruptions) / 60 * float64(l.LeadMinutes+1))
	}
	d := Decision{Need: need + spare, Rate: fr.Upper,
		Reason: fmt.Sprintf("%s (%s): upper %.0f rec/s over %d min, now %.0f, lag %.0f, capacity %.0f rec/s per worker, state needs %.2f, +%.0f for %d interruptions/h",
			why, fr.Method, fr.Upper, l.LeadMinutes, now, lag, capacity, mem, spare, in.Interruptions)}
	want := int32(math.Ceil(need + spare - 1e-9))
	if want >= in.Current {
		d.Desired = clamp(want, in)
		if d.Desired > in.Current {
			d.Reason = "scale up: " + d.Reason
		} else {
			d.Reason = "hold: " + d.Reason
		}
		return d
	}
	// Down only as far as the busiest minute of the window allows.
	recent := rates[max(0, len(rates)-max(1, l.StabilizationPoints/step)):]
	peak := upper
	for _, v := range recent {
		if !math.IsNaN(v) {
			peak = max(peak, v)
		}
	}
	floor := math.Ceil(peak/(capacity*l.TargetUtilization) + spare - 1e-9)
	d.Desired = clamp(min(in.Current, int32(max(float64(want), floor))), in)
	if d.Desired < in.Current {
		d.Reason = "scale down: " + d.Reason
	} else {
		d.Reason = "hold (stabilising): " + d.Reason
	}
	return d
}

// NeedsHistory tells the lambda to read the long history the forecast learns from.
func (Learning) NeedsHistory() bool { return true }
