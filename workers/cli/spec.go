package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/config"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/specsrc"
)

func newSpecCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spec",
		Short: "Work with aggregation specs",
	}
	cmd.AddCommand(newSpecValidateCmd(), newSpecExplainCmd(), newSpecDiffCmd())
	return cmd
}

func newSpecValidateCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check aggregation specs and report every problem with its field and line",
		Long: `Validate parses each spec file (YAML or JSON) exactly as a worker and the Terraform
provider do, and prints every problem as FILE:LINE: FIELD: MESSAGE.

Exit status: 0 if every spec is valid, 1 if any is invalid, 2 if a file cannot be read.`,
		Example: "  liveagg spec validate examples/indoor-location/level1.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			code := ExitOK
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", f, err)
					code = ExitUsage
					continue
				}
				s, err := spec.Parse(data)
				if err != nil {
					printSpecErrors(cmd, f, err)
					code = max(code, ExitInvalid)
					continue
				}
				if !quiet {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: ok: spec %s reads %s (%s), key %s, windows %s, %d aggregations, %d outputs\n",
						f, s.Name, s.Input.Topic, s.Input.Format, strings.Join(s.Key, ","), windows(s), len(s.Aggregations), len(s.Outputs))
				}
			}
			if code != ExitOK {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing for valid specs")
	return cmd
}

func printSpecErrors(cmd *cobra.Command, file string, err error) {
	var errs spec.Errors
	if !errors.As(err, &errs) {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", file, err)
		return
	}
	for _, e := range errs {
		loc := file
		if e.Line > 0 {
			loc = fmt.Sprintf("%s:%d", file, e.Line)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", loc, e.Error())
	}
}

func windows(s *spec.Spec) string {
	w := make([]string, len(s.Windows))
	for i, d := range s.Windows {
		w[i] = d.String()
	}
	return strings.Join(w, ",")
}

func newSpecDiffCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Say what workers will do with a running spec's checkpoints when OLD is changed to NEW",
		Long: `Diff applies the rule for changing a running spec (docs/spec.md, "Changing a running
spec") and prints what each difference does to the workers' state and what the workers will
do: carry state over unchanged, migrate in place, start a new version from offsets, backfill,
or start a new spec. The Terraform provider's plan says the same.

With --config (a worker configuration), it also checks the input topic: a backfill needs
every record the old spec read, and a new version from offsets needs its rebuild span within
the topic's retention.

Exit status: 0 when the change can be carried out, 1 when it cannot (the reason is printed),
2 when a file cannot be read or a spec is invalid.`,
		Example: "  liveagg spec diff rollups.yaml rollups-new.yaml --config worker.yaml",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var specs [2]*spec.Spec
			for i, f := range args {
				data, err := os.ReadFile(f)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", f, err)
					return &ExitError{Code: ExitUsage}
				}
				if specs[i], err = spec.Parse(data); err != nil {
					printSpecErrors(cmd, f, err)
					return &ExitError{Code: ExitUsage}
				}
			}
			old, next := specs[0], specs[1]
			p := spec.Diff(old, next)
			printPlan(cmd.OutOrStdout(), old, next, p)
			if err := p.Refuse(old, next); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "cannot be carried out: %v\n", err)
				return &ExitError{Code: ExitInvalid}
			}
			if cfgPath == "" {
				return nil
			}
			h, err := inputHistory(cmd.Context(), cfgPath, next.Input.Topic)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "check %s: %v\n", next.Input.Topic, err)
				return &ExitError{Code: ExitUsage}
			}
			if err := p.Check(old, next, h); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "cannot be carried out: %v\n", err)
				return &ExitError{Code: ExitInvalid}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "checked against %s: can be carried out\n", next.Input.Topic)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "worker configuration whose Kafka settings reach the input topic, to check the change against it")
	return cmd
}

// printPlan writes a plan: the action on the first line, then each difference with its effect.
func printPlan(out io.Writer, old, next *spec.Spec, p spec.Plan) {
	fmt.Fprintf(out, "spec %s, version %d -> %d: %s\n", next.Name, old.Version, next.Version, p.Action)
	if len(p.Changes) == 0 {
		fmt.Fprintln(out, "  no difference")
		return
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for _, c := range p.Changes {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Field, c.What, c.Effect, c.Note)
	}
	_ = tw.Flush()
	fmt.Fprintln(out, p.Explain(old, next))
}

// inputHistory reads the input topic's history with the Kafka settings of a worker configuration.
func inputHistory(ctx context.Context, cfgPath, topic string) (spec.History, error) {
	kopts, err := configKafkaOpts(ctx, cfgPath)
	if err != nil {
		return spec.History{}, err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return spec.History{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return specsrc.TopicHistory(ctx, kadm.NewClient(cl), topic)
}

// configKafkaOpts are the Kafka client options of a worker configuration: how the spec
// commands reach a spec's input topic as its workers do.
func configKafkaOpts(ctx context.Context, cfgPath string) ([]kgo.Opt, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	return cfg.Kafka.ClientOpts(ctx, func(ctx context.Context) (aws.Config, error) { return cfg.AWS.Load(ctx) })
}
