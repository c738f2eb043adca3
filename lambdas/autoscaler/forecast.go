package autoscaler

import (
	"math"
	"slices"
)

// Forecast is a prediction of a series over a horizon: the largest expected value in it, and
// an upper bound from the errors the same method made recently.
type Forecast struct {
	Mean, Upper float64
	// Method says which seasonality the forecast could use: weekly, daily or persistence.
	Method string
	// Level is the clamped ratio of the recent load to its seasonal reference; ShiftMinutes
	// how far the reference was moved in time to line up with the recent load (positive: the
	// load runs ahead of last season's); Margin the relative error margin of Upper.
	Level        float64
	ShiftMinutes int
	Margin       float64
	// reference evaluates the shifted seasonal reference (without the level) a number of
	// minutes from now; nil for persistence.
	reference func(m int) float64
}

// Reference is the seasonal shape the forecast follows (last season's load, cleaned and
// shifted, without the level), m minutes from now (negative: the past), NaN where there is
// none or the method is persistence.
func (f Forecast) Reference(m int) float64 {
	if f.reference == nil {
		return math.NaN()
	}
	return f.reference(m)
}

// The forecast's limits. They bound what any input can do to it rather than tune it to one.
const (
	// levelMin and levelMax clamp the level ratio: the forecast never claims that the load is
	// going to be more than twice or less than half of last season's in the next minutes; a
	// change beyond that shows in the load now, which the policy reads directly.
	levelMin, levelMax = 0.5, 2.0
	// shiftMinutes is how far the seasonal reference may be moved to line up with the load:
	// a daylight-saving change, an event an hour early.
	shiftMinutes = 90
	// alignMinutes is the recent stretch whose shape is matched; levelMinutes the stretch the
	// level ratio is the median of.
	alignMinutes, levelMinutes = 120, 60
	// backtestMinutes of history are backtested, one origin every backtestEvery minutes; the
	// errors' weights halve every marginHalfLife minutes, and the margin, an estimate of their
	// 95th percentile, is kept within marginMin and marginMax.
	backtestMinutes, backtestEvery, marginHalfLife = 8 * 60, 10, 120
	marginMin, marginMax                           = 0.02, 0.30
	// hampelMinutes is the neighbourhood an outlier is judged against, hampelK the number of
	// robust standard deviations that make one, hampelFloor the least deviation (relative to
	// the neighbourhood's median) that can.
	hampelMinutes, hampelK, hampelFloor = 45, 3.0, 0.05
	// persistenceMinutes is the stretch whose median persistence forecasts: the level, not the
	// last noisy minutes (a change under way is the policy's "now", not the forecast's).
	persistenceMinutes = 15
)

// Predict forecasts the largest value of x over the next minutes. x holds one point every
// step minutes, oldest first, ending now (each point the mean of its step minutes); NaN marks
// a gap.
//
// The method is seasonal-naive, made robust by construction rather than by tuning:
//   - the reference for a future point is the value one season earlier (a week when the
//     history has one, else a day; the median of ±5 minutes, so last season's noise is not
//     forecast again), taken from a cleaned history: a value far from its
//     neighbourhood (a Hampel filter) is kept only when the same hour of another day shows
//     the same excursion, so a one-off spike or outage is not repeated a day or a week later
//     while a peak that recurs is;
//   - the reference is shifted in time, within ±90 minutes, to where its shape best matches
//     the last two hours' (a daylight-saving change, a peak that comes early);
//   - the level is the median ratio of the last hour to the shifted reference, clamped to
//     [0.5, 2]: the trend and a deviation under way, never a multiplier that one early peak
//     can blow up;
//   - the upper bound adds a robust estimate of the 95th percentile (weighted median plus
//     1.645 robust standard deviations) of the same method's errors backtested over the last
//     eight hours, each weighted by its age (half-life two hours), within [2 %, 30 %], so one
//     miss raises the margin for a while, not for good.
func Predict(x []float64, step, minutes int) Forecast {
	return PredictAhead(x, step, 0, minutes)
}

