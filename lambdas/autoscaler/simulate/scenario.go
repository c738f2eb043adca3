package simulate

import (
	"fmt"

	"github.com/liveagg/liveagg/lambdas/autoscaler"
)

// Scenario is what `liveagg-simulate` runs with no flags: the reference scenario the policies are judged on.
type Scenario struct {
	Trace TraceConfig
	Fleet Fleet
}

// Policies returns the policies compared, the learning policy first.
func Policies(tr Trace, f Fleet) []Policy {
	f.defaults()
	return []Policy{
		Autoscaler{Label: "learning", Policy: autoscaler.Learning{CoresPerWorker: f.Cores, LeadMinutes: f.LeadMinutes}},
		NewStaticPeak(tr, f, 0.9),
		&TargetTracking{Target: 0.75, WarmupMinutes: 5, ScaleInCooldown: 5, MetricDelay: 2},
		&KEDALag{StabilizationMinutes: 5},
		Autoscaler{Label: "reactive-capacity", Policy: autoscaler.Capacity{CoresPerWorker: f.Cores, TargetUtilization: 0.75}},
		&PredictiveScaling{Target: 0.75, BufferMinutes: 5},
		&StepScaling{High: 0.75, Low: 0.5, WarmupMinutes: 5},
	}
}

// cheapestTargetTracking names the target-tracking run RunAll adds when even a 99 % target
// costs more than the first policy.
const cheapestTargetTracking = "target-tracking-cpu-99 (cheapest)"

// RunAll runs every policy on the same trace and fleet, then target tracking once more at
// the lowest CPU target whose worker-hours do not exceed the first policy's: the comparison at
// the same or lower cost. progress, if set, hears each result.
func RunAll(tr Trace, f Fleet, policies []Policy, progress func(Result)) []Result {
	var out []Result
	ev := DrawInterruptions(tr, f)
	for _, p := range policies {
		r := RunWith(tr, f, p, ev)
		if progress != nil {
			progress(r)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return out
	}
	// Worker-hours fall as the target rises: bisect on whole percents.
	budget := out[0].WorkerHours
	lo, hi := 75, 99
	var best *Result
	for lo <= hi {
		mid := (lo + hi) / 2
		tt := &TargetTracking{Target: float64(mid) / 100, WarmupMinutes: 5, ScaleInCooldown: 5, MetricDelay: 2}
		r := RunWith(tr, f, tt, ev)
		if r.WorkerHours <= budget {
			r.Policy = fmt.Sprintf("target-tracking-cpu-%d (cost-matched)", mid)
			best, hi = &r, mid-1
		} else {
			lo = mid + 1
		}
	}
	if best == nil {
		// Cheaper than target tracking at any target: the cheapest one is the comparison.
		r := RunWith(tr, f, &TargetTracking{Target: 0.99, WarmupMinutes: 5, ScaleInCooldown: 5, MetricDelay: 2}, ev)
		r.Policy = cheapestTargetTracking
		best = &r
	}
	if best != nil {
		if progress != nil {
			progress(*best)
		}
		out = append(out, *best)
	}
	return out
}
