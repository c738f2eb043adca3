package autoscaler

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FromEnv reads the scaler's configuration and policy from environment variables (getenv is
// os.Getenv in main), with an error naming each variable that is missing or wrong:
//
//	LIVEAGG_ASG                 Auto Scaling group (required)
//	LIVEAGG_SPEC                spec the workers run (required)
//	LIVEAGG_PARTITIONS          partitions of its input topic (required)
//	LIVEAGG_CORES_PER_WORKER    vCPUs per worker (2)
//	LIVEAGG_TARGET_UTILIZATION  fraction of the cores to plan for (learning 0.92, capacity 0.6)
//	LIVEAGG_MEMORY_PER_WORKER   bytes of state per worker, e.g. 4GiB (4GiB)
//	LIVEAGG_CATCH_UP            time to work off lag (learning 1m, capacity 10m)
//	LIVEAGG_SCALE_DOWN_WINDOW   minutes a scale-down must agree with (learning 15m, capacity 10m)
//	LIVEAGG_DRY_RUN             true: decide and publish, change nothing
//	LIVEAGG_POLICY              learning (forecasts ahead) or capacity (reacts) (learning)
//	LIVEAGG_LEAD                time from asking for a worker to its consuming (4m)
//	LIVEAGG_HISTORY_DAYS        days of history the learning policy reads, 1-15 (15)
func FromEnv(getenv func(string) string) (Config, Policy, error) {
	cfg, p, err := capacityFromEnv(getenv)
	if err != nil {
		return cfg, nil, err
	}
	lead := 4 * time.Minute
	if v := getenv("LIVEAGG_LEAD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			return cfg, nil, fmt.Errorf("LIVEAGG_LEAD %q is not a duration of a minute or more", v)
		}
		lead = d
	}
	if v := getenv("LIVEAGG_HISTORY_DAYS"); v != "" {
		// CloudWatch keeps one-minute points for 15 days, and the history reads them.
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 15 {
			return cfg, nil, fmt.Errorf("LIVEAGG_HISTORY_DAYS %q is not a whole number of days from 1 to 15", v)
		}
		cfg.HistoryDays = n
	}
	switch v := getenv("LIVEAGG_POLICY"); v {
	case "", "learning":
		target := 0.0
		if getenv("LIVEAGG_TARGET_UTILIZATION") != "" {
			target = p.TargetUtilization
		}
		// Only what was set overrides Learning's own defaults: those are what the simulator's
		// reference scenario checks, and Capacity's (a 10m catch-up) miss its SLO goal.
		l := Learning{TargetUtilization: target, CoresPerWorker: p.CoresPerWorker, LeadMinutes: int(lead.Minutes()),
			MemoryPerWorker: p.MemoryPerWorker}
		if getenv("LIVEAGG_CATCH_UP") != "" {
			l.CatchUpSeconds = p.CatchUpSeconds
		}
		if getenv("LIVEAGG_SCALE_DOWN_WINDOW") != "" {
			l.StabilizationPoints = p.StabilizationPoints
		}
		cfg.Window = max(cfg.Window, l.withDefaults().StabilizationPoints+1)
		return cfg, l, nil
	case "capacity":
		return cfg, p, nil
	default:
		return cfg, nil, fmt.Errorf("LIVEAGG_POLICY %q is not learning or capacity", v)
	}
}

// capacityFromEnv reads the settings every policy shares, as a Capacity policy.
func capacityFromEnv(getenv func(string) string) (Config, Capacity, error) {
	var errs []error
	req := func(name string) string {
		v := getenv(name)
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
		return v
	}
	num := func(name string, def float64) float64 {
		v := getenv(name)
		if v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			errs = append(errs, fmt.Errorf("%s %q is not a positive number", name, v))
		}
		return f
	}
	dur := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s %q is not a positive duration such as 10m", name, v))
		}
		return d
	}
	cfg := Config{Group: req("LIVEAGG_ASG"), Spec: req("LIVEAGG_SPEC")}
	if v := req("LIVEAGG_PARTITIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("LIVEAGG_PARTITIONS %q is not a positive integer", v))
		}
		cfg.Partitions = int32(n)
	}
	switch v := strings.ToLower(getenv("LIVEAGG_DRY_RUN")); v {
	case "", "false", "0":
	case "true", "1":
		cfg.DryRun = true
	default:
		errs = append(errs, fmt.Errorf("LIVEAGG_DRY_RUN %q is not true or false", v))
	}
	p := Capacity{
		CoresPerWorker:    num("LIVEAGG_CORES_PER_WORKER", 2),
		TargetUtilization: num("LIVEAGG_TARGET_UTILIZATION", 0.6),
		CatchUpSeconds:    dur("LIVEAGG_CATCH_UP", 10*time.Minute).Seconds(),
	}
	if p.TargetUtilization > 1 {
		errs = append(errs, fmt.Errorf("LIVEAGG_TARGET_UTILIZATION %v is above 1", p.TargetUtilization))
	}
	p.StabilizationPoints = int(dur("LIVEAGG_SCALE_DOWN_WINDOW", 10*time.Minute) / time.Minute)
	if v := getenv("LIVEAGG_MEMORY_PER_WORKER"); v != "" {
		b, err := parseBytes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("LIVEAGG_MEMORY_PER_WORKER: %w", err))
		}
		p.MemoryPerWorker = b
	}
	cfg.Window = max(15, p.StabilizationPoints+1)
	return cfg, p, errors.Join(errs...)
}

func parseBytes(v string) (float64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || f <= 0 {
				return 0, fmt.Errorf("%q is not a size such as 4GiB", v)
			}
			return f * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q is not a size such as 4GiB", v)
}
