package cli

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/worker"
)

type kgoOpt = kgo.Opt

// layoutColumns is the value columns a spec produces, in order.
func layoutColumns(s *spec.Spec) ([]string, error) {
	l, err := worker.Layout(s)
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", s.Name, err)
	}
	return l.Columns(), nil
}

// inputPartitions is the partition count of the input topic, which must exist.
func inputPartitions(ctx context.Context, opts []kgo.Opt, topic string) (int32, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("describe input topic %s: %w", topic, err)
	}
	t, ok := td[topic]
	if !ok || t.Err != nil {
		return 0, fmt.Errorf("input topic %s: does not exist (%v)", topic, t.Err)
	}
	return int32(len(t.Partitions)), nil
}
