package simulate

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Fleet models the workers. Zero fields take the defaults in parentheses.
type Fleet struct {
	// Cores per worker (2) and SecondsPerRecord of one core (50 µs): a worker at 100 % CPU
	// applies Cores/SecondsPerRecord records per second (40,000).
	Cores            float64
	SecondsPerRecord float64
	// LeadMinutes is the time from asking for a worker to its consuming: boot plus restore (4).
	LeadMinutes int
	// InterruptionsPerHour is the fraction of running instances interrupted per hour at the
	// trace's peak; off-peak it scales with the load (0.05).
	InterruptionsPerHour float64
	// Partitions caps useful workers (256); Min and Max bound the group (1, 200).
	Partitions, Min, Max int
	// SLOSeconds is the lag objective (60).
	SLOSeconds float64
	// StateBytesPerRecordPerSecond sizes the state with the load (2,000 bytes per record/s).
	StateBytesPerRecordPerSecond float64
	// SpotPrice and OnDemandPrice are per worker-hour (m6g.large in us-east-1: 0.0320, 0.077).
	SpotPrice, OnDemandPrice float64
	Seed                     uint64 // interruptions (1)
}

func (f *Fleet) defaults() {
	def := func(p *float64, v float64) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&f.Cores, 2)
	def(&f.SecondsPerRecord, 50e-6)
	def(&f.InterruptionsPerHour, 0.05)
	def(&f.SLOSeconds, 60)
	def(&f.StateBytesPerRecordPerSecond, 2000)
	def(&f.SpotPrice, 0.0320)
	def(&f.OnDemandPrice, 0.077)
	if f.LeadMinutes <= 0 {
		f.LeadMinutes = 4
	}
	if f.Partitions <= 0 {
		f.Partitions = 256
	}
	if f.Min <= 0 {
		f.Min = 1
	}
	if f.Max <= 0 {
		f.Max = 200
	}
	if f.Seed == 0 {
		f.Seed = 1
	}
}

// Capacity is what one worker applies per second at full CPU.
func (f Fleet) Capacity() float64 { return f.Cores / f.SecondsPerRecord }

// Observation is what a policy sees at the end of a minute: the fleet's metrics so far, one
// point a minute, as workers publish them to CloudWatch.
type Observation struct {
	Minute int
	// Rate is the ingest rate (records consumed plus the lag's growth), records/s.
	Rate []float64
	// Lag is the backlog, records; CPU the running workers' utilisation (0-1); SPR the
	// measured processing seconds per record per core; State the state bytes.
	Lag, CPU, SPR, State []float64
	// Running workers consume; Booting ones were asked for and are not ready; Desired is the
	// group's desired capacity.
	Running, Booting, Desired int
	// Interruptions counts spot interruptions in the last 60 minutes.
	Interruptions int
	Fleet         Fleet
}

// Policy decides the group's desired capacity each minute.
type Policy interface {
	Name() string
	Desired(o *Observation) int
}

// Delayed policies see their metrics this many minutes late: the workers' own CloudWatch
// metrics arrive about a minute after the fact, EC2's CPU metrics (what target tracking
// alarms on) two or more. Policies without it see one minute late.
type Delayed interface {
	DelayMinutes() int
}

// Result is one policy's run.
type Result struct {
	Policy                      string  `json:"policy"`
	MeanCPU                     float64 `json:"mean_cpu_utilization"`
	P10CPU                      float64 `json:"p10_cpu_utilization"`
	SLOViolationMinutes         int     `json:"slo_violation_minutes"`
	SLOViolationMinutesFraction float64 `json:"slo_violation_minutes_fraction"`
	MaxLagSeconds               float64 `json:"max_lag_seconds"`
	WorkerHours                 float64 `json:"worker_hours"`
	Cost                        float64 `json:"cost"` // at spot prices, what the fleet runs on
	CostOnDemand                float64 `json:"cost_on_demand"`
	ScalingActions              int     `json:"scaling_actions"`
	Interruptions               int     `json:"interruptions"`
	Minutes                     int     `json:"minutes"`
	// Series for plots, one point a minute.
	Capacity   []float64 `json:"-"` // records/s the running workers can apply
	Workers    []float64 `json:"-"` // running + booting
	LagSeconds []float64 `json:"-"`
	CPU        []float64 `json:"-"`
}

type worker struct{ readyAt int }

