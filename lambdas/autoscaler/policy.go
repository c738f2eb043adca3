// Package autoscaler is the Lambda that sizes a liveagg fleet: every minute it reads the
// fleet's metrics from CloudWatch, asks a Policy how many workers the load needs, and sets the
// Auto Scaling group's desired capacity, up at once and down slowly.
package autoscaler

import (
	"fmt"
	"math"
)

// Inputs are the fleet's recent metrics, one point per minute, oldest first. A point with no
// data is NaN.
type Inputs struct {
	// Rate is input records per second (RecordsIn summed over the fleet, per second).
	Rate []float64
	// Lag is the consumer lag of the fleet, records.
	Lag []float64
	// SecondsPerRecord is the processing time of one record on one core.
	SecondsPerRecord []float64
	// CPU is the fleet's average CPU utilisation, percent.
	CPU []float64
	// StateBytes is the fleet's aggregation state, bytes.
	StateBytes []float64
	// Current is the group's desired capacity now; Min and Max its limits.
	Current, Min, Max int32
	// Partitions of the input topic: more workers than partitions would idle.
	Partitions int32
	// RateHistory and StateHistory are the long history forecasting policies learn from:
	// one point every HistoryStep minutes, oldest first, ending now.
	RateHistory, StateHistory []float64
	HistoryStep               int
	// HistoryAhead is how many minutes the last history point ends after now: its bucket
	// is on the clock and holds the minutes so far.
	HistoryAhead int
	// Interruptions counts the fleet's spot interruptions in the last hour.
	Interruptions int
}

// Decision is a policy's answer with what it was based on, for the metrics and the logs.
type Decision struct {
	Desired int32
	// Need is what the latest minute alone needs, before stabilisation and limits.
	Need float64
	// Rate is the ingest rate planned for (a forecast, for a forecasting policy).
	Rate   float64
	Reason string
}

// Policy decides a fleet's size. The forecasting policy of the autoscaling issue plugs in here.
type Policy interface {
	Decide(Inputs) Decision
}

// Capacity sizes the fleet for its load: enough cores to process the ingest rate at the target
// utilisation plus the current lag within the catch-up time, and enough memory for the state,
// within the group's limits and the partition count. It scales up as soon as one minute needs
// it and down only to what every minute of the stabilisation window would have allowed.
type Capacity struct {
	// TargetUtilization is the fraction of a worker's cores the plan fills (default 0.6).
	TargetUtilization float64
	// CoresPerWorker is the vCPUs of one worker (default 2).
	CoresPerWorker float64
	// CatchUpSeconds is how fast lag should be worked off (default 600).
	CatchUpSeconds float64
	// MemoryPerWorker is the bytes of state one worker should hold at most (default 4 GiB).
	MemoryPerWorker float64
	// StabilizationPoints is how many recent minutes a scale-down must agree with (default 10).
	StabilizationPoints int
	// Forecast, if set, replaces the latest rate with a forecast of the coming minutes.
	Forecast func(rates []float64) float64
}

func (c Capacity) withDefaults() Capacity {
	if c.TargetUtilization <= 0 || c.TargetUtilization > 1 {
		c.TargetUtilization = 0.6
	}
	if c.CoresPerWorker <= 0 {
		c.CoresPerWorker = 2
	}
	if c.CatchUpSeconds <= 0 {
		c.CatchUpSeconds = 600
	}
	if c.MemoryPerWorker <= 0 {
		c.MemoryPerWorker = 4 << 30
	}
	if c.StabilizationPoints <= 0 {
		c.StabilizationPoints = 10
	}
	return c
}

// need is the workers one minute's metrics call for.
func (c Capacity) need(rate, lag, spr, state float64) (float64, string) {
	if math.IsNaN(rate) {
		rate = 0
	}
	if math.IsNaN(lag) {
		lag = 0
	}
	if math.IsNaN(state) {
		state = 0
	}
	cpu := 0.0
	if !math.IsNaN(spr) && spr > 0 {
		cpu = (rate + lag/c.CatchUpSeconds) * spr / (c.CoresPerWorker * c.TargetUtilization)
	}
	mem := state / c.MemoryPerWorker
	if mem > cpu {
		return mem, fmt.Sprintf("memory: %.2g bytes of state at %.2g per worker", state, c.MemoryPerWorker)
	}
	return cpu, fmt.Sprintf("cpu: %.0f rec/s + %.0f lag over %.0fs at %.3g s/rec on %.0f cores at %.0f%%",
		rate, lag, c.CatchUpSeconds, spr, c.CoresPerWorker, 100*c.TargetUtilization)
}

// Decide implements Policy.
func (c Capacity) Decide(in Inputs) Decision {
	c = c.withDefaults()
	n := len(in.Rate)
	if n == 0 {
		return Decision{Desired: in.Current, Reason: "no metrics: keeping the current size"}
	}
	at := func(s []float64, i int) float64 {
		if i < len(s) {
			return s[i]
		}
		return math.NaN()
	}
	// The last known processing cost stands in for minutes without one (an idle fleet
	// processes nothing and reports no cost).
	spr := math.NaN()
	for i := range in.SecondsPerRecord {
		if v := in.SecondsPerRecord[i]; !math.IsNaN(v) && v > 0 {
			spr = v
		}
	}
	if math.IsNaN(spr) {
		return Decision{Desired: clamp(in.Current, in), Reason: "no processing cost measured yet: keeping the current size"}
	}
	// The latest minute may not be published yet: the last point with data is "now".
	rate := lastValid(in.Rate)
	if c.Forecast != nil {
		rate = c.Forecast(in.Rate)
	}
	latest, reason := c.need(rate, lastValid(in.Lag), spr, lastValid(in.StateBytes))
	d := Decision{Need: latest, Rate: rate, Reason: reason}
	want := int32(math.Ceil(latest - 1e-9))
	if want > in.Current {
		d.Desired = clamp(want, in)
		d.Reason = "scale up: " + reason
		return d
	}
	// Down only as far as every minute of the window allows.
	most := latest
	for i := max(0, n-c.StabilizationPoints); i < n; i++ {
		need, _ := c.need(at(in.Rate, i), at(in.Lag, i), spr, at(in.StateBytes, i))
		most = max(most, need)
	}
	d.Desired = clamp(min(in.Current, int32(math.Ceil(most-1e-9))), in)
	switch {
	case d.Desired < in.Current:
		d.Reason = fmt.Sprintf("scale down: the last %d minutes need at most %.2f workers; %s", min(n, c.StabilizationPoints), most, reason)
	default:
		d.Reason = "hold: " + reason
	}
	return d
}

func clamp(v int32, in Inputs) int32 {
	if in.Partitions > 0 {
		v = min(v, in.Partitions)
	}
	v = max(v, 1)
	return max(in.Min, min(in.Max, v))
}
