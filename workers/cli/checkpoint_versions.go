package cli

import (
	"fmt"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/liveagg/liveagg/workers/checkpoint"
)

// newCheckpointVersionsCmd lists which spec revision wrote each partition's checkpoints: during
// a change some partitions are on the new revision and some not yet, and a worker halted on
// an old revision's checkpoints says which.
func newCheckpointVersionsCmd(open storeOpener) *cobra.Command {
	var specName, topic string
	cmd := &cobra.Command{
		Use:   "versions LOCATION",
		Short: "Show which spec version wrote each partition's current and previous checkpoint",
		Long: `versions lists, per checkpointed partition under LOCATION (or of one spec), the spec
version that wrote its current and previous checkpoint ("-" for a checkpoint written before
specs had versions), then a count of partitions per current version for each spec.

Exit status: 0 when listed, 1 if a partition's manifest cannot be read, 2 if the location
cannot be read.`,
		Example: "  liveagg checkpoint versions s3://my-bucket/checkpoints --spec access-rollups",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, keys, err := open.partitions(ctx, args[0], specName, topic)
			if err != nil {
				return usageErr(cmd, err.Error())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SPEC\tTOPIC\tPARTITION\tVERSION\tPREVIOUS\tOFFSET")
			counts := map[string]map[string]int{}
			bad := false
			for _, k := range keys {
				m, err := st.Inspect(ctx, k)
				if err != nil {
					fmt.Fprintf(tw, "%s\t%s\t%d\terror: %v\n", k.Spec, k.Topic, k.Partition, err)
					bad = true
					continue
				}
				cur, prev, off := entryVersion(m.Current), entryVersion(m.Previous), "-"
				if m.Current != nil {
					off = strconv.FormatInt(m.Current.Offset, 10)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", k.Spec, k.Topic, k.Partition, cur, prev, off)
				if counts[k.Spec] == nil {
					counts[k.Spec] = map[string]int{}
				}
				counts[k.Spec][cur]++
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			specs := make([]string, 0, len(counts))
			for s := range counts {
				specs = append(specs, s)
			}
			slices.Sort(specs)
			for _, s := range specs {
				vs := make([]string, 0, len(counts[s]))
				for v := range counts[s] {
					vs = append(vs, v)
				}
				slices.Sort(vs)
				line := "spec " + s + ":"
				for _, v := range vs {
					line += fmt.Sprintf(" version %s on %d partition(s);", v, counts[s][v])
				}
				fmt.Fprintln(cmd.OutOrStdout(), line)
			}
			if len(keys) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no checkpoints under %s\n", args[0])
			}
			if bad {
				return &ExitError{Code: ExitInvalid}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&specName, "spec", "", "only this spec")
	cmd.Flags().StringVar(&topic, "topic", "", "only this input topic (with --spec)")
	return cmd
}

// entryVersion is the version that wrote a checkpoint, "-" when it predates versions, "" when
// there is no checkpoint.
func entryVersion(e *checkpoint.Entry) string {
	switch {
	case e == nil:
		return ""
	case e.Spec == "":
		return "-"
	}
	return strconv.Itoa(e.SpecVersion)
}

// newCheckpointRetireCmd deletes an old revision's checkpoints, so the spec's partitions start
// afresh: what to do after a worker halts on checkpoints it cannot carry over, or to clean up
// a spec that was renamed or deleted.
func newCheckpointRetireCmd(open storeOpener) *cobra.Command {
	var specName, topic string
	var below int
	var all, yes bool
	cmd := &cobra.Command{
		Use:   "retire LOCATION --spec NAME (--below VERSION | --all) [--yes]",
		Short: "Delete the checkpoints of partitions whose current checkpoint is of an old spec version",
		Long: `retire deletes the checkpoints (manifest and state objects) of every partition of a spec
whose current checkpoint was written by a spec version below --below (checkpoints written
before specs had versions count as version 0), or of every partition with --all. Those
partitions then start afresh: from the start of the input topic (or the consumer group's
committed offset), with empty state. Without --yes it only lists what it would delete.

Retire what no running revision should carry over: a worker that still owns a retired
partition finds its next checkpoint fenced and restarts the partition from nothing.

Exit status: 0 when done (or listed), 1 if a partition could not be read or deleted, 2 on a
wrong call or an unreadable location.`,
		Example: `  liveagg checkpoint retire s3://my-bucket/checkpoints --spec access-rollups --below 4
  liveagg checkpoint retire s3://my-bucket/checkpoints --spec old-name --all --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch {
			case specName == "":
				return usageErr(cmd, "--spec is required")
			case all == (below > 0):
				return usageErr(cmd, "give either --below VERSION (1 or more) or --all")
			}
			st, keys, err := open.partitions(ctx, args[0], specName, topic)
			if err != nil {
				return usageErr(cmd, err.Error())
			}
			out := cmd.OutOrStdout()
			code, n := ExitOK, 0
			for _, k := range keys {
				m, err := st.Inspect(ctx, k)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", k, err)
					code = ExitInvalid
					continue
				}
				v := 0
				if m.Current != nil {
					v = m.Current.SpecVersion
				}
				if !all && v >= below {
					continue
				}
				n++
				if !yes {
					fmt.Fprintf(out, "would retire %s (version %s, offset %s)\n", k, entryVersion(m.Current), offsetOf(m.Current))
					continue
				}
				if err := st.Retire(ctx, k); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%v\n", err)
					code = ExitInvalid
					continue
				}
				fmt.Fprintf(out, "retired %s (version %s, offset %s)\n", k, entryVersion(m.Current), offsetOf(m.Current))
			}
			if n == 0 {
				fmt.Fprintf(out, "nothing to retire for spec %s under %s\n", specName, args[0])
			} else if !yes {
				fmt.Fprintf(out, "%d partition(s); run again with --yes to delete their checkpoints\n", n)
			}
			if code != ExitOK {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&specName, "spec", "", "the spec whose checkpoints to retire (required)")
	cmd.Flags().StringVar(&topic, "topic", "", "only this input topic")
	cmd.Flags().IntVar(&below, "below", 0, "retire partitions whose current checkpoint's spec version is below this")
	cmd.Flags().BoolVar(&all, "all", false, "retire every partition of the spec")
	cmd.Flags().BoolVar(&yes, "yes", false, "delete (without it, only list)")
	return cmd
}

func offsetOf(e *checkpoint.Entry) string {
	if e == nil {
		return "-"
	}
	return strconv.FormatInt(e.Offset, 10)
}
