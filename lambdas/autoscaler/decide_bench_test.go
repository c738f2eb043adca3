package autoscaler

import (
	"math"
	"testing"
)

// benchInputs is what the lambda reads each minute: 15 days of five-minute history (the clock
// two minutes into a bucket) and a 15-minute window.
func benchInputs() Inputs {
	x := series(15*1440, 7)
	hist := fiveMinute(x)
	window := append(append([]float64(nil), x[len(x)-14:]...), math.NaN())
	return Inputs{Rate: window, Lag: repeat(0, 15), SecondsPerRecord: repeat(50e-6, 15), StateBytes: repeat(1e9, 15),
		Current: 20, Min: 1, Max: 200, Partitions: 256, RateHistory: hist, StateHistory: repeat(1e9, len(hist)),
		HistoryStep: 5, HistoryAhead: 3}
}

// BenchmarkDecide is the lambda's work each minute, the learning policy against the reactive
// one on the same inputs (the reactive one reads no history: the ratio is what forecasting
// costs).
//
//	go test -run XXX -bench Decide ./lambdas/autoscaler/
func BenchmarkDecide(b *testing.B) {
	in := benchInputs()
	for _, bc := range []struct {
		name string
		p    Policy
	}{{"learning", Learning{}}, {"capacity", Capacity{}}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				bc.p.Decide(in)
			}
		})
	}
}
