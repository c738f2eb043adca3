package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
)

// A spec that ran in two stages and now runs in one (its input became declared partitioned
// within its key) takes over from its first stage's checkpoints, but its outputs were written
// by the second stage, which ran behind the first: windows the first stage had closed and sent
// as partials that the second had not yet written would fall between the two versions. So the
// new version rebuilds from where the second stage had written, and leaves out the rows the
// second stage had written already, each by the partition of the repartition topic its series
// went through.

// secondStage is how far the old second stage of a spec had written its windows.
type secondStage struct {
	topic string
	// written is each partition's watermark at its newest checkpoint: windows ending at or
	// before it are in the outputs. A partition missing (never checkpointed) or at
	// math.MinInt64 (it never heard from every source) had written nothing.
	written    map[int32]int64
	partitions int
	windows    map[int64]bool // the second stage's window sizes
	min        int64          // the smallest watermark over every partition
	part       kgo.TopicPartitioner
}

// leftSecondStage says whether old, the spec of the first of two stages, now runs as cur in
// one stage: old wrote partials to its own repartition topic and cur writes none there.
func leftSecondStage(old, cur *spec.Spec) bool {
	topic := spec.RepartitionTopic(old.Name)
	if len(old.Outputs) != 1 || !old.Outputs[0].Partial || old.Outputs[0].Topic != topic {
		return false
	}
	for _, o := range cur.Outputs {
		if o.Partial && o.Topic == topic {
			return false
		}
	}
	return true
}

