package spec

import (
	"fmt"
	"slices"
	"strings"
)

// RepartitionTopic is the internal topic through which a spec run in two stages passes its
// partials from the first stage to the second.
func RepartitionTopic(name string) string { return name + ".repartition" }

// NeedsRepartition says whether the spec runs in two stages. A spec that writes final values is
// right in one stage only when each series is on one input partition, that is when the input is
// declared partitioned by a subset of the key (and the worker checks every record against the
// declaration). Otherwise (keying unknown, by a finer field, round-robin) each partition's
// rows for a series would overwrite the others': the first stage pre-aggregates every input
// partition into partials and re-keys them by the spec's key, and the second merges them.
func (s *Spec) NeedsRepartition() bool {
	if s.Input.Format != FormatJSON || !s.HasFinalOutputs() {
		return false
	}
	if len(s.Input.PartitionedBy) == 0 {
		return true
	}
	for _, f := range s.Input.PartitionedBy {
		if !slices.Contains(s.Key, f) {
			return true
		}
	}
	return false
}

// Stages returns the specs a worker runs for s, in pipeline order: s itself, or for a spec
// that NeedsRepartition two. The first reads s's input and writes partials of one window size
// (the greatest common divisor of s's windows, so each partial fits every window) to
// RepartitionTopic, keyed by s's key. The second reads them, merges them into s's windows and
// writes s's outputs. Both keep s's name: their checkpoints and transactions are told apart by
// the topic each reads. The second stage has no allowed lateness of its own: its watermark is
// the first stage's, carried by watermark markers, so lateness is decided once, at the first.
func (s *Spec) Stages() []*Spec {
	if !s.NeedsRepartition() {
		return []*Spec{s}
	}
	topic := RepartitionTopic(s.Name)
	first := *s
	first.Windows = []Duration{s.PartialWindow()}
	first.Outputs = []Output{{Type: OutputKafka, Partial: true, Topic: topic, Key: s.Key}}
	second := *s
	second.Input = Input{Topic: topic, Format: FormatPartials, MaxFutureSkew: s.Input.MaxFutureSkew, MaxRecordBytes: s.Input.MaxRecordBytes}
	second.AllowedLateness = 0
	return []*Spec{&first, &second}
}

// PartialWindow is the window size of the first stage's partials: the greatest common divisor
// of the spec's windows.
func (s *Spec) PartialWindow() Duration {
	var g int64
	for _, w := range s.Windows {
		g = gcd(g, int64(w))
	}
	return Duration(g)
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Explain describes, in a few lines, how a worker runs the spec: its stages, what each reads,
// keeps and writes, and the internal topic between them. The CLI's `spec explain` and the
// Terraform provider's plan print it, so what they say is what the worker does.
func (s *Spec) Explain() []string {
	group := "liveagg." + s.Name
	stages := s.Stages()
	var lines []string
	if len(stages) == 1 {
		why := "its outputs are partial states, which a next level merges whatever the partitioning"
		switch {
		case s.Input.Format == FormatPartials:
			why = "it reads partials, which it merges by their windows and its key"
		case s.HasFinalOutputs():
			why = fmt.Sprintf("its input is declared partitioned by %v, within its key: each series is on one partition (checked record by record)",
				s.Input.PartitionedBy)
		}
		lines = append(lines, fmt.Sprintf("spec %s runs in one stage: %s", s.Name, why))
		lines = append(lines, fmt.Sprintf("  reads %s (%s) in consumer group %s; windows %s; writes %s", s.Input.Topic, s.Input.Format, group,
			durations(s.Windows), outputs(s.Outputs)))
		return lines
	}
	first, second := stages[0], stages[1]
	why := "its input's partitioning is not declared (input.partitioned_by), so a series may be on several partitions"
	if len(s.Input.PartitionedBy) > 0 {
		why = fmt.Sprintf("its input is partitioned by %v, not within its key %v, so a series is on several partitions", s.Input.PartitionedBy, s.Key)
	}
	topic := second.Input.Topic
	lines = []string{
		fmt.Sprintf("spec %s runs in two stages: %s", s.Name, why),
		fmt.Sprintf("  stage 1: reads %s (%s) in consumer group %s; pre-aggregates each partition into %s partials of key %v, late records decided here (allowed lateness %s)",
			s.Input.Topic, s.Input.Format, group, first.Windows[0], s.Key, s.AllowedLateness),
		fmt.Sprintf("           writes them to %s, keyed by the key, with a watermark marker to every partition at each checkpoint, in the checkpoint's transaction", topic),
		fmt.Sprintf("  stage 2: reads %s in consumer group %s.stage2; merges the partials into windows %s, closing a window once every stage-1 partition has passed its end; writes %s",
			topic, group, durations(s.Windows), outputs(s.Outputs)),
		fmt.Sprintf("  %s: created by the workers if missing, with as many partitions as %s and its retention.ms, cleanup.policy delete", topic, s.Input.Topic),
	}
	if s.Input.IdleTimeout == 0 {
		lines = append(lines, fmt.Sprintf("  warning: input.idle_timeout is not set: a partition of %s that is empty or goes quiet holds every window of stage 2 until its next record", s.Input.Topic))
	}
	return lines
}

func outputs(os []Output) string {
	out := make([]string, len(os))
	for i, o := range os {
		switch o.Type {
		case OutputCassandra:
			out[i] = fmt.Sprintf("cassandra %s.%s", o.Keyspace, o.Table)
		case OutputS3:
			out[i] = "s3 " + o.URL
		case OutputKafka:
			out[i] = "kafka " + o.Topic
			if o.Partial {
				out[i] += " (partials)"
			}
		case OutputFile:
			out[i] = "file " + o.Path
		default:
			out[i] = o.Type
		}
	}
	return strings.Join(out, ", ")
}
