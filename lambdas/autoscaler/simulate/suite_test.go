package simulate

import (
	"bytes"
	"runtime"
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
	suite := RunSuite(Suite(SuiteConfig{Days: suiteDays}), Fleet{}, runtime.GOMAXPROCS(0), nil)
	if len(suite) < 8 {
		t.Fatalf("%d traces in the suite, want at least 8", len(suite))
	}
	var smooth, noisy int
	for _, sr := range suite {
		t.Run(sr.Trace.Name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTable(&buf, sr.Results); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s\n%s", sr.Trace.About, buf.String())
			if got := len(sr.Trace.Trace.Rate); got != suiteDays*1440 {
				t.Fatalf("%d minutes", got)
			}
			for _, err := range sr.Missed {
				t.Error(err)
			}
		})
		if sr.Trace.Smooth {
			smooth++
		}
		if sr.Trace.Noisy {
			noisy++
		}
	}
	if smooth == 0 || noisy == 0 {
		t.Errorf("%d smooth and %d noisy traces: the CPU and scaling-action goals would go unchecked", smooth, noisy)
	}
	var buf bytes.Buffer
	if err := WriteSuiteSummary(&buf, suite); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", buf.String())
}