// readSecondStage reads the old second stage's progress from its checkpoints: every partition
// of the repartition topic, and each one's watermark at its newest checkpoint.
func (o *owner) readSecondStage(ctx context.Context, name string, windows []spec.Duration) (*secondStage, error) {
	w := o.w
	ss := &secondStage{topic: spec.RepartitionTopic(name), written: map[int32]int64{}, windows: map[int64]bool{}, min: math.MaxInt64,
		part: kgo.StickyKeyPartitioner(nil).ForTopic(spec.RepartitionTopic(name))}
	for _, d := range windows {
		ss.windows[d.Millis()] = true
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(w.cl).ListEndOffsets(lctx, ss.topic)
	if err != nil {
		return nil, fmt.Errorf("list the partitions of %s: %w", ss.topic, err)
	}
	if errors.Is(ends.Error(), kerr.UnknownTopicOrPartition) {
		// Deleted once the switch seemed done: nothing tells what the second stage wrote, so
		// the first stage's progress has to do.
		o.log.Warn("two stages became one, and the repartition topic is gone: rebuilding from the first stage's progress only", "topic", ss.topic)
		return ss, nil
	}
	ends.Each(func(e kadm.ListedOffset) { ss.partitions = max(ss.partitions, int(e.Partition)+1) })
	for p := range int32(ss.partitions) {
		m, err := w.cfg.Checkpoints.Inspect(ctx, checkpoint.Key{Spec: name, Topic: ss.topic, Partition: p})
		if errors.Is(err, checkpoint.ErrNoCheckpoint) {
			ss.min = math.MinInt64
			continue
		}
		if err != nil {
			return nil, err
		}
		wm := int64(math.MinInt64)
		if m.Current != nil && len(m.Current.Sources) > 0 {
			rs, err := decodeReaderState(m.Current.Sources)
			if err != nil {
				return nil, fmt.Errorf("the second stage's checkpoint of partition %d: %w", p, err)
			}
			if v, ok := rs.Watermarks.Min(); ok {
				wm = v
			}
		}
		ss.written[p] = wm
		ss.min = min(ss.min, wm)
	}
	return ss, nil
}

// rebuildFrom is the watermark the new version's rebuild starts below: the first stage's, or
// the second stage's when that is behind, and the very start when some partition of the second
// stage had written nothing at all.
func (ss *secondStage) rebuildFrom(firstStage int64) int64 {
	if ss.min == math.MinInt64 {
		return 0 // the Unix epoch: every record the log still holds
	}
	return min(firstStage, ss.min)
}

// writtenRow says whether the row of series key in the window of the given size ending at end
// is in the outputs already: the second stage's partition that the series' partials went to
// had passed the window's end. The partials were keyed by the key's values joined by '|'.
func (ss *secondStage) writtenRow(size, end int64, key []byte) bool {
	if !ss.windows[size] || ss.partitions == 0 {
		return false
	}
	k := []byte(strings.ReplaceAll(string(key), string(record.KeySep), "|"))
	p := int32(ss.part.Partition(&kgo.Record{Key: k}, ss.partitions))
	wm, ok := ss.written[p]
	return ok && end <= wm
}

// leaveSecondStage prepares the takeover of a first stage's checkpoint by a one-stage version:
// it returns the watermark to rebuild from and sets the owner to leave out the rows the second
// stage wrote.
func (o *owner) leaveSecondStage(ctx context.Context, old, cur *spec.Spec, firstStage int64) (int64, error) {
	ss, err := o.readSecondStage(ctx, cur.Name, cur.Windows)
	if err != nil {
		return 0, fmt.Errorf("two stages became one: read the second stage's progress: %w", err)
	}
	from := ss.rebuildFrom(firstStage)
	o.log.Info("two stages became one: rebuilding from where the second stage had written its windows",
		"second_stage_watermark", ss.min, "first_stage_watermark", firstStage, "rebuild_below", from)
	o.written = ss.writtenRow
	return from, nil
}

// writesPartials says whether a spec has partial outputs: what it writes is merged by a
// reader, which counts whatever it is given.
func writesPartials(s *spec.Spec) bool {
	return slices.ContainsFunc(s.Outputs, func(o spec.Output) bool { return o.Partial })
}

// partialsFrom decides where a new version of a spec writing only partials starts, after an
// incompatible change. Its readers merge whatever they are given, so rebuilding whole windows
// (as a version writing final rows must) would count again the records the old version's
// partials already carry. When the readers can merge the old partials (same key, same
// aggregations, and the readers' windows multiples of the old partials' size), the new version
// continues right where the old one's partials end: its first windows hold only the records
// after that, and the readers complete them with the old partials (continued is true). When
// they cannot (the old partials will be dead-lettered), the first stage of a two-stage spec
// rebuilds from where its second stage had written, so that nothing between the two is lost.
func (o *owner) partialsFrom(ctx context.Context, old, cur *spec.Spec, wm int64) (from int64, continued bool, err error) {
	if !writesPartials(cur) || slices.ContainsFunc(cur.Outputs, func(o spec.Output) bool { return !o.Partial }) ||
		!writesPartials(old) {
		return wm, false, nil
	}
	size := slices.Min(old.Windows).Millis() // partial outputs carry the smallest window
	readers := cur.Windows
	if o.w.cfg.Stage == 1 && o.w.cfg.Source != nil {
		readers = o.w.cfg.Source.Windows
	}
	fits := !slices.ContainsFunc(readers, func(d spec.Duration) bool { return d.Millis()%size != 0 })
	lo, err := agg.LayoutOf(old)
	if err == nil && fits && slices.Equal(old.Key, cur.Key) && lo.Fingerprint() == o.w.layout.Fingerprint() {
		from = wm - ((wm%size)+size)%size
		o.log.Info("partials continue where the old version's end: the readers merge both", "from", time.UnixMilli(from).UTC())
		return from, true, nil
	}
	if o.w.cfg.Stage != 1 {
		return wm, false, nil
	}
	ss, err := o.readSecondStage(ctx, cur.Name, nil)
	if err != nil {
		return 0, false, fmt.Errorf("spec change: read the second stage's progress: %w", err)
	}
	from = ss.rebuildFrom(wm)
	o.log.Info("the second stage cannot merge the old version's partials: rebuilding from where it had written its windows",
		"second_stage_watermark", ss.min, "first_stage_watermark", wm, "rebuild_below", from)
	return from, false, nil
}
