// Package simulate replays a load trace minute by minute through a model of a liveagg fleet
// (workers that take minutes to boot and restore, a per-worker capacity, spot interruptions,
// a backlog that turns into lag) under an autoscaling policy, and measures what operators pay
// for and what they promise: CPU utilisation, minutes over the lag SLO, worker-hours and cost.
// It runs the autoscaler lambda's own policies next to the baselines operators use today
// (static provisioning for the peak, CPU target tracking, KEDA-style lag scaling), on the
// same trace and the same interruptions.
package simulate

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Trace is an ingest rate, records per second, one point a minute.
type Trace struct {
	Start time.Time
	Rate  []float64
	// Name says where the trace came from, for reports.
	Name string
}

// Peak is the trace's largest rate.
func (t Trace) Peak() float64 {
	p := 0.0
	for _, v := range t.Rate {
		p = max(p, v)
	}
	return p
}

// TraceConfig shapes a generated trace. Zero fields take the defaults in parentheses.
type TraceConfig struct {
	Days int // length (14)
	// Peak is the first day's peak rate, records/s (800,000).
	Peak float64
	// Trough is the night's rate as a fraction of the day's peak (0.3).
	Trough float64
	// Weekend is the weekend's level as a fraction of a weekday's (0.6).
	Weekend float64
	// GrowthPerWeek is the long-term trend (0.2: 20 % a week, compounding).
	GrowthPerWeek float64
	// BurstsPerDay are random bursts of +10 % to +50 % lasting 5 to 20 minutes (2).
	BurstsPerDay float64
	// OutagesPerWeek are 10-minute upstream outages whose records arrive late, over the next
	// 20 minutes (1).
	OutagesPerWeek float64
	// Noise is the minute-to-minute relative noise (0.02).
	Noise float64
	Seed  uint64 // (1)
}

func (c *TraceConfig) defaults() {
	if c.Days <= 0 {
		c.Days = 14
	}
	if c.Peak <= 0 {
		c.Peak = 800_000
	}
	if c.Trough <= 0 {
		c.Trough = 0.3
	}
	if c.Weekend <= 0 {
		c.Weekend = 0.6
	}
	if c.GrowthPerWeek == 0 {
		c.GrowthPerWeek = 0.2
	}
	if c.BurstsPerDay == 0 {
		c.BurstsPerDay = 2
	}
	if c.OutagesPerWeek == 0 {
		c.OutagesPerWeek = 1
	}
	if c.Noise == 0 {
		c.Noise = 0.02
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
}

// Generate makes a trace with daily and weekly seasonality, a compounding trend, random bursts
// and outages. It starts on a Monday at midnight UTC; the same config gives the same trace.
func Generate(c TraceConfig) Trace {
	c.defaults()
	r := rand.New(rand.NewPCG(c.Seed, 0x5eed))
	n := c.Days * 1440
	rate := make([]float64, n)
	for m := range rate {
		day := m / 1440
		hour := float64(m%1440) / 60
		// Daily: a smooth bump, lowest at 04:00, highest at 16:00.
		daily := c.Trough + (1-c.Trough)*0.5*(1-math.Cos(2*math.Pi*(hour-4)/24))
		// Weekly: weekends lower, with the change spread over the night around midnight.
		weekly := 1.0
		if day%7 >= 5 {
			weekly = c.Weekend
		}
		if h := float64(m%1440) / 60; h < 3 && (day%7 == 5 || day%7 == 0) {
			prev := 1.0
			if (day+6)%7 >= 5 {
				prev = c.Weekend
			}
			weekly = prev + (weekly-prev)*h/3
		}
		trend := math.Pow(1+c.GrowthPerWeek, float64(m)/10080)
		rate[m] = c.Peak * daily * weekly * trend * (1 + c.Noise*r.NormFloat64())
	}
	// Bursts.
	for range int(c.BurstsPerDay * float64(c.Days)) {
		at, dur := r.IntN(n), 5+r.IntN(16)
		size := 0.10 + 0.40*r.Float64()
		for i := at; i < min(n, at+dur); i++ {
			ramp := min(1, float64(i-at+1)/2, float64(at+dur-i)/2)
			rate[i] *= 1 + size*ramp
		}
	}
	// Outages: nothing arrives for 10 minutes, then the held records over the next 20.
	for range int(math.Round(c.OutagesPerWeek * float64(c.Days) / 7)) {
		at := r.IntN(max(1, n-30))
		held := 0.0
		for i := at; i < at+10; i++ {
			held += rate[i]
			rate[i] = 0
		}
		for i := at + 10; i < min(n, at+30); i++ {
			rate[i] += held / 20
		}
	}
	for i := range rate {
		rate[i] = max(0, rate[i])
	}
	return Trace{Start: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), Rate: rate,
		Name: fmt.Sprintf("generated: %d days, peak %.0f rec/s, +%.0f%%/week, %.1f bursts/day, %.1f outages/week, seed %d",
			c.Days, c.Peak, 100*c.GrowthPerWeek, c.BurstsPerDay, c.OutagesPerWeek, c.Seed)}
}

// ReadCSV reads a trace from CSV with a header naming a time column (time, timestamp: RFC 3339
// or Unix seconds) and a rate column (records_per_second, rate, value), the shape of a
// CloudWatch or Prometheus export. Points are placed on minutes; minutes without a point take
// the previous one.
func ReadCSV(r io.Reader, name string) (Trace, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return Trace{}, fmt.Errorf("trace %s: %w", name, err)
	}
	if len(rows) < 2 {
		return Trace{}, fmt.Errorf("trace %s: a header and at least one row are needed", name)
	}
	ti, ri := -1, -1
	for i, h := range rows[0] {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "time", "timestamp":
			ti = i
		case "records_per_second", "rate", "value":
			ri = i
		}
	}
	if ti < 0 || ri < 0 {
		return Trace{}, fmt.Errorf("trace %s: header %v needs a time column (time, timestamp) and a rate column (records_per_second, rate, value)", name, rows[0])
	}
	type point struct {
		t time.Time
		v float64
	}
	var pts []point
	for i, row := range rows[1:] {
		if len(row) <= max(ti, ri) {
			return Trace{}, fmt.Errorf("trace %s: line %d: %d fields", name, i+2, len(row))
		}
		t, err := parseTime(strings.TrimSpace(row[ti]))
		if err != nil {
			return Trace{}, fmt.Errorf("trace %s: line %d: %w", name, i+2, err)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(row[ri]), 64)
		if err != nil || v < 0 || math.IsNaN(v) {
			return Trace{}, fmt.Errorf("trace %s: line %d: rate %q is not a number of records per second", name, i+2, row[ri])
		}
		pts = append(pts, point{t.Truncate(time.Minute), v})
	}
	start, end := pts[0].t, pts[0].t
	for _, p := range pts {
		if p.t.Before(start) {
			start = p.t
		}
		if p.t.After(end) {
			end = p.t
		}
	}
	n := int(end.Sub(start)/time.Minute) + 1
	if n > 366*1440 {
		return Trace{}, errors.New("trace " + name + ": longer than a year")
	}
	rate := make([]float64, n)
	set := make([]bool, n)
	for _, p := range pts {
		k := int(p.t.Sub(start) / time.Minute)
		rate[k], set[k] = p.v, true
	}
	for i := 1; i < n; i++ {
		if !set[i] {
			rate[i] = rate[i-1]
		}
	}
	return Trace{Start: start, Rate: rate, Name: name}, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Unix(int64(f), 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 nor Unix seconds", s)
}