// PredictAhead is Predict for a history whose last point ends ahead minutes after now (a
// bucket on the clock that holds the minutes so far).
func PredictAhead(x []float64, step, ahead, minutes int) Forecast {
	n := len(x)
	if n == 0 {
		return Forecast{Mean: math.NaN(), Upper: math.NaN(), Level: 1}
	}
	step = max(step, 1)
	minutes = max(minutes, 1)
	s := &seasonal{x: x, step: step, ahead: max(0, min(ahead, step-1))}
	s.method = "persistence"
	for _, c := range []struct {
		period int
		method string
	}{{10080 / step, "weekly"}, {1440 / step, "daily"}} {
		if n < c.period+alignMinutes/step {
			continue
		}
		probe := &seasonal{x: x, step: step, period: c.period}
		if !math.IsNaN(probe.ref(n)) && !math.IsNaN(probe.ref(n-1)) {
			s.period, s.method = c.period, c.method
			break
		}
	}
	s.init()
	f := Forecast{Method: s.method, Level: 1}
	var shift int
	f.Mean, f.Level, shift = s.forecast(n, minutes)
	f.ShiftMinutes = shift * step
	if s.period > 0 {
		f.reference = func(m int) float64 { return s.at(n, m, shift, 1) }
	}
	if math.IsNaN(f.Mean) {
		f.Mean = lastValid(x)
	}
	// Errors of the same method at the same horizon from origins over the last eight hours:
	// the largest value that came against the largest forecast.
	type werr struct{ e, w float64 }
	var errs []werr
	every := max(1, backtestEvery/step)
	points := max(1, (minutes+step-1)/step)
	// Origins on fixed points (multiples of every), so the set does not change with each
	// new point's parity, and whose outcome is complete: with coarse points the newest holds
	// only the minutes so far.
	last := n
	if step > 1 {
		last = n - 1
	}
	first := (last - points) / every * every
	for j := 0; j*every < backtestMinutes/step; j++ {
		o := first - j*every
		if o < 2 {
			break
		}
		got, _, _ := s.forecast(o, minutes)
		want := math.Inf(-1)
		for i := o; i < o+points && i < n; i++ {
			if !math.IsNaN(x[i]) {
				want = max(want, x[i])
			}
		}
		if math.IsNaN(got) || got <= 0 || math.IsInf(want, -1) {
			continue
		}
		age := float64(n - o)
		errs = append(errs, werr{want/got - 1, math.Pow(0.5, age*float64(step)/marginHalfLife)})
	}
	f.Margin = 0.05 // without a track record, assume 5 %
	if len(errs) >= 8 {
		// A robust normal quantile of the weighted errors (their weighted median plus 1.645
		// robust standard deviations): it moves smoothly as errors age, where the 95th
		// percentile of a few dozen points jumps with each one.
		vals, ws := make([]float64, len(errs)), make([]float64, len(errs))
		for i, e := range errs {
			vals[i], ws[i] = e.e, e.w
		}
		med := weightedMedian(vals, ws)
		for i := range vals {
			vals[i] = math.Abs(vals[i] - med)
		}
		f.Margin = med + 1.645*1.4826*weightedMedian(vals, ws)
	}
	f.Margin = max(marginMin, min(marginMax, f.Margin))
	f.Upper = f.Mean * (1 + f.Margin)
	return f
}

// seasonal forecasts x from its own history one season earlier.
type seasonal struct {
	x      []float64
	step   int
	ahead  int // minutes the last point ends after now
	period int // points in a season; 0 for persistence
	method string
	// clean and logClean cache the cleaned history and its logarithm by index, done says
	// which are computed; logx is the history's logarithm (NaN where it has none).
	clean, logClean []float64
	done            []bool
	logx            []float64
}

func (s *seasonal) init() {
	s.clean = make([]float64, len(s.x))
	s.logClean = make([]float64, len(s.x))
	s.done = make([]bool, len(s.x))
	s.logx = make([]float64, len(s.x))
	// Only the last hours are ever read as the recent load.
	for i := range s.x {
		s.logx[i] = math.NaN()
	}
	for i := max(0, len(s.x)-(backtestMinutes+alignMinutes+60)/s.step); i < len(s.x); i++ {
		if v := s.x[i]; v > 0 {
			s.logx[i] = math.Log(v)
		}
	}
}

// cleanedLog is the logarithm of cleaned(c) (NaN unless positive).
func (s *seasonal) cleanedLog(c int) float64 {
	if c < 0 || c >= len(s.x) {
		return math.NaN()
	}
	s.cleaned(c)
	return s.logClean[c]
}

