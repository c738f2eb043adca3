package autoscaler

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// A worker here: 2 cores at 2 ms per record, 1,000 records/s; 92 % of it is 920.
func TestLearningHysteresis(t *testing.T) {
	l := Learning{CoresPerWorker: 2, LeadMinutes: 4}
	spr := repeat(2e-3, 15)
	nan := math.NaN()
	withLast := func(s []float64) []float64 { return append(s, nan) } // the minute under way
	for _, tc := range []struct {
		name    string
		rate    []float64
		lag     []float64
		current int32
		want    int32
		because string
	}{
		// 8,500 with the 5 % margin of a forecast without a track record: 9.7 workers.
		{"steady load holds", withLast(repeat(8_500, 14)), nil, 10, 10, "hold"},
		// One noisy minute two minutes ago: the median "now" does not see it.
		{"one noisy minute is not now", withLast(append(repeat(8_500, 11), 20_000, 8_500, 8_500)), nil, 10, 10, "hold"},
		// The latest minute far above a quiet window is a burst: up at once, for the load
		// and the backlog it will have built by the time workers are ready (10,000 records/s
		// short for 4 minutes, worked off in a minute): 20 + 40 workers.
		{"a burst in the latest minute scales up", withLast(append(repeat(8_500, 13), 20_000)), nil, 10, 60, "scale up: lag catch-up"},
		// Half the load for the whole window: down, by more than the least step.
		{"a lower load scales down", withLast(repeat(4_500, 14)), nil, 10, 6, "scale down"},
		// One busy minute in an otherwise low window: a percentile floor, not the maximum.
		{"one busy minute does not hold the fleet", withLast(append(append(repeat(4_500, 6), 12_000), repeat(4_500, 7)...)), nil, 10, 6, "scale down"},
		// A need one worker short of the fleet of 40 is within the least step (5 %, 2 workers).
		{"a small drop is no step", withLast(repeat(35_000, 14)), nil, 40, 40, "hold"},
		// Lag growing: no scale-down whatever the rate says.
		{"no scale-down while the backlog grows", withLast(repeat(4_500, 14)), withLast(append(repeat(0, 12), 10_000, 20_000)), 10, 10, "hold (backlog growing)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Inputs{Rate: tc.rate, Lag: tc.lag, SecondsPerRecord: spr, Current: tc.current, Min: 1, Max: 100, Partitions: 100}
			d := l.Decide(in)
			if d.Desired != tc.want || !strings.HasPrefix(d.Reason, tc.because) {
				t.Fatalf("desired %d (%s), want %d (%s)", d.Desired, d.Reason, tc.want, tc.because)
			}
		})
	}
}

// On noisy minutes the fleet moves only past the noise: the same 25 % noise around a flat
// level, decided minute after minute, changes the size rarely.
func TestLearningIgnoresMinuteNoise(t *testing.T) {
	l := Learning{CoresPerWorker: 2, LeadMinutes: 4}
	r := rand.New(rand.NewPCG(9, 1))
	rate := make([]float64, 1440)
	for i := range rate {
		rate[i] = max(2_000, 20_000*(1+0.25*r.NormFloat64()))
	}
	cur, actions := int32(25), 0
	for m := 15; m < len(rate); m++ {
		in := Inputs{Rate: append(append([]float64(nil), rate[m-14:m]...), math.NaN()), SecondsPerRecord: repeat(2e-3, 15),
			Current: cur, Min: 1, Max: 100, Partitions: 100}
		if d := l.Decide(in); d.Desired != cur {
			actions++
			cur = d.Desired
		}
	}
	// Target tracking at 75 % makes a few dozen a day on such load.
	if actions > 30 {
		t.Fatalf("%d scaling actions in %d minutes of noise around a flat load", actions, len(rate)-15)
	}
}

func TestFoldRecentMinutes(t *testing.T) {
	nan := math.NaN()
	// The window's 15 minutes: 100 each, the last unpublished.
	minutes := append(repeat(100, 14), nan)
	for _, tc := range []struct {
		name  string
		ahead int
		want  []float64 // the last four history points after folding
	}{
		// Buckets end now: the last holds four published minutes of five.
		{"aligned with now", 0, []float64{7, 100, 100, 100}},
		// The last bucket started two minutes ago: one published minute.
		{"three minutes ahead", 3, []float64{7, 100, 100, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hist := []float64{7, 80, 80, 80} // CloudWatch's sums over 300 s, short of the minutes not published
			FoldRecentMinutes(hist, 5, tc.ahead, minutes)
			for i := range hist {
				if hist[i] != tc.want[i] {
					t.Fatalf("history %v, want %v", hist, tc.want)
				}
			}
		})
	}
	// Nothing published in the newest bucket: a gap, not zero.
	hist := []float64{80, 80}
	FoldRecentMinutes(hist, 5, 4, append(repeat(100, 14), nan))
	if !math.IsNaN(hist[1]) && hist[1] != 100 {
		t.Fatalf("history %v", hist)
	}
	hist = []float64{80}
	FoldRecentMinutes(hist, 5, 4, []float64{nan})
	if !math.IsNaN(hist[0]) {
		t.Fatalf("a bucket without a published minute: %v, want NaN", hist)
	}
}
