package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/topics"
)

type kgoOpt = kgo.Opt

// layoutColumns is the value columns a spec produces, in order.
func layoutColumns(s *spec.Spec) ([]sink.Column, error) {
	l, err := agg.LayoutOf(s)
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", s.Name, err)
	}
	return sink.Columns(l), nil
}

// inputPartitions is the partition count of the input topic, which must exist; one created in
// the same apply as the fleet is waited for.
func inputPartitions(ctx context.Context, opts []kgo.Opt, topic string, wait time.Duration) (int32, error) {
	t, err := topics.Await(ctx, opts, topic, wait, nil)
	if err != nil {
		return 0, fmt.Errorf("input topic: %w", err)
	}
	return int32(len(t.Partitions)), nil
}
