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
	// NoticeMinutes is the spot interruption notice (2): the interrupted worker drains at
	// once and is billed until the end of the notice; its replacement is asked for at once.
	NoticeMinutes int
	// RestoreBytesPerSecond is how fast a worker taking over a partition fetches and restores
	// its state (250 MB/s: the worker restores 1.02 GiB from S3 and catches up in about 4.4 s
	// once the group has noticed, workers/BENCHMARKS.md).
	RestoreBytesPerSecond float64
	// CheckpointBytesPerSecond is how fast a draining worker uploads its last checkpoint
	// (55 MB/s, the measured checkpoint upload).
	CheckpointBytesPerSecond float64
	// RebalanceSeconds is the pause of a moved partition while the group rebalances (5).
	RebalanceSeconds float64
	// MetricDelayMinutes is how late the workers' CloudWatch metrics are (1): the minute under
	// way is never published when the autoscaler reads.
	MetricDelayMinutes int
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
	def(&f.RestoreBytesPerSecond, 250e6)
	def(&f.CheckpointBytesPerSecond, 55e6)
	def(&f.RebalanceSeconds, 5)
	if f.NoticeMinutes <= 0 {
		f.NoticeMinutes = 2
	}
	if f.MetricDelayMinutes <= 0 {
		f.MetricDelayMinutes = 1
	}
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
	// Rate is the ingest rate (records consumed plus the lag's growth), records/s; Consumed
	// the records consumed, records/s (what RecordsIn sums).
	Rate, Consumed []float64
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
	ActionsPerDay               float64 `json:"scaling_actions_per_day"`
	Interruptions               int     `json:"interruptions"`
	// MovedPartitions counts partitions that changed worker (scaling and interruptions), each
	// paused for the rebalance and its state's restore.
	MovedPartitions int `json:"moved_partitions"`
	Minutes         int `json:"minutes"`
	// Series for plots, one point a minute.
	Capacity   []float64 `json:"-"` // records/s the running workers can apply
	Workers    []float64 `json:"-"` // running + booting
	LagSeconds []float64 `json:"-"`
	CPU        []float64 `json:"-"`
}

// Interruptions are the spot market's events for a trace, drawn once and met by every policy:
// instance slot s (the s-th instance of the group, lowest free slot first at launch) gets its
// two-minute notice at the minutes listed. A policy running fewer instances meets fewer of
// them, but never other ones.
type Interruptions struct {
	// At lists, per minute, the slots noticed in that minute.
	At map[int][]int
}

// DrawInterruptions draws the events for tr: each slot is interrupted at
// f.InterruptionsPerHour per hour at the trace's peak, proportionally less off-peak.
func DrawInterruptions(tr Trace, f Fleet) Interruptions {
	f.defaults()
	r := rand.New(rand.NewPCG(f.Seed, 0x1e7))
	peak := max(tr.Peak(), 1)
	slots := max(f.Max, f.Partitions)
	ev := Interruptions{At: map[int][]int{}}
	for s := range slots {
		acc, next := 0.0, r.ExpFloat64()
		for t, v := range tr.Rate {
			acc += f.InterruptionsPerHour / 60 * v / peak
			if acc >= next {
				ev.At[t] = append(ev.At[t], s)
				acc, next = 0, r.ExpFloat64()
			}
		}
	}
	return ev
}

type worker struct {
	slot    int
	readyAt int
	// leaveAt is when a noticed worker's instance ends (-1: not noticed).
	leaveAt int
}

// Run replays tr through the fleet under p, with interruptions drawn for tr and f.
func Run(tr Trace, f Fleet, p Policy) Result {
	return RunWith(tr, f, p, DrawInterruptions(tr, f))
}

