package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/specsrc"
)

func newSpecExplainCmd() *cobra.Command {
	var sample, cfgPath string
	cmd := &cobra.Command{
		Use:   "explain FILE",
		Short: "Say how workers run a spec: its stages, topics and consumer groups",
		Long: `Explain validates a spec and prints how a worker runs it: in one stage, or, when its
input is not declared partitioned within its key, in two stages through an internal repartition
topic (which topic, its partitions and retention, and each stage's consumer group).

With --sample, it also reads newline-delimited JSON records (a few lines of the input topic) and
checks each against the spec: the key and time fields decode, and every partitioned_by field is
there. With --config instead, it reads the newest records of every partition of the input topic
itself, with that worker configuration's Kafka settings. A spec that declares a partitioning by a
field the records lack is refused here, before any worker runs it.

Exit status: 0 if the spec is valid (and the sample fits it), 1 if not, 2 if a file cannot be read.`,
		Example: "  liveagg spec explain web-errors.yaml --sample access-logs.jsonl\n  liveagg spec explain web-errors.yaml --config worker.yaml",
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
			var samples []specsrc.Sample
			from := sample
			switch {
			case sample != "":
				samples, err = readSampleFile(s, sample)
			case cfgPath != "":
				from = s.Input.Topic
				samples, err = readTopicSample(cmd.Context(), cfgPath, s)
			default:
				return nil
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", from, err)
				return &ExitError{Code: ExitUsage}
			}
			if len(samples) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: no records to check\n", from)
				return nil
			}
			rep, err := specsrc.CheckSample(s, samples)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", from, err)
				return &ExitError{Code: ExitInvalid}
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s\n", p)
			}
			for _, a := range rep.Absent {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s, in %d records\n", from, a, rep.Records)
			}
			if len(rep.Problems)+len(rep.Absent) > 0 {
				return &ExitError{Code: ExitInvalid}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d records fit the spec\n", from, rep.Records)
			return nil
		},
	}
	cmd.Flags().StringVar(&sample, "sample", "", "newline-delimited JSON records to check against the spec")
	cmd.Flags().StringVar(&cfgPath, "config", "", "worker configuration whose Kafka settings reach the input topic, to check its newest records against the spec")
	cmd.MarkFlagsMutuallyExclusive("sample", "config")
	return cmd
}

// readSampleFile reads newline-delimited records, each named by its line.
func readSampleFile(s *spec.Spec, path string) ([]specsrc.Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []specsrc.Sample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, s.Input.MaxRecordBytes+1)
	for line := 1; sc.Scan(); line++ {
		if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 {
			out = append(out, specsrc.Sample{Where: fmt.Sprintf("%s:%d", path, line), Value: bytes.Clone(b)})
		}
	}
	return out, sc.Err()
}

// readTopicSample reads the newest records of the spec's input topic with the Kafka settings
// of a worker configuration.
func readTopicSample(ctx context.Context, cfgPath string, s *spec.Spec) ([]specsrc.Sample, error) {
	kopts, err := configKafkaOpts(ctx, cfgPath)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return specsrc.ReadTopicSample(ctx, kopts, s.Input.Topic, specsrc.SampleRecords)
}
