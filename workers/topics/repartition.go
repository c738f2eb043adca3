package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Repartition describes the internal topic between the stages of a spec run in two stages.
type Repartition struct {
	Name       string
	Partitions int32
	// RetentionMs is the input topic's retention.ms: the topic must keep partials as long as
	// a second stage that stopped may need to replay them, which is as long as the first
	// stage could replay its input. -1 keeps them for ever.
	RetentionMs string
	// Created says whether this call created it.
	Created bool
}

// EnsureRepartition creates the repartition topic of a two-stage spec if it is missing: as many
// partitions as the input topic (the second stage's parallelism matches the first's), the
// input's retention, delete cleanup. An existing topic is left as it is (an operator may have
// sized it differently; its partition count is returned), unless compaction cleans it, which
// is refused. The input topic is awaited first.
func EnsureRepartition(ctx context.Context, opts []kgo.Opt, input, name string, wait time.Duration) (Repartition, error) {
	in, err := Await(ctx, opts, input, wait, nil)
	if err != nil {
		return Repartition{}, fmt.Errorf("input topic: %w", err)
	}
	r := Repartition{Name: name, Partitions: int32(len(in.Partitions))}
	cl, err := kgo.NewClient(slices.Clip(opts)...)
	if err != nil {
		return Repartition{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cfgs, err := adm.DescribeTopicConfigs(ctx, input)
	if err != nil {
		return Repartition{}, fmt.Errorf("describe %s configs: %w", input, err)
	}
	r.RetentionMs = "604800000" // Kafka's own default, if the input says nothing
	if rc, err := cfgs.On(input, nil); err == nil && rc.Err == nil {
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				r.RetentionMs = *c.Value
			}
		}
	}
	del := "delete"
	resp, err := adm.CreateTopic(ctx, r.Partitions, -1, map[string]*string{"retention.ms": &r.RetentionMs, "cleanup.policy": &del}, name)
	switch {
	case err == nil && resp.Err == nil:
		r.Created = true
	case errors.Is(err, kerr.TopicAlreadyExists) || errors.Is(resp.Err, kerr.TopicAlreadyExists):
	case err != nil:
		return Repartition{}, fmt.Errorf("create repartition topic %s: %w", name, err)
	default:
		return Repartition{}, fmt.Errorf("create repartition topic %s: %w", name, resp.Err)
	}
	t, err := Await(ctx, opts, name, wait, nil)
	if err != nil {
		return Repartition{}, fmt.Errorf("repartition topic: %w", err)
	}
	r.Partitions = int32(len(t.Partitions))
	if !r.Created {
		if err := checkRepartition(ctx, adm, name); err != nil {
			return Repartition{}, err
		}
	}
	return r, nil
}

// ErrCompacted is returned for an existing repartition topic that compaction cleans.
var ErrCompacted = errors.New("the repartition topic is compacted")

// checkRepartition refuses an existing repartition topic that compaction cleans: partials are
// keyed by series, so compaction would keep a series' newest partial and delete older ones the
// second stage may not have read yet (another window, another input partition), losing their
// records.
func checkRepartition(ctx context.Context, adm *kadm.Client, name string) error {
	cfgs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return fmt.Errorf("describe %s configs: %w", name, err)
	}
	rc, err := cfgs.On(name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("describe %s configs: %w", name, err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil && strings.Contains(*c.Value, "compact") {
			return fmt.Errorf("%w: %s has cleanup.policy %s, which would delete partials the second stage has not read (they are keyed by series); "+
				"set it to delete: kafka-configs --alter --entity-type topics --entity-name %s --add-config cleanup.policy=delete", ErrCompacted, name, *c.Value, name)
		}
	}
	return nil
}
