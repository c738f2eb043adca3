package autoscaler

import (
	"math"
	"slices"
)

// Forecast is a prediction of a series over a horizon: the largest expected value in it, and
// an upper bound that past errors of the same method stayed under 95 % of the time.
type Forecast struct {
	Mean, Upper float64
	// Method says which seasonality the forecast could use: weekly, daily or persistence.
	Method string
}

// Predict forecasts the largest value of x over the next horizon points. x holds one point
// every step minutes, oldest first; NaN marks a gap.
//
// The method is seasonal-naive with a level correction, chosen over Holt-Winters because it
// needs no fitting, handles two seasonalities (daily and weekly) and gaps without special
// cases, and the simulator shows it good enough: the value at a future point is the value one
// season earlier (a week when the history has one, else a day; a median over ±5 minutes, so a
// one-off spike last week is not repeated), scaled by how the last hour compares with the same
// hour a season earlier. That ratio carries the trend (20 % a week shows as 1.2 against last
// week) and any current deviation, such as a burst under way. The upper bound comes from
// backtesting the same method over the last six hours at the same lead.
func Predict(x []float64, step, horizon int) Forecast {
	n := len(x)
	if n == 0 {
		return Forecast{Mean: math.NaN(), Upper: math.NaN()}
	}
	step = max(step, 1)
	horizon = max(horizon, 1)
	s := seasonal{x: x, step: step}
	// A season is usable when the history reaches back that far with data around the
	// points to forecast (a metric created yesterday has a long, empty history).
	s.method = "persistence"
	for _, c := range []struct {
		period int
		method string
	}{{10080 / step, "weekly"}, {1440 / step, "daily"}} {
		if n >= c.period+60/step && !math.IsNaN(seasonal{x: x, step: step, period: c.period}.ref(n, n, max(1, 5/step))) {
			s.period, s.method = c.period, c.method
			break
		}
	}
	f := Forecast{Method: s.method, Mean: math.Inf(-1)}
	for h := 1; h <= horizon; h++ {
		f.Mean = max(f.Mean, s.point(n, n-1+h))
	}
	if math.IsNaN(f.Mean) || math.IsInf(f.Mean, 0) {
		f.Mean = lastValid(x)
	}
	// Errors of the same forecast made horizon points before each of the last six hours'
	// points (every tenth minute), relative to what it predicted.
	var errs []float64
	for j := range 36 {
		i := n - 1 - j*max(1, 10/step)
		o := i - horizon
		if o < 1 {
			break
		}
		want := x[i]
		got := s.point(o+1, i)
		if math.IsNaN(want) || math.IsNaN(got) || got <= 0 {
			continue
		}
		errs = append(errs, want/got-1)
	}
	q := 0.05 // without a track record, assume 5 %
	if len(errs) >= 8 {
		slices.Sort(errs)
		q = errs[int(0.95*float64(len(errs)-1))]
	}
	f.Upper = f.Mean * (1 + max(0.02, q))
	return f
}

// seasonal forecasts one point of x from the data before n.
type seasonal struct {
	x      []float64
	step   int
	period int // points in a season; 0 for persistence
	method string
}

// point predicts x[t] using x[:n] only.
func (s seasonal) point(n, t int) float64 {
	w := max(1, 5/s.step)
	if s.period == 0 {
		return median(s.x[max(0, n-2*w-1):n])
	}
	ref := s.ref(n, t, w)
	// Level: the last hour against the same hour a season earlier.
	m := max(1, 60/s.step)
	var num, den float64
	for i := n - m; i < n; i++ {
		if i < 0 {
			continue
		}
		r := s.ref(n, i, w)
		if math.IsNaN(r) || math.IsNaN(s.x[i]) {
			continue
		}
		num += s.x[i]
		den += r
	}
	ratio := 1.0
	if den > 0 && num > 0 {
		ratio = num / den
	}
	if math.IsNaN(ref) {
		return median(s.x[max(0, n-2*w-1):n]) // a gap a season ago: persistence
	}
	return ref * ratio
}

// ref is the median of x a season before t, over ±w points, from the data before n.
func (s seasonal) ref(n, t, w int) float64 {
	c := t - s.period
	lo, hi := max(0, c-w), min(n, c+w+1)
	if lo >= hi {
		return math.NaN()
	}
	return median(s.x[lo:hi])
}

// median of the values that are not NaN (NaN if there are none). Small inputs: insertion sort
// on a stack buffer.
func median(v []float64) float64 {
	var buf [64]float64
	vals := buf[:0]
	for _, x := range v {
		if !math.IsNaN(x) {
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