// small is the median of x over ±5 minutes around c, from the data before n.
func (s *seasonal) small(c, n int) float64 {
	w := max(1, 5/s.step)
	lo, hi := max(0, c-w), min(n, c+w+1)
	if lo >= hi {
		return math.NaN()
	}
	return median(s.x[lo:hi])
}

// neighbourhood is the median and robust standard deviation of x around c.
func (s *seasonal) neighbourhood(c, n int) (med, sd float64) {
	h := max(2, hampelMinutes/s.step)
	lo, hi := max(0, c-h), min(n, c+h+1)
	if lo >= hi {
		return math.NaN(), math.NaN()
	}
	var buf [128]float64
	vals := buf[:0]
	for _, v := range s.x[lo:hi] {
		if !math.IsNaN(v) && len(vals) < cap(vals) {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(vals)
	med = vals[len(vals)/2]
	for i, v := range vals {
		vals[i] = math.Abs(v - med)
	}
	slices.Sort(vals)
	return med, max(1.4826*vals[len(vals)/2], hampelFloor*med)
}

// cleaned is the history at c as a seasonal reference: its ±5-minute median, unless that is
// an outlier of its ±45-minute neighbourhood that no other day repeats, in which case the
// neighbourhood's median. Only data before c+period (the season after c) is read, so a
// reference never looks at the present it forecasts.
func (s *seasonal) cleaned(c int) float64 {
	if c < 0 || c >= len(s.x) {
		return math.NaN()
	}
	if s.done[c] {
		return s.clean[c]
	}
	limit := min(len(s.x), c+s.period)
	v := s.small(c, limit)
	med, sd := s.neighbourhood(c, limit)
	out := v
	if !math.IsNaN(v) && !math.IsNaN(med) && math.Abs(v-med) > hampelK*sd {
		dev := v/med - 1
		out = med
		day := 1440 / s.step
		alts := []int{c - day}
		if s.period > day {
			alts = append(alts, c+day, c-s.period)
		}
		for _, a := range alts {
			if a < 0 || a+max(2, hampelMinutes/s.step) >= limit {
				continue
			}
			av := s.small(a, limit)
			am, _ := s.neighbourhood(a, limit)
			if math.IsNaN(av) || math.IsNaN(am) || am <= 0 {
				continue
			}
			// The same excursion, at least half as large, the same way: it recurs.
			if d := av/am - 1; d*dev > 0 && math.Abs(d) >= 0.5*math.Abs(dev) {
				out = v
				break
			}
		}
	}
	s.clean[c], s.done[c] = out, true
	s.logClean[c] = math.NaN()
	if out > 0 {
		s.logClean[c] = math.Log(out)
	}
	return out
}

// ref is the cleaned value one season before t.
func (s *seasonal) ref(t int) float64 {
	if s.clean == nil {
		s.init()
	}
	return s.cleaned(t - s.period)
}

// forecast predicts the largest value over the minutes after n from x[:n]: the mean forecast,
// the level ratio and the shift in points it used.
func (s *seasonal) forecast(n, minutes int) (float64, float64, int) {
	if s.period == 0 {
		return median(s.x[max(0, n-max(1, persistenceMinutes/s.step)):n]), 1, 0
	}
	// Phase: the shift of the reference whose shape (log ratios about their median) best
	// matches the recent points. Moving needs to halve the mismatch, so neither a flat stretch
	// nor noise makes it wander; a shifted ramp or peak does far better than that.
	span := max(3, alignMinutes/s.step)
	maxShift := shiftMinutes / s.step
	var ratios [256]float64
	// Shape and level come from complete points: the newest coarse point holds the minutes
	// so far, and moving with each of them would move the whole forecast every minute (the
	// load now is the policy's own input).
	end := n
	if s.step > 1 && n == len(s.x) && n > 1 {
		end = n - 1
	}
	// The cleaned references every shift reads, computed once.
	from := max(0, end-span)
	for c := from - s.period - maxShift; c < end-s.period+maxShift; c++ {
		s.cleanedLog(c)
	}
	// score is the mean absolute deviation of the log ratios from their mean.
	score := func(d int) float64 {
		r := ratios[:0]
		sum := 0.0
		lx := s.logx[from:end]
		base := from - s.period + d
		for k, x := range lx {
			c := base + k
			if c < 0 || c >= len(s.logClean) || math.IsNaN(x) || len(r) == cap(r) {
				continue
			}
			if ref := s.logClean[c]; !math.IsNaN(ref) {
				v := x - ref
				r = append(r, v)
				sum += v
			}
		}
		if len(r) < span/2 {
			return math.Inf(1)
		}
		m, dev := sum/float64(len(r)), 0.0
		for _, v := range r {
			dev += math.Abs(v - m)
		}
		return dev / float64(len(r))
	}
	// Coarse to fine: every quarter of an hour, then the points around the best.
	best, bestScore := 0, score(0)
	base := bestScore
	coarse := max(1, 15/s.step)
	for d := -maxShift; d <= maxShift; d += coarse {
		if sc := score(d); d != 0 && sc < bestScore {
			best, bestScore = d, sc
		}
	}
	for d := max(-maxShift, best-coarse+1); d <= min(maxShift, best+coarse-1); d++ {
		if sc := score(d); d != best && d != 0 && sc < bestScore {
			best, bestScore = d, sc
		}
	}
	if !(bestScore < 0.5*base) {
		best = 0
	}
	// Level: the median ratio of the last hour to the shifted reference, clamped.
	lv := ratios[:0]
	for i := end - max(1, levelMinutes/s.step); i < end; i++ {
		if i < 0 {
			continue
		}
		ref := s.cleaned(i - s.period + best)
		if ref > 0 && !math.IsNaN(s.x[i]) {
			lv = append(lv, s.x[i]/ref)
		}
	}
	level := 1.0
	if len(lv) > 0 {
		level = max(levelMin, min(levelMax, median(lv)))
	}
	// The largest point over the horizon; with coarse points, interpolated to the minute
	// between points' centres.
	out := math.Inf(-1)
	for m := 1; m <= minutes; m++ {
		if v := s.at(n, m, best, level); !math.IsNaN(v) {
			out = max(out, v)
		}
	}
	if math.IsInf(out, -1) {
		// A gap a season ago: persistence.
		return median(s.x[max(0, n-max(1, persistenceMinutes/s.step)):n]), level, best
	}
	return out, level, best
}

// weightedMedian is the value where the weights of the smaller and larger values balance.
func weightedMedian(vals, ws []float64) float64 {
	idx := make([]int, len(vals))
	total := 0.0
	for i := range idx {
		idx[i] = i
		total += ws[i]
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case vals[a] < vals[b]:
			return -1
		case vals[a] > vals[b]:
			return 1
		}
		return 0
	})
	acc := 0.0
	for _, i := range idx {
		acc += ws[i]
		if acc >= total/2 {
			return vals[i]
		}
	}
	return math.NaN()
}

