package autoscaler

import (
	"math"
	"strings"
	"testing"
)

func repeat(v float64, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func ramp(from, to float64, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = from + (to-from)*float64(i)/float64(n-1)
	}
	return s
}

// A worker here: 2 cores at 60 %, 100 µs per record: 12,000 records/s.
func TestCapacityDecisions(t *testing.T) {
	p := Capacity{CoresPerWorker: 2, TargetUtilization: 0.6, CatchUpSeconds: 600, MemoryPerWorker: 1 << 30, StabilizationPoints: 10}
	spr := repeat(100e-6, 15)
	for _, tc := range []struct {
		name    string
		in      Inputs
		want    int32
		because string
	}{
		{"flat load holds", Inputs{Rate: repeat(30_000, 15), SecondsPerRecord: spr, Current: 3, Min: 1, Max: 10, Partitions: 12}, 3, "hold"},
		{"rising load scales up at once", Inputs{Rate: ramp(20_000, 60_000, 15), SecondsPerRecord: spr, Current: 2, Min: 1, Max: 10, Partitions: 12}, 5, "scale up"},
		{"lag adds catch-up capacity", Inputs{Rate: repeat(30_000, 15), Lag: repeat(12_000_000, 15), SecondsPerRecord: spr, Current: 3, Min: 1, Max: 10, Partitions: 12}, 5, "scale up"},
		{"falling load waits for the window", Inputs{Rate: append(repeat(60_000, 10), repeat(10_000, 5)...), SecondsPerRecord: spr, Current: 5, Min: 1, Max: 10, Partitions: 12}, 5, "hold"},
		{"low for the whole window scales down", Inputs{Rate: append(repeat(60_000, 4), repeat(10_000, 11)...), SecondsPerRecord: spr, Current: 5, Min: 1, Max: 10, Partitions: 12}, 1, "scale down"},
		{"never above max", Inputs{Rate: repeat(500_000, 15), SecondsPerRecord: spr, Current: 3, Min: 1, Max: 6, Partitions: 12}, 6, "scale up"},
		{"never above the partition count", Inputs{Rate: repeat(500_000, 15), SecondsPerRecord: spr, Current: 3, Min: 1, Max: 50, Partitions: 8}, 8, "scale up"},
		{"never below min", Inputs{Rate: repeat(10, 15), SecondsPerRecord: spr, Current: 4, Min: 2, Max: 10, Partitions: 12}, 2, "scale down"},
		{"memory-bound", Inputs{Rate: repeat(1_000, 15), SecondsPerRecord: spr, StateBytes: repeat(3.5*(1<<30), 15), Current: 1, Min: 1, Max: 10, Partitions: 12}, 4, "memory"},
		{"no metrics keep the size", Inputs{Current: 3, Min: 1, Max: 10}, 3, "no metrics"},
		{"no cost yet keeps the size", Inputs{Rate: repeat(1_000, 15), SecondsPerRecord: repeat(math.NaN(), 15), Current: 3, Min: 1, Max: 10}, 3, "no processing cost"},
		{"gaps use the last known cost", Inputs{Rate: repeat(30_000, 15), SecondsPerRecord: append(repeat(100e-6, 5), repeat(math.NaN(), 10)...), Current: 3, Min: 1, Max: 10, Partitions: 12}, 3, "hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.in)
			if d.Desired != tc.want || !strings.Contains(d.Reason, tc.because) {
				t.Fatalf("desired %d (%s), want %d (%s)", d.Desired, d.Reason, tc.want, tc.because)
			}
			if d.Desired < tc.in.Min || d.Desired > tc.in.Max {
				t.Fatalf("desired %d outside [%d, %d]", d.Desired, tc.in.Min, tc.in.Max)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{"LIVEAGG_ASG": "g", "LIVEAGG_SPEC": "s", "LIVEAGG_PARTITIONS": "12", "LIVEAGG_MEMORY_PER_WORKER": "2GiB",
		"LIVEAGG_SCALE_DOWN_WINDOW": "20m", "LIVEAGG_DRY_RUN": "true"}
	cfg, pol, err := FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	l, ok := pol.(Learning)
	if !ok || cfg.Group != "g" || cfg.Partitions != 12 || !cfg.DryRun || l.MemoryPerWorker != 2<<30 || l.StabilizationPoints != 20 || cfg.Window != 21 || l.LeadMinutes != 4 {
		t.Fatalf("cfg %+v policy %+v", cfg, pol)
	}
	// Unset, Learning keeps the defaults the simulator's reference scenario checks.
	delete(env, "LIVEAGG_SCALE_DOWN_WINDOW")
	_, pol, err = FromEnv(func(k string) string { return env[k] })
	if d := pol.(Learning).withDefaults(); err != nil || d.CatchUpSeconds != 60 || d.StabilizationPoints != 15 {
		t.Fatalf("learning defaults: %+v %v", d, err)
	}
	env["LIVEAGG_CATCH_UP"] = "5m"
	if _, pol, err = FromEnv(func(k string) string { return env[k] }); err != nil || pol.(Learning).CatchUpSeconds != 300 {
		t.Fatalf("LIVEAGG_CATCH_UP: %+v %v", pol, err)
	}
	env["LIVEAGG_HISTORY_DAYS"] = "3"
	if cfg, _, err := FromEnv(func(k string) string { return env[k] }); err != nil || cfg.HistoryDays != 3 {
		t.Fatalf("LIVEAGG_HISTORY_DAYS: %+v %v", cfg, err)
	}
	for _, v := range []string{"0", "16", "a week"} {
		env["LIVEAGG_HISTORY_DAYS"] = v
		if _, _, err := FromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "LIVEAGG_HISTORY_DAYS") {
			t.Errorf("LIVEAGG_HISTORY_DAYS=%s: %v", v, err)
		}
	}
	delete(env, "LIVEAGG_HISTORY_DAYS")
	env["LIVEAGG_POLICY"] = "capacity"
	if _, pol, err := FromEnv(func(k string) string { return env[k] }); err != nil || pol.(Capacity).MemoryPerWorker != 2<<30 {
		t.Fatalf("capacity policy: %+v %v", pol, err)
	}
	bad := map[string]string{"LIVEAGG_PARTITIONS": "twelve", "LIVEAGG_TARGET_UTILIZATION": "1.5", "LIVEAGG_CATCH_UP": "soon"}
	if _, _, err := FromEnv(func(k string) string {
		return map[string]string{"LIVEAGG_ASG": "g", "LIVEAGG_SPEC": "s", "LIVEAGG_PARTITIONS": "1", "LIVEAGG_POLICY": "magic"}[k]
	}); err == nil || !strings.Contains(err.Error(), "LIVEAGG_POLICY") {
		t.Errorf("unknown policy: %v", err)
	}
	_, _, err = FromEnv(func(k string) string { return bad[k] })
	for _, want := range []string{"LIVEAGG_ASG is required", "LIVEAGG_SPEC is required", `LIVEAGG_PARTITIONS "twelve"`, "LIVEAGG_TARGET_UTILIZATION 1.5", `LIVEAGG_CATCH_UP "soon"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