// Run replays tr through the fleet under p.
func Run(tr Trace, f Fleet, p Policy) Result {
	f.defaults()
	n := len(tr.Rate)
	res := Result{Policy: p.Name(), Minutes: n, Capacity: make([]float64, n), Workers: make([]float64, n),
		LagSeconds: make([]float64, n), CPU: make([]float64, n)}
	// Interruptions and measurement noise come from one seeded source per run, so every
	// policy meets the same luck for the same number of draws.
	r := rand.New(rand.NewPCG(f.Seed, 0x1e7))
	peak := max(tr.Peak(), 1)
	capacity := f.Capacity()
	o := &Observation{Fleet: f}
	// Start with the fleet the first minute needs, ready: every policy begins from the same
	// warm state rather than from a cold boot.
	first := int(math.Ceil(tr.Rate[0] / (capacity * 0.8)))
	desired := max(f.Min, min(f.Max, first))
	fleet := make([]worker, desired)
	backlog, lastRate := 0.0, 0.0
	var interruptedAt []int
	var utils []float64
	for t := range n {
		// Spot interruptions, more frequent as the load (and the market) peaks.
		pInt := f.InterruptionsPerHour / 60 * tr.Rate[t] / peak
		kept := fleet[:0]
		for _, w := range fleet {
			if w.readyAt <= t && r.Float64() < pInt {
				interruptedAt = append(interruptedAt, t)
				res.Interruptions++
				continue
			}
			kept = append(kept, w)
		}
		fleet = kept
		// The group replaces interrupted instances: they boot like any other.
		for len(fleet) < desired {
			fleet = append(fleet, worker{readyAt: t + f.LeadMinutes})
		}
		running := 0
		for _, w := range fleet {
			if w.readyAt <= t {
				running++
			}
		}
		running = min(running, f.Partitions)
		arrived := tr.Rate[t] * 60
		cap := float64(running) * capacity * 60
		done := min(backlog+arrived, cap)
		prev := backlog
		backlog += arrived - done
		util := 0.0
		if cap > 0 {
			util = done / cap
		}
		// Lag in seconds is how long the backlog took to arrive: the age of the oldest record
		// (during an outage, at the last rate seen).
		if tr.Rate[t] > 0 {
			lastRate = tr.Rate[t]
		}
		lagSec := 0.0
		if backlog > 0 {
			lagSec = backlog / max(lastRate, 1)
		}
		if lagSec > f.SLOSeconds {
			res.SLOViolationMinutes++
		}
		res.MaxLagSeconds = max(res.MaxLagSeconds, lagSec)
		if running > 0 {
			utils = append(utils, util)
		}
		res.Capacity[t], res.Workers[t], res.LagSeconds[t], res.CPU[t] = cap/60, float64(len(fleet)), lagSec, util
		res.WorkerHours += float64(len(fleet)) / 60

		// What the workers publish: consumed records plus the lag's growth is the ingest.
		o.Minute = t
		o.Rate = append(o.Rate, done/60+(backlog-prev)/60)
		o.Lag = append(o.Lag, backlog)
		o.CPU = append(o.CPU, util)
		spr := math.NaN()
		if running > 0 {
			spr = f.SecondsPerRecord * (1 + 0.03*r.NormFloat64())
		}
		o.SPR = append(o.SPR, spr)
		o.State = append(o.State, tr.Rate[t]*f.StateBytesPerRecordPerSecond)
		o.Running, o.Booting, o.Desired = running, len(fleet)-running, desired
		for len(interruptedAt) > 0 && interruptedAt[0] <= t-60 {
			interruptedAt = interruptedAt[1:]
		}
		o.Interruptions = len(interruptedAt)

		delay := 1
		if d, ok := p.(Delayed); ok {
			delay = d.DelayMinutes()
		}
		next := desired
		if k := len(o.Rate) - delay; k > 0 {
			seen := &Observation{Minute: t, Rate: o.Rate[:k], Lag: o.Lag[:k], CPU: o.CPU[:k], SPR: o.SPR[:k], State: o.State[:k],
				Running: running, Booting: len(fleet) - running, Desired: desired, Interruptions: o.Interruptions, Fleet: f}
			next = max(f.Min, min(f.Max, f.Partitions, p.Desired(seen)))
		}
		if next != desired {
			res.ScalingActions++
		}
		desired = next
		// Scale in: booting instances go first, then running ones (they drain in seconds).
		for len(fleet) > desired {
			last := len(fleet) - 1
			for i, w := range fleet {
				if w.readyAt > t && w.readyAt >= fleet[last].readyAt {
					last = i
				}
			}
			fleet = slices.Delete(fleet, last, last+1)
		}
		for len(fleet) < desired {
			fleet = append(fleet, worker{readyAt: t + 1 + f.LeadMinutes})
		}
	}
	res.WorkerHours = math.Round(res.WorkerHours*100) / 100
	res.Cost = res.WorkerHours * f.SpotPrice
	res.CostOnDemand = res.WorkerHours * f.OnDemandPrice
	res.SLOViolationMinutesFraction = float64(res.SLOViolationMinutes) / float64(n)
	if len(utils) > 0 {
		sum := 0.0
		for _, u := range utils {
			sum += u
		}
		res.MeanCPU = sum / float64(len(utils))
		slices.Sort(utils)
		res.P10CPU = utils[len(utils)/10]
	}
	return res
}
