// Package cli is the liveagg command line (New): the subcommands that run a worker, check
// specs and read checkpoint stores without disturbing the workers that write them. A command
// parses its flags and configuration, wires the packages that do the work (worker, spec,
// checkpoint and their clients) and turns how it ended into an exit status; the statuses
// below are its contract with scripts and with the worker's supervisor.
package cli

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Exit codes, for scripts and CI.
const (
	ExitOK      = 0
	ExitInvalid = 1 // the input was read but is not valid (a spec, a checkpoint)
	ExitUsage   = 2 // the command was called wrongly, or a file could not be read
	// ExitDrained ends a worker drained through its admin API or by a spot interruption
	// notice: its instance is going away, so a supervisor must not restart it (systemd:
	// RestartPreventExitStatus=3). A spec change or SIGTERM ends with 0.
	ExitDrained = 3
	// ExitFailed ends a worker that failed at run time (a partition failed, a store was lost
	// for good): restart it, it restores its checkpoints and replays. A record that fails it
	// again and again is dead-lettered as poison by the restarts, so this cannot loop forever.
	ExitFailed = 4
	// ExitHalted ends a worker that stopped on a condition no restart can fix: an offset lost
	// to retention under on_missing_offset: stop, a dead-letter topic too small that it may
	// not raise, checkpoints that do not fit the spec. An operator must act (the log says
	// what), so a supervisor must not restart it (systemd: RestartPreventExitStatus=3 5).
	ExitHalted = 5
)

// ExitError carries an exit code out of a command after its message has been printed.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Version is set at build time with -ldflags "-X github.com/liveagg/liveagg/workers/cli.Version=...".
var Version = ""

// New returns the root command writing to out and errOut.
func New(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "liveagg",
		Short: "Real-time aggregation of Kafka streams on spot instances",
		Long: `liveagg aggregates Kafka streams into time-series rollups in real time, checkpointing
its state and offsets so that a worker lost to a spot interruption loses nothing.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(newSpecCmd(), newWorkerCmd(), newCheckpointCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "liveagg", version())
			return nil
		},
	}
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}
