// Command liveagg-simulate compares autoscaling policies on a load trace, with the autoscaler
// lambda's own policies (see the command's help). It is its own binary so that neither the
// worker nor the lambdas carry the simulator and its plotting library.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/liveagg/liveagg/lambdas/autoscaler/simulate"
)

// exitUsage is the exit status of a bad flag or an unreadable trace.
const exitUsage = 2

// exitError carries an exit status out of the command after its message has been printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	cmd := newCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	var exit *exitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		os.Exit(exit.code)
	default:
		fmt.Fprintln(os.Stderr, "liveagg-simulate:", err)
		os.Exit(1)
	}
}

// usageErr prints a usage problem and returns the usage exit status.
func usageErr(cmd *cobra.Command, msg string) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "liveagg-simulate:", msg)
	return &exitError{code: exitUsage}
}

func newCmd() *cobra.Command {
	var (
		tc                simulate.TraceConfig
		fleet             simulate.Fleet
		traceFile, format string
		plotPath, plotDir string
		suite             bool
		lead              time.Duration
		seed              uint64
	)
	cmd := &cobra.Command{
		Use:   "liveagg-simulate",
		Short: "Compare autoscaling policies on a load trace: utilisation, lag SLO, worker-hours, cost",
		Long: `liveagg-simulate replays a load trace minute by minute through a model of a liveagg fleet (workers
that take --lead to boot and restore, a per-worker capacity, spot interruptions, a backlog that
becomes lag) under each policy, on the same trace and the same interruptions:

  learning             the autoscaler lambda's forecasting policy (daily and weekly seasonality,
                       trend, upper prediction bound over the lead time, learned capacity)
  static-peak          one size for the trace's peak at 90 % CPU
  target-tracking      EC2 Auto Scaling target tracking on CPU at 75 %, with its alarms and
                       cooldowns, and again at the lowest target that costs no more than learning
  keda-kafka-lag       KEDA's Kafka scaler: replicas = lag / threshold, HPA stabilisation
  reactive-capacity    the lambda's reactive policy: current rate and lag, no forecast
  predictive           EC2 predictive scaling (hourly forecast, 48 h ahead, instances
                       launched 5 minutes before the hour) beside target tracking at 75 %
  step-scaling         EC2 step scaling on CPU: +10/20/30 % above 75 %, -10 % below 50 %

Every policy meets the same spot interruptions (the same instances, the same minutes, each
with its two-minute notice); a partition that moves (scaling, interruptions) pauses for the
rebalance, the leaver's last checkpoint and its state's restore; the lambda's policies read
what the lambda reads from CloudWatch: one-minute points with the minute under way not yet
published, and five-minute history.

With no flags it runs the reference scenario: 14 days with daily and weekly cycles, 20 % a week
growth, bursts and outages, spot interruptions at 5 % of instances per hour at peak, a 4-minute
lead time and a 60 s lag SLO, seeded so every run gives the same numbers.

--suite runs the stress suite instead: step changes, a holiday, a daylight-saving shift of a
sharp daily peak, a ramp and crash, heavy minute noise, daily flash crowds, a production-like
series and a narrow weekday peak, each generated (--days, --seed), and holds learning to its
goals on each. It prints each trace's table, then a summary and the goals met or missed, and
draws one PNG per trace into --plot-dir.

Output: --format table prints a table and draws liveagg-autoscale.png unless --plot says
otherwise. --format json prints one JSON object per policy per line on stdout, for a script
to read, and draws a plot only when --plot names a file. Progress goes to stderr.

Exit status: 0 when the simulation ran, 2 for a bad flag or an unreadable trace.`,
		Example: `  liveagg-simulate
  liveagg-simulate --format json | jq .
  liveagg-simulate --format json --plot run.png
  liveagg-simulate --trace rate.csv --plot rate.png   # columns: time, records_per_second
  liveagg-simulate --suite --plot-dir /tmp/suite`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if suite {
				if traceFile != "" {
					return usageErr(cmd, "--suite generates its own traces: no --trace")
				}
				if format != "table" {
					return usageErr(cmd, "--suite prints tables: no --format")
				}
				fleet.LeadMinutes = int(lead.Minutes())
				fleet.Seed = seed
				sc := simulate.SuiteConfig{Days: tc.Days, Seed: seed}
				if cmd.Flags().Changed("peak") {
					sc.Peak = tc.Peak // the suite's own default is larger than a single trace's
				}
				return runSuite(cmd, sc, fleet, plotDir)
			}
			var tr simulate.Trace
			if traceFile != "" {
				f, err := os.Open(traceFile)
				if err != nil {
					return usageErr(cmd, err.Error())
				}
				defer f.Close()
				if tr, err = simulate.ReadCSV(f, traceFile); err != nil {
					return usageErr(cmd, err.Error())
				}
			} else {
				tc.Seed = seed
				tr = simulate.Generate(tc)
			}
			if format != "table" && format != "json" {
				return usageErr(cmd, fmt.Sprintf("--format %q is not table or json", format))
			}
			// JSON is for scripts, which did not ask for a file beside their output.
			if format == "json" && !cmd.Flags().Changed("plot") {
				plotPath = ""
			}
			fleet.LeadMinutes = int(lead.Minutes())
			fleet.Seed = seed
			errOut := cmd.ErrOrStderr()
			fmt.Fprintf(errOut, "trace: %s, %d minutes, peak %.0f records/s\n", tr.Name, len(tr.Rate), tr.Peak())
			start := time.Now()
			results := simulate.RunAll(tr, fleet, simulate.Policies(tr, fleet), func(r simulate.Result) {
				fmt.Fprintf(errOut, "  %-40s done (%.1fs)\n", r.Policy, time.Since(start).Seconds())
			})
			out := cmd.OutOrStdout()
			var err error
			if format == "json" {
				err = simulate.WriteJSON(out, results)
			} else {
				err = simulate.WriteTable(out, results)
			}
			if err != nil {
				return err
			}
			if plotPath != "" {
				// The learning policy and the two target-tracking runs read best together.
				if err := plotTo(plotPath, tr, results); err != nil {
					return err
				}
				fmt.Fprintf(errOut, "plot: %s\n", plotPath)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&traceFile, "trace", "", "CSV trace to replay (columns time, records_per_second) instead of a generated one")
	fl.IntVar(&tc.Days, "days", 14, "days of generated trace")
	fl.Float64Var(&tc.Peak, "peak", 800_000, "first day's peak of the generated trace, records/s (with --suite: 2,000,000 unless given)")
	fl.Float64Var(&tc.GrowthPerWeek, "growth", 0.2, "generated trace's growth per week (0.2 = 20 %)")
	fl.Float64Var(&tc.BurstsPerDay, "bursts", 2, "generated bursts per day")
	fl.Uint64Var(&seed, "seed", 1, "seed of the generated trace and of the interruptions")
	fl.DurationVar(&lead, "lead", 4*time.Minute, "time from asking for a worker to its consuming (boot + restore)")
	fl.Float64Var(&fleet.InterruptionsPerHour, "interruptions", 0.05, "fraction of instances interrupted per hour at peak")
	fl.Float64Var(&fleet.SLOSeconds, "slo", 60, "lag objective, seconds")
	fl.StringVar(&format, "format", "table", "table or json (one object per policy per line)")
	fl.BoolVar(&suite, "suite", false, "run the stress suite (every generated trace) instead of one trace")
	fl.StringVar(&plotDir, "plot-dir", "liveagg-suite", "with --suite: the folder for one PNG per trace (empty: none)")
	fl.StringVar(&plotPath, "plot", "liveagg-autoscale.png", "PNG of load, capacity, workers, lag and CPU over time (empty: none; with --format json, none unless given)")
	return cmd
}

// runSuite runs every suite trace, prints each one's table as it finishes, then the summary,
// and draws a plot per trace into dir.
func runSuite(cmd *cobra.Command, c simulate.SuiteConfig, fleet simulate.Fleet, dir string) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	traces := simulate.Suite(c)
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return usageErr(cmd, err.Error())
		}
	}
	start := time.Now()
	results := simulate.RunSuite(traces, fleet, runtime.GOMAXPROCS(0), func(sr simulate.SuiteResult) {
		fmt.Fprintf(errOut, "  %-15s done (%.1fs)\n", sr.Trace.Name, time.Since(start).Seconds())
	})
	for _, sr := range results {
		fmt.Fprintf(out, "\n%s: %s\n", sr.Trace.Name, sr.Trace.About)
		if err := simulate.WriteTable(out, sr.Results); err != nil {
			return err
		}
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, sr.Trace.Name+".png")
		if err := plotTo(path, sr.Trace.Trace, sr.Results); err != nil {
			return err
		}
		fmt.Fprintf(errOut, "plot: %s\n", path)
	}
	fmt.Fprintln(out)
	return simulate.WriteSuiteSummary(out, results)
}

// plotTo draws learning and both target-tracking runs (the 75 % one and the cost-matched one).
func plotTo(path string, tr simulate.Trace, results []simulate.Result) error {
	var shown []simulate.Result
	for _, r := range results {
		if r.Policy == "learning" || r.Policy == "target-tracking-cpu-75" || strings.Contains(r.Policy, "(cost-matched)") || strings.Contains(r.Policy, "(cheapest)") {
			shown = append(shown, r)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := simulate.Plot(f, tr, shown); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}
