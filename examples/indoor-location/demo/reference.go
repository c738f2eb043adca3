package demo

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/liveagg/liveagg/workers/gen"
	"github.com/liveagg/liveagg/workers/spec"
)

// rowID names one (series, window) of one rollup spec.
type rowID struct {
	Spec        string
	Key         string // the key field values, joined by "/"
	Size, Start int64  // ms
}

func (id rowID) String() string {
	return fmt.Sprintf("%s %s %s+%s", id.Spec, id.Key, fmtTime(id.Start), fmtSize(id.Size))
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

// rollup is one spec whose output the demo verifies: its key fields and window sizes.
type rollup struct {
	spec  string
	key   []string
	sizes []int64
}

func rollupOf(s *spec.Spec) rollup {
	r := rollup{spec: s.Name, key: s.Key}
	for _, w := range s.Windows {
		r.sizes = append(r.sizes, w.Millis())
	}
	return r
}

// reference recomputes every rollup of the pipeline in a single pass over the generated events
// themselves, with maps and sorted slices: it shares nothing with the engine (no decoder, slots,
// sketches or partials), only the rule level 1 applies per raw partition: a record older than
// the partition's watermark (its newest event time minus the allowed lateness) is late, and a
// malformed one is dead-lettered. Levels above see every accepted record exactly once.
type reference struct {
	rollups  []rollup
	lateness int64
	wm       []int64 // per raw partition
	rows     map[rowID]*refRow
	dead     map[string]int64
}

func newReference(partitions int, lateness int64, rollups []rollup) *reference {
	r := &reference{rollups: rollups, lateness: lateness, wm: make([]int64, partitions),
		rows: map[rowID]*refRow{}, dead: map[string]int64{}}
	for i := range r.wm {
		r.wm[i] = math.MinInt64
	}
	return r
}

// add accounts for one event produced to raw partition p, in produce order.
func (r *reference) add(p int, e gen.Event) {
	if e.Kind == gen.Malformed {
		r.dead["malformed"]++ // every malformed rendering fails to decode; the reason may vary
		return
	}
	if e.TS < r.wm[p] {
		r.dead["late"]++
		return
	}
	fields := map[string]string{
		"org": "org-" + pad(e.Org, 4), "site": "site-" + pad(e.Site, 2),
		"floor": strconv.Itoa(e.Floor), "zone": "zone-" + pad(e.Zone, 3),
	}
	for _, ru := range r.rollups {
		vals := make([]string, len(ru.key))
		for i, k := range ru.key {
			vals[i] = fields[k]
		}
		key := strings.Join(vals, "/")
		for _, size := range ru.sizes {
			id := rowID{ru.spec, key, size, e.TS - ((e.TS%size)+size)%size}
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
	}
	if wm := e.TS - r.lateness; wm > r.wm[p] {
		r.wm[p] = wm
	}
}

// checkRow compares one emitted row's values with the reference; it returns what differs.
// Count, sum, min and max are exact; distinct and quantiles within their sketches' accuracy.
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
		// The sketch's answer must lie within its relative accuracy of the values whose ranks
		// bracket q.
		r := q * float64(len(sorted)-1)
		lo, hi := sorted[int(math.Floor(r))], sorted[int(math.Ceil(r))]
		g := got[col]
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
