package specsrc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/liveagg/liveagg/workers/spec"
)

// TopicHistory reads what a spec's input topic still holds — which partitions retention has
// trimmed and how long it keeps records — so that a spec change that could not be honoured
// (spec.Plan.Check) is refused before it is stored, not found out by the workers.
func TopicHistory(ctx context.Context, adm *kadm.Client, topic string) (spec.History, error) {
	var h spec.History
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return h, fmt.Errorf("list the start offsets of %s: %w", topic, err)
	}
	if err := starts.Error(); err != nil {
		return h, fmt.Errorf("list the start offsets of %s: %w", topic, err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			h.Trimmed = append(h.Trimmed, o.Partition)
		}
	})
	slices.Sort(h.Trimmed)
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return h, fmt.Errorf("describe %s: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return h, fmt.Errorf("describe %s: %w", topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.Value != nil {
			if ms, err := strconv.ParseInt(*c.Value, 10, 64); err == nil && ms > 0 {
				h.Retention = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return h, nil
}