// RunWith replays tr through the fleet under p, meeting the interruptions ev.
//
// Each minute: noticed workers drain (their last checkpoint uploads, their partitions move)
// and the group asks for their replacements; the running workers process the backlog and the
// minute's arrivals, less the time moved partitions spend paused (the rebalance, the drain's
// checkpoint, the state restore on the worker taking them over); the workers publish their
// metrics, which the policy sees MetricDelayMinutes late (its own delay if it has one); and
// the policy's answer is applied: booting instances go first on a scale-in, then the newest
// running ones, which drain.
func RunWith(tr Trace, f Fleet, p Policy, ev Interruptions) Result {
	f.defaults()
	n := len(tr.Rate)
	res := Result{Policy: p.Name(), Minutes: n, Capacity: make([]float64, n), Workers: make([]float64, n),
		LagSeconds: make([]float64, n), CPU: make([]float64, n)}
	// Measurement noise comes from one seeded source per run, so every policy meets the same
	// luck for the same number of draws.
	r := rand.New(rand.NewPCG(f.Seed, 0x5e7))
	capacity := f.Capacity()
	o := &Observation{Fleet: f}
	// Start with the fleet the first minute needs, ready: every policy begins from the same
	// warm state rather than from a cold boot.
	first := int(math.Ceil(tr.Rate[0] / (capacity * 0.8)))
	desired := max(f.Min, min(f.Max, first))
	var fleet []worker // ordered by slot
	used := map[int]bool{}
	launch := func(readyAt int) {
		s := 0
		for used[s] {
			s++
		}
		used[s] = true
		w := worker{slot: s, readyAt: readyAt, leaveAt: -1}
		i, _ := slices.BinarySearchFunc(fleet, s, func(w worker, s int) int { return w.slot - s })
		fleet = slices.Insert(fleet, i, w)
	}
	for range desired {
		launch(0)
	}
	var draining []worker // noticed, billed until leaveAt
	backlog, lastRate := 0.0, 0.0
	var interruptedAt []int
	var utils []float64
	prevRunning := 0
	for i := range fleet {
		if fleet[i].readyAt <= 0 {
			prevRunning++
		}
	}
	left := 0        // running workers that left since the last minute's accounting
	leftState := 0.0 // state bytes they had to checkpoint
	state := 0.0
	for t := range n {
		state = tr.Rate[t] * f.StateBytesPerRecordPerSecond
		// Spot notices: the worker drains now, its instance ends with the notice; the group
		// replaces it at once.
		for _, s := range ev.At[t] {
			for i, w := range fleet {
				if w.slot != s {
					continue
				}
				if w.readyAt <= t {
					left++
					leftState += state / float64(max(prevRunning, 1))
				}
				w.leaveAt = t + f.NoticeMinutes
				draining = append(draining, w)
				fleet = slices.Delete(fleet, i, i+1)
				interruptedAt = append(interruptedAt, t)
				res.Interruptions++
				break
			}
		}
		kept := draining[:0]
		for _, w := range draining {
			if w.leaveAt > t {
				kept = append(kept, w)
			} else {
				delete(used, w.slot)
			}
		}
		draining = kept
		for len(fleet) < desired {
			launch(t + f.LeadMinutes)
		}
		running := 0
		for _, w := range fleet {
			if w.readyAt <= t {
				running++
			}
		}
		running = min(running, f.Partitions)
		joined := max(0, running-(prevRunning-left))
		// Partitions that change worker: a sticky assignment moves a joiner's share from the
		// others and a leaver's share to them.
		moved := 0.0
		if running > 0 {
			moved = min(float64(f.Partitions), float64(f.Partitions)*float64(joined)/float64(running)+
				float64(f.Partitions)*float64(left)/float64(max(prevRunning, 1)))
		}
		pause := 0.0
		if moved > 0 {
			perPartition := state / float64(f.Partitions)
			// A taker restores its new partitions one after another.
			restore := math.Ceil(moved/float64(running)) * perPartition / f.RestoreBytesPerSecond
			drain := 0.0
			if left > 0 {
				drain = leftState / float64(left) / f.CheckpointBytesPerSecond
			}
			pause = f.RebalanceSeconds + drain + restore
			res.MovedPartitions += int(math.Round(moved))
		}
		left, leftState = 0, 0
		prevRunning = running
		arrived := tr.Rate[t] * 60
		full := float64(running) * capacity * 60
		// The moved partitions' share of the fleet processes nothing while paused.
		cap := max(0, full-moved/float64(f.Partitions)*float64(running)*capacity*min(pause, 60))
		done := min(backlog+arrived, cap)
		prev := backlog
		backlog += arrived - done
		util := 0.0
		if full > 0 {
			util = done / full
		}
		// Lag in seconds is how long the backlog took to arrive: the age of the oldest record
		// (during an outage, at the last rate seen). A moved partition is at least as late as
		// its pause.
		if tr.Rate[t] > 0 {
			lastRate = tr.Rate[t]
		}
		lagSec := 0.0
		if backlog > 0 {
			lagSec = backlog / max(lastRate, 1)
		}
		lagSec = max(lagSec, pause)
		if lagSec > f.SLOSeconds {
			res.SLOViolationMinutes++
		}
		res.MaxLagSeconds = max(res.MaxLagSeconds, lagSec)
		if running > 0 {
			utils = append(utils, util)
		}
		res.Capacity[t], res.Workers[t], res.LagSeconds[t], res.CPU[t] = cap/60, float64(len(fleet)), lagSec, util
		res.WorkerHours += float64(len(fleet)+len(draining)) / 60

		// What the workers publish: consumed records plus the lag's growth is the ingest.
		o.Minute = t
		o.Consumed = append(o.Consumed, done/60)
		o.Rate = append(o.Rate, done/60+(backlog-prev)/60)
		o.Lag = append(o.Lag, backlog)
		o.CPU = append(o.CPU, util)
		spr := math.NaN()
		if running > 0 {
			spr = f.SecondsPerRecord * (1 + 0.03*r.NormFloat64())
		}
		o.SPR = append(o.SPR, spr)
		o.State = append(o.State, state)
		for len(interruptedAt) > 0 && interruptedAt[0] <= t-60 {
			interruptedAt = interruptedAt[1:]
		}
		o.Interruptions = len(interruptedAt)

		delay := f.MetricDelayMinutes
		if d, ok := p.(Delayed); ok {
			delay = d.DelayMinutes()
		}
		next := desired
		if k := len(o.Rate) - delay; k > 0 {
			seen := &Observation{Minute: t, Rate: o.Rate[:k], Consumed: o.Consumed[:k], Lag: o.Lag[:k], CPU: o.CPU[:k], SPR: o.SPR[:k], State: o.State[:k],
				Running: running, Booting: len(fleet) - running, Desired: desired, Interruptions: o.Interruptions, Fleet: f}
			next = max(f.Min, min(f.Max, f.Partitions, p.Desired(seen)))
		}
		if next != desired {
			res.ScalingActions++
		}
		desired = next
		// Scale in: booting instances go first, then the newest running ones, which drain.
		for len(fleet) > desired {
			last := len(fleet) - 1
			for i, w := range fleet {
				if w.readyAt > t && (fleet[last].readyAt <= t || w.slot > fleet[last].slot) {
					last = i
				}
			}
			if fleet[last].readyAt <= t {
				left++
				leftState += state / float64(max(running, 1))
			}
			delete(used, fleet[last].slot)
			fleet = slices.Delete(fleet, last, last+1)
		}
		for len(fleet) < desired {
			launch(t + 1 + f.LeadMinutes)
		}
	}
	res.WorkerHours = math.Round(res.WorkerHours*100) / 100
	res.Cost = res.WorkerHours * f.SpotPrice
	res.CostOnDemand = res.WorkerHours * f.OnDemandPrice
	res.SLOViolationMinutesFraction = float64(res.SLOViolationMinutes) / float64(n)
	res.ActionsPerDay = float64(res.ScalingActions) / (float64(n) / 1440)
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
