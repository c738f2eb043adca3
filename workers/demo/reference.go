package demo

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/liveagg/liveagg/workers/gen"
)

// rowID names one (input partition, series, window) of the level-1 rollup: level 1 reads a
// topic keyed by device, so every partition holds some of every zone's events and emits its
// own row for it (merging them is level 2's job).
type rowID struct {
	Part            int32
	Org, Site, Zone string
	Size, Start     int64 // ms
}

func (id rowID) String() string {
	return fmt.Sprintf("p%d %s/%s/%s %s+%s", id.Part, id.Org, id.Site, id.Zone, fmtTime(id.Start), fmtSize(id.Size))
}

// refRow is a rollup recomputed the plain way: every value kept.
type refRow struct {
	count   int64
	sum     float64
	min     float64
	max     float64
	devices map[int]struct{}
	rssi    []float64
}

// reference recomputes the level-1 rollups from the generated events themselves, with maps and
// sorted slices: it shares nothing with the engine (no decoder, slots or sketches), only the
// rules every worker applies per partition: a record older than the partition's watermark (its
// newest event time minus the allowed lateness) is late, and a malformed one is dead-lettered.
type reference struct {
	sizes    []int64
	lateness int64
	parts    []refPartition
	rows     map[rowID]*refRow
	dead     map[string]int64
}

type refPartition struct {
	wm int64
}

func newReference(partitions int, sizes []int64, lateness int64) *reference {
	r := &reference{sizes: sizes, lateness: lateness, parts: make([]refPartition, partitions),
		rows: map[rowID]*refRow{}, dead: map[string]int64{}}
	for i := range r.parts {
		r.parts[i].wm = math.MinInt64
	}
	return r
}

// add accounts for one event produced to partition p, in produce order.
func (r *reference) add(p int, e gen.Event) {
	if e.Kind == gen.Malformed {
		r.dead["malformed"]++ // every malformed rendering fails to decode; the reason may vary
		return
	}
	part := &r.parts[p]
	if e.TS < part.wm {
		r.dead["late"]++
		return
	}
	org, site, zone := "org-"+pad(e.Org, 4), "site-"+pad(e.Site, 2), "zone-"+pad(e.Zone, 3)
	for _, size := range r.sizes {
		id := rowID{int32(p), org, site, zone, size, e.TS - ((e.TS%size)+size)%size}
		row := r.rows[id]
		if row == nil {
			row = &refRow{min: math.Inf(1), max: math.Inf(-1), devices: map[int]struct{}{}}
			r.rows[id] = row
		}
		row.count++
		row.sum += float64(e.DwellMs)
		row.min = math.Min(row.min, float64(e.RSSI))
		row.max = math.Max(row.max, float64(e.RSSI))
		row.devices[e.Device] = struct{}{}
		row.rssi = append(row.rssi, float64(e.RSSI))
	}
	if wm := e.TS - r.lateness; wm > part.wm {
		part.wm = wm
	}
}

// quantile is the exact value at rank q (the lower median and so on), the reference a
// DDSketch with relative accuracy a must stay within a of.
func quantile(sorted []float64, q float64) float64 {
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// checkRow compares one emitted row's values with the reference; it returns what differs.
func checkRow(id rowID, got map[string]float64, want *refRow, accuracy float64, quantiles []float64) []string {
	var diffs []string
	exact := func(col string, w float64) {
		if g, ok := got[col]; !ok || g != w {
			diffs = append(diffs, fmt.Sprintf("%v: %s = %v, want %v", id, col, got[col], w))
		}
	}
	exact("count", float64(want.count))
	exact("sum_dwell_ms", want.sum)
	exact("min_rssi", want.min)
	exact("max_rssi", want.max)
	// HyperLogLog at precision 14: about 0.8 % standard error; small sets are counted exactly.
	if d, n := got["distinct_device"], float64(len(want.devices)); math.Abs(d-n) > math.Max(1, 0.04*n) {
		diffs = append(diffs, fmt.Sprintf("%v: distinct_device = %v, want %v within 4 %%", id, d, n))
	}
	sorted := slices.Clone(want.rssi)
	slices.Sort(sorted)
	for _, q := range quantiles {
		col := "quantiles_rssi_p" + strconv.FormatFloat(q*100, 'f', -1, 64)
		// The sketch's answer must lie within its relative accuracy of some value whose rank is
		// near q: between the exact values one rank either side.
		lo, hi := quantile(sorted, q), sorted[min(len(sorted)-1, int(q*float64(len(sorted)-1))+1)]
		g := got[col]
		lo, hi = math.Min(lo, hi), math.Max(lo, hi)
		if g < lo-math.Abs(lo)*accuracy*1.01 || g > hi+math.Abs(hi)*accuracy*1.01 {
			diffs = append(diffs, fmt.Sprintf("%v: %s = %v, want within %v of [%v, %v]", id, col, g, accuracy, lo, hi))
		}
	}
	return diffs
}

func pad(v, width int) string {
	s := strconv.Itoa(v)
	for len(s) < width {
		s = "0" + s
	}
	return s
}
