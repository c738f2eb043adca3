package simulate

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"strings"
	"testing"
)

// TestReferenceScenarioGoals runs what `liveagg-simulate` runs with no flags and
// holds the learning policy to the autoscaling issue's goals (the simulation is seeded, so the
// numbers are the same every run):
//   - at least 80 % mean CPU with lag over the 60 s SLO in under 0.1 % of minutes;
//   - at least 25 % fewer worker-hours than static provisioning for the peak;
//   - fewer SLO-violating minutes than target tracking configured to cost no more.
func TestReferenceScenarioGoals(t *testing.T) {
	tr := Generate(TraceConfig{})
	f := Fleet{}
	res := RunAll(tr, f, Policies(tr, f), nil)
	var buf bytes.Buffer
	if err := WriteTable(&buf, res); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", buf.String())
	by := map[string]Result{}
	var matched Result
	for _, r := range res {
		by[r.Policy] = r
		if strings.Contains(r.Policy, "cost-matched") {
			matched = r
		}
	}
	l, static, tt := by["learning"], by["static-peak"], by["target-tracking-cpu-75"]
	if l.MeanCPU < 0.80 {
		t.Errorf("learning mean CPU %.3f, want at least 0.80", l.MeanCPU)
	}
	if l.SLOViolationMinutesFraction >= 0.001 {
		t.Errorf("learning over the SLO in %.4f of minutes, want under 0.001", l.SLOViolationMinutesFraction)
	}
	if saved := 1 - l.WorkerHours/static.WorkerHours; saved < 0.25 {
		t.Errorf("learning saves %.0f %% of static-peak's worker-hours, want at least 25 %%", 100*saved)
	}
	if matched.Policy == "" || matched.Cost > l.Cost || matched.SLOViolationMinutes <= l.SLOViolationMinutes {
		t.Errorf("target tracking at the same or lower cost: %+v; learning %d SLO minutes at $%.2f", matched, l.SLOViolationMinutes, l.Cost)
	}
	if tt.WorkerHours <= l.WorkerHours {
		t.Errorf("target tracking at 75 %% used %.0f worker-hours, learning %.0f", tt.WorkerHours, l.WorkerHours)
	}
	for _, r := range res {
		if r.Minutes != 14*1440 || math.IsNaN(r.MeanCPU) || r.MeanCPU <= 0 || r.MeanCPU > 1 {
			t.Errorf("%s: %+v", r.Policy, r)
		}
	}
}

func TestOutputs(t *testing.T) {
	tr := Generate(TraceConfig{Days: 2, Seed: 3})
	res := RunAll(tr, Fleet{}, Policies(tr, Fleet{}), nil)
	var js bytes.Buffer
	if err := WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != len(res) {
		t.Fatalf("%d JSON lines for %d policies", len(lines), len(res))
	}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"policy", "mean_cpu_utilization", "slo_violation_minutes_fraction", "worker_hours", "cost"} {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON object lacks %s: %s", k, line)
			}
		}
	}
	var img bytes.Buffer
	if err := Plot(&img, tr, res[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&img); err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
}

func TestReadCSV(t *testing.T) {
	csv := "time,records_per_second\n2026-03-02T00:00:00Z,100\n2026-03-02T00:01:00Z,110\n2026-03-02T00:04:00Z,130\n"
	tr, err := ReadCSV(strings.NewReader(csv), "t.csv")
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{100, 110, 110, 110, 130}; len(tr.Rate) != len(want) || tr.Rate[2] != 110 || tr.Rate[4] != 130 {
		t.Fatalf("rates %v, want %v (gaps take the previous minute)", tr.Rate, want)
	}
	for _, bad := range []struct{ in, want string }{
		{"when,rate\nx,1\n", "time column"},
		{"time,rate\nyesterday,1\n", "neither RFC 3339"},
		{"time,rate\n1767225600,-5\n", "not a number"},
		{"time,rate\n", "at least one row"},
	} {
		if _, err := ReadCSV(strings.NewReader(bad.in), "b.csv"); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.in, err, bad.want)
		}
	}
}

// BenchmarkReferenceScenario reports the reference scenario's numbers per policy.
//
//	go test -run XXX -bench ReferenceScenario -benchtime 1x ./lambdas/autoscaler/simulate/
func BenchmarkReferenceScenario(b *testing.B) {
	tr := Generate(TraceConfig{})
	for b.Loop() {
		res := RunAll(tr, Fleet{}, Policies(tr, Fleet{}), nil)
		for _, r := range res {
			name := strings.Fields(r.Policy)[0]
			b.ReportMetric(r.MeanCPU, name+"-cpu")
			b.ReportMetric(r.SLOViolationMinutesFraction, name+"-slo-frac")
			b.ReportMetric(r.WorkerHours, name+"-worker-h")
		}
	}
}
