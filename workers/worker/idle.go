package worker

import (
	"context"
	"sync"
	"time"
)

// A partition is idle when the broker has had nothing more for it to read for the spec's
// input.idle_timeout. Its watermark then follows the wall clock, so its last windows close
// without waiting for a record that may come only tomorrow.
//
// Only the broker can say there is nothing to read: the lag refresher asks it every interval
// (the last stable offset and the high watermark) and confirms a partition whose owner has
// applied up to the last stable offset, with no transaction open past it (high watermark =
// last stable offset). Transaction markers count as read: the owner moves past them. A worker
// that cannot reach the broker gets no confirmations, and one whose poll loop is starved sees
// records waiting: neither ever advances by the clock. The advance never takes the watermark
// past the last confirmation either, so a record written after it is not late.

// idleness is what the lag refresher confirmed of one partition, read by its owner.
type idleness struct {
	mu sync.Mutex
	// applied is the owner's position the broker confirmed as its end (-1: an empty partition
	// the owner has not read, whose end is end); since is the first confirmation at that
	// position in a row, seen the latest.
	applied, end int64
	since, seen  time.Time
}

func (i *idleness) confirm(applied, end int64, now time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.since.IsZero() || i.applied != applied {
		i.applied, i.end, i.since = applied, end, now
	}
	i.seen = now
}

func (i *idleness) reset() {
	i.mu.Lock()
	i.since, i.seen = time.Time{}, time.Time{}
	i.mu.Unlock()
}

// at returns the confirmation: whether there is one for the position applied, since when, the
// latest, and the partition's end then.
func (i *idleness) at(applied int64) (since, seen time.Time, end int64, ok bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.since.IsZero() || i.applied != applied {
		return time.Time{}, time.Time{}, 0, false
	}
	return i.since, i.seen, i.end, true
}

// idleRefresh is how often the lag refresher asks the broker about partitions: often enough
// that an idle partition is confirmed well within its timeout.
func idleRefresh(timeout time.Duration) time.Duration {
	return min(10*time.Second, max(500*time.Millisecond, timeout/4))
}

// idleAdvance advances an idle partition's watermark by the wall clock, if the spec allows it
// and the broker has confirmed, recently and for at least the idle timeout, that there is
// nothing to read. The advance is made durable before any window it closes is written: the
// watermark is raised, a checkpoint records it (with the windows still open), and only then
// are the windows closed and a second checkpoint flushes them. A replay from the first closes
// them again; from an earlier one, it reads the same records and advances again, but has
// emitted nothing of the first advance. Either way no window is closed differently.
func (o *owner) idleAdvance(ctx context.Context, now time.Time) error {
	in := o.w.cfg.Spec.Input
	timeout := in.IdleTimeout.Std()
	if timeout <= 0 || o.proj != nil || o.poison != nil {
		return nil
	}
	since, seen, end, ok := o.idle.at(o.nextOffset)
	if !ok || now.Sub(since) < timeout || now.Sub(seen) > idleRefresh(timeout)+time.Second {
		return nil // not confirmed idle long enough, or the confirmation is stale
	}
	t := now.Add(-timeout)
	if seen.Before(t) {
		t = seen
	}
	wm := t.UnixMilli() - o.w.cfg.Spec.AllowedLateness.Millis()
	cur := o.store.Watermark()
	if wm <= cur {
		return nil
	}
	// Only worth a checkpoint when it closes a window here, or, for a level whose partials a
	// next level merges, when it passes a window boundary that the next level waits for.
	g := o.w.smallestWindow
	if !o.store.Closes(wm) && !(o.w.states && floorDiv(wm, g) > floorDiv(cur, g)) {
		return nil
	}
	if o.nextOffset < 0 {
		o.nextOffset = end // an empty partition: nothing before its end to read
	}
	o.store.RaiseWatermark(wm)
	o.ckptOffset = -2 // the watermark moved: this checkpoint is not the last one
	if err := o.checkpoint(ctx, true); err != nil {
		return err
	}
	o.curOffset, o.curRecord, o.handling = o.nextOffset-1, nil, -1
	o.store.CloseDue()
	if o.emitErr != nil {
		return o.emitErr
	}
	o.w.metrics.idleAdvanced(o.key.Partition)
	o.w.totalIdle.Add(1)
	o.setStat(func(s *PartitionStatus) {
		s.IdleAdvances++
		s.Watermark = wm
		s.NextOffset = o.nextOffset // an empty partition's position is its end now
	})
	o.log.Debug("idle partition: watermark advanced by the clock", "watermark", wm, "idle_since", since)
	return o.checkpoint(ctx, false)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