// at is the model's value m minutes after now (the end of x[:n], or ahead minutes before the
// end of x for the live forecast), with the reference
// shifted by shift points and scaled by level: interpolated between points' centres.
func (s *seasonal) at(n, m, shift int, level float64) float64 {
	model := func(i int) float64 {
		ref := s.cleaned(i - s.period + shift)
		if math.IsNaN(ref) {
			return math.NaN()
		}
		return ref * level
	}
	// The minute m after now, in point coordinates (point i covers [i, i+1) steps).
	ahead := 0
	if n == len(s.x) {
		ahead = s.ahead // a backtest's origin is a point's end
	}
	u := float64(n) + (float64(m-ahead)-0.5)/float64(s.step) - 0.5
	i := int(math.Floor(u))
	fr := u - float64(i)
	a, b := model(i), model(i+1)
	switch {
	case math.IsNaN(a):
		return b
	case math.IsNaN(b) || fr == 0:
		return a
	}
	return a + (b-a)*fr
}

// median of the values that are not NaN (NaN if there are none). Small inputs: insertion sort
// on a stack buffer.
func median(v []float64) float64 {
	var buf [256]float64
	vals := buf[:0]
	for _, x := range v {
		if !math.IsNaN(x) && len(vals) < cap(vals) {
			vals = append(vals, x)
		}
	}
	if len(vals) == 0 {
		return math.NaN()
	}
	for i := 1; i < len(vals); i++ {
		for j := i; j > 0 && vals[j] < vals[j-1]; j-- {
			vals[j], vals[j-1] = vals[j-1], vals[j]
		}
	}
	if len(vals)%2 == 1 {
		return vals[len(vals)/2]
	}
	return (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
}

func lastValid(x []float64) float64 {
	for i := len(x) - 1; i >= 0; i-- {
		if !math.IsNaN(x[i]) {
			return x[i]
		}
	}
	return math.NaN()
}
