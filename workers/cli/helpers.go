package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
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

// inputPartitions is the partition count of the input topic, which must exist. A topic
// created together with the fleet (one terraform apply) can take a moment to show in the
// brokers' metadata, so an unknown topic is asked about again for up to wait before the
// worker gives up naming it.
func inputPartitions(ctx context.Context, opts []kgo.Opt, topic string, wait time.Duration) (int32, error) {
	// The client caches metadata answers for MetadataMinAge (5s): without a shorter one every
	// ask within it would get the same "unknown topic".
	cl, err := kgo.NewClient(append(slices.Clip(opts), kgo.MetadataMinAge(250*time.Millisecond))...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(wait)
	for {
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("describe input topic %s: %w", topic, err)
		}
		t, ok := td[topic]
		if ok && t.Err == nil {
			return int32(len(t.Partitions)), nil
		}
		// Unknown (not in the metadata yet) or a passing error such as no leader yet.
		waiting := !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition) || kerr.IsRetriable(t.Err)
		if !waiting || time.Now().After(deadline) {
			why := "not in the brokers' metadata"
			if ok && t.Err != nil {
				why = t.Err.Error()
			}
			return 0, fmt.Errorf("input topic %s: does not exist (%s)", topic, why)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("input topic %s: %w", topic, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
