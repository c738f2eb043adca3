package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/liveagg/liveagg/workers/spec"
)

func newSpecCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spec",
		Short: "Work with aggregation specs",
	}
	cmd.AddCommand(newSpecValidateCmd(), newSpecExplainCmd())
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
