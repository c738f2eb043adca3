package simulate

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// suiteDays is the length of every suite trace in the test: the full two weeks, so the
// weekly season, the holiday in the second week and the daylight-saving shift are all in it.
const suiteDays = 14

// TestSuiteGoals holds the learning policy to its goals on every trace of the stress suite,
// against baselines run on the same trace, the same interruptions and the same fleet:
//   - no more SLO-violating minutes than target tracking at the target that costs the same;
//   - no more cost than target tracking at 75 %;
//   - at least 80 % mean CPU on the smooth traces;
//   - on the noisy trace, at most twice the scaling actions of target tracking at 75 %.
func TestSuiteGoals(t *testing.T) {
	for _, st := range Suite(SuiteConfig{Days: suiteDays}) {
		t.Run(st.Name, func(t *testing.T) {
			t.Parallel()
			f := Fleet{}
			res := RunAll(st.Trace, f, Policies(st.Trace, f), nil)
			var buf bytes.Buffer
			if err := WriteTable(&buf, res); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s\n%s", st.About, buf.String())
			for _, err := range CheckGoals(st, res) {
				t.Error(err)
			}
		})
	}
}

// CheckGoals says which of the suite's goals res misses on st.
func CheckGoals(st SuiteTrace, res []Result) []error {
	var errs []error
	by := map[string]Result{}
	var matched Result
	for _, r := range res {
		by[r.Policy] = r
		if strings.Contains(r.Policy, "cost-matched") {
			matched = r
		}
	}
	l, tt := by["learning"], by["target-tracking-cpu-75"]
	if matched.Policy == "" {
		// Learning costs less than target tracking at any target up to 99 %: compare with
		// the cheapest.
		matched = by["target-tracking-cpu-99"]
	}
	if l.SLOViolationMinutes > matched.SLOViolationMinutes {
		errs = append(errs, fmt.Errorf("learning has %d SLO minutes, cost-matched %s %d", l.SLOViolationMinutes, matched.Policy, matched.SLOViolationMinutes))
	}
	if l.Cost > tt.Cost {
		errs = append(errs, fmt.Errorf("learning costs $%.2f, target tracking at 75 %% $%.2f", l.Cost, tt.Cost))
	}
	if st.Smooth && l.MeanCPU < 0.80 {
		errs = append(errs, fmt.Errorf("learning mean CPU %.1f %%, want at least 80 %% on a smooth trace", 100*l.MeanCPU))
	}
	if st.Noisy && l.ActionsPerDay > 2*tt.ActionsPerDay {
		errs = append(errs, fmt.Errorf("learning %.0f scaling actions a day, target tracking %.0f", l.ActionsPerDay, tt.ActionsPerDay))
	}
	return errs
}
