// Command liveagg-demo runs the indoor-location pipeline end to end in one process, with a
// crash, a restore and a verification of every rollup (see the command's help). It is its own
// binary, not a subcommand of liveagg, so that the worker installed on every instance carries
// neither the in-process broker nor the terminal view.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/liveagg/liveagg/examples/indoor-location/demo"
)

// Exit statuses: 1 when a rollup or a dead letter did not verify, 2 when called wrongly.
const (
	exitUnverified = 1
	exitUsage      = 2
)

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
		fmt.Fprintln(os.Stderr, "liveagg-demo:", err)
		os.Exit(exitUsage)
	}
}

// usageErr prints a usage problem and returns the usage exit status.
func usageErr(cmd *cobra.Command, msg string) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "liveagg-demo:", msg)
	return &exitError{code: exitUsage}
}

func newCmd() *cobra.Command {
	var o demo.Options
	var seed int64
	cmd := &cobra.Command{
		Use:   "liveagg-demo",
		Short: "Run the whole job on an in-process Kafka, crash a worker half-way, verify every rollup",
		Long: `liveagg-demo runs liveagg end to end in one process, with nothing to install: an in-process Kafka
broker, a file:// checkpoint store, a generator of indoor-location events (Zipf-skewed orgs,
devices moving between zones, event-time jitter, a few late and malformed records) and the
real worker runtime running the three levels of examples/indoor-location: raw events into
partial states (level 1), zone, floor and site rollups (level 2), org rollups (level 3).

Half-way it kills a level-1 worker without letting it save anything, as a lost spot instance
would, and later a level-2 worker; replacements restore the partitions from their checkpoints
and replay. At the end every rollup is checked against a single-pass recomputation from the
generated events, and the dead-letter topic against the records that should be in it.

Rollups land in --out as newline-delimited JSON: partitions/*.jsonl as the workers wrote them,
and <spec>.jsonl sorted, which is byte-identical for the same --seed and --records.`,
		Example: `  liveagg-demo                           # 400,000 records at 100,000/s
  liveagg-demo --records 2000000 --rate -1  # as fast as this machine goes
  liveagg-demo --duration 30s --orgs 200
  liveagg-demo --seed 7 --out /tmp/run1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seed < 0 {
				return usageErr(cmd, "--seed must be positive")
			}
			if o.Records > 0 && o.Duration > 0 {
				return usageErr(cmd, "--records and --duration are exclusive: a run is either fixed-size or timed")
			}
			o.Seed = uint64(seed)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := os.MkdirAll(o.Out, 0o755); err != nil {
				return usageErr(cmd, err.Error())
			}
			logPath := filepath.Join(o.Out, "demo.log")
			lf, err := os.Create(logPath)
			if err != nil {
				return usageErr(cmd, err.Error())
			}
			defer lf.Close()
			o.Logger = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelInfo}))

			out := cmd.OutOrStdout()
			var view interface {
				demo.Reporter
				Stop()
			}
			if f, ok := out.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
				view = demo.NewLive(out)
			} else {
				view = demo.NewPlain(out)
			}
			res, err := demo.Run(ctx, o, view)
			view.Stop()
			if err != nil {
				return fmt.Errorf("demo: %w (worker logs: %s)", err, logPath)
			}
			demo.WriteSummary(out, res)
			fmt.Fprintf(out, "worker logs: %s\n", logPath)
			if !res.OK() {
				return &exitError{code: exitUnverified}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.Records, "records", 0, "records to generate: a fixed-size run (default 400000 unless --duration)")
	f.DurationVar(&o.Duration, "duration", 0, "generate for this long instead: a timed run")
	f.IntVar(&o.Rate, "rate", 100_000, "records produced per second (-1: as fast as possible)")
	f.IntVar(&o.Orgs, "orgs", 50, "orgs, Zipf-distributed: a few carry most of the traffic")
	f.StringVar(&o.Out, "out", "liveagg-demo", "folder for the rollup files and the worker log")
	f.Int64Var(&seed, "seed", 1, "random seed: the same seed and --records give byte-identical rollups")
	f.IntVar(&o.Partitions, "partitions", 4, "partitions of the raw topic")
	f.IntVar(&o.Workers, "workers", 2, "workers sharing the partitions")
	f.BoolVar(&o.NoKill, "no-crash", false, "skip the crashes and restores")
	f.StringVar(&o.Checkpoints, "checkpoints", "", "folder for checkpoints (default: a temporary folder, removed after)")
	return cmd
}
