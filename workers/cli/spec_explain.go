package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
)

func newSpecExplainCmd() *cobra.Command {
	var sample string
	cmd := &cobra.Command{
		Use:   "explain FILE",
		Short: "Say how workers run a spec: its stages, topics and consumer groups",
		Long: `Explain validates a spec and prints how a worker runs it: in one stage, or, when its
input is not declared partitioned within its key, in two stages through an internal repartition
topic (which topic, its partitions and retention, and each stage's consumer group).

With --sample, it also reads newline-delimited JSON records (a few lines of the input topic) and
checks each against the spec: the key and time fields decode, and every partitioned_by field is
there. A spec that declares a partitioning by a field the records lack is refused here, before
any worker runs it.

Exit status: 0 if the spec is valid (and the sample fits it), 1 if not, 2 if a file cannot be read.`,
		Example: "  liveagg spec explain web-errors.yaml --sample access-logs.jsonl",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", args[0], err)
				return &ExitError{Code: ExitUsage}
			}
			s, err := spec.Parse(data)
			if err != nil {
				printSpecErrors(cmd, args[0], err)
				return &ExitError{Code: ExitInvalid}
			}
			for _, l := range s.Explain() {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			if sample == "" {
				return nil
			}
			problems, n, err := checkSample(s, sample)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", sample, err)
				return &ExitError{Code: ExitUsage}
			}
			for _, p := range problems {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s\n", p)
			}
			if len(problems) > 0 {
				return &ExitError{Code: ExitInvalid}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d records fit the spec\n", sample, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&sample, "sample", "", "newline-delimited JSON records to check against the spec")
	return cmd
}

// checkSample decodes every record of a sample file as a worker would and checks that each has
// the partitioned_by fields. It reports at most a few problems per kind, each with its line.
func checkSample(s *spec.Spec, path string) (problems []string, records int, err error) {
	if s.Input.Format != spec.FormatJSON {
		return nil, 0, fmt.Errorf("spec %s reads %s, not JSON records", s.Name, s.Input.Format)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	dec, err := record.NewDecoder(s)
	if err != nil {
		return nil, 0, err
	}
	rec := dec.NewRecord()
	perKind := map[string]int{}
	report := func(kind, format string, args ...any) {
		if perKind[kind]++; perKind[kind] <= 3 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, s.Input.MaxRecordBytes+1)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		records++
		if err := dec.Decode(b, 0, rec); err != nil {
			report(string(record.ReasonOf(err)), "%s:%d: %v", path, line, err)
			continue
		}
		var doc map[string]any
		if json.Unmarshal(b, &doc) != nil {
			continue // the decoder accepted it; its own rules are the ones that matter
		}
		for i, field := range s.Input.PartitionedBy {
			if slices.Contains(s.Key, field) {
				continue // decoded with the key
			}
			if !hasField(doc, field) {
				report("partitioned_by:"+field, "%s:%d: input.partitioned_by[%d]: the record has no field %q: the producers cannot key records by it", path, line, i, field)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, records, err
	}
	for kind, n := range perKind {
		if n > 3 {
			problems = append(problems, fmt.Sprintf("%s: %d more records with %s", path, n-3, kind))
		}
	}
	return problems, records, nil
}

// hasField reports whether a dotted field path names a value in doc.
func hasField(doc map[string]any, path string) bool {
	var v any = doc
	for part := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[part]; !ok {
			return false
		}
	}
	return v != nil
}
