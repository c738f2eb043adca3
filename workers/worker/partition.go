package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/partial"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
)

// deadLetterer is the outbox writer's extra surface: dead letters, the progress position, and
// the watermark announced to the readers of partial outputs.
type deadLetterer interface {
	DeadLetter(ctx context.Context, in *kgo.Record, reason, detail string) error
	DeadLetterRow(ctx context.Context, rej sink.Rejection) error
	Position(nextSeq uint64, nextOffset int64)
	Watermark(wm int64)
}

// owner is the single goroutine that owns one input partition's state: it applies records,
// hands closed windows to the sinks, and checkpoints. Everything it touches is its own, so
// nothing on the hot path takes a lock.
type owner struct {
	w     *Worker
	key   checkpoint.Key
	log   *slog.Logger
	lease *checkpoint.Lease
	store *state.Store
	fp    uint64
	input
	outputs
	snapshots
	progress
	poisonGuard
	// idle is what the lag refresher confirmed of the partition having nothing more to read.
	idle idleness

	in   chan []*kgo.Record
	ctl  chan control
	done chan struct{}

	mu   sync.Mutex // guards stat, read by Status from other goroutines
	stat PartitionStatus
}

// input is how an owner reads its records: raw events through the decoder, or partial states.
type input struct {
	dec   *record.Decoder // nil for a spec reading partials
	rec   *record.Record
	proj  *partial.Projection // for a spec reading partials
	part  partial.Partial
	parts [][]byte
	// sources are the watermarks of the partitions that write the partials (nil for raw input);
	// sourcesMoved says a marker arrived in the batch being applied.
	sources      *partial.Watermarks
	sourcesMoved bool
	// previous are earlier revisions of the spec whose partials are converted through
	// bridges, by the partials' layout fingerprint; converted is the conversion's buffer.
	previous   []string
	bridges    map[uint64]*state.Bridge
	converted  []byte
	superseded []uint64
	// partitionedBy is Worker.partitionedBy: records whose Kafka key is not the canonical
	// key of these key fields contradict the declared partitioning.
	partitionedBy []int
	badLogged     time.Time
}

// outputs are the owner's sink writers, in the worker's sink order, and the outbox among them.
type outputs struct {
	writers []sink.Writer
	names   []string
	outbox  deadLetterer
	emitErr error
	// written, when set, says which rows of a window are in the outputs already and are left
	// out of it: those an old second stage wrote, after two stages became one (stageswitch.go).
	written func(size, end int64, key []byte) bool
}

// snapshots are two snapshot buffers, alternated so one can upload while the next fills;
// saving is the result of the save in flight (nil when none).
type snapshots struct {
	snapBufs [2][]byte
	snapNext int
	saving   chan error
	chain    chainState
}

// chainState is where the owner's incremental chain stands, for the chain rule: the base's
// size and age and the deltas on it. chained says the store's chain is the manifest's current
// one, so the next checkpoint may be a delta.
type chainState struct {
	chained               bool
	baseBytes, deltaBytes int64
	deltas                int
	baseAt                time.Time
	lastDelta             int
}

// progress is where the owner stands in its input and its output sequence, and where its last
// checkpoint stands.
type progress struct {
	nextOffset int64
	nextSeq    uint64
	// Where the last checkpoint, restored or saved, stands: a checkpoint that would save the
	// same (a drain of an idle partition, a forced checkpoint just after another) is skipped.
	ckptOffset int64
	ckptSeq    uint64
	sinceCkpt  int64
	lastCkpt   time.Time
	curOffset  int64 // offset of the record being applied, for emitted windows
	// curRecord is the record being applied, for dead-lettering it from an emitted window.
	curRecord *kgo.Record
}

// poisonGuard pins a failure to the record that caused it and passes a record that failed
// PoisonAfter owners in a row.
type poisonGuard struct {
	// handling is the offset of the record being handled (-1 between records) and phase what
	// is being done with it.
	handling int64
	phase    string
	// poison is a record that failed PoisonAfter owners in a row: it is dead-lettered
	// instead of applied (phase apply), or the windows it closes are written guarded, their
	// rows dead-lettered if a sink fails on them (phase emit).
	poison *checkpoint.Failure
	// guardEmit is set while the poison record of phase emit is applied.
	guardEmit bool
}

type control struct {
	kind  controlKind
	reply chan error
}

type controlKind int

const (
	ctlCheckpoint controlKind = iota // checkpoint now
	ctlStop                          // checkpoint, close, exit
	ctlAbandon                       // close without checkpointing (partition lost or fenced)
	ctlFlushAll                      // close every window (end of a bounded input), checkpoint
)

// restore claims the partition, restores its newest checkpoint that restores (for incremental
// checkpoints a base and the deltas on it; falling back past a damaged link to the point before
// it, then to the previous chain) and opens the sinks. It returns the offset to start at, or -1
// to start at the beginning of the partition.
func (o *owner) restore(ctx context.Context) (int64, error) {
	w := o.w
	lease, err := w.cfg.Checkpoints.Claim(ctx, o.key, w.cfg.WorkerID)
	if err != nil {
		return 0, err
	}
	o.lease = lease
	lease.SetSpec(w.cfg.Spec.Version, w.specDocument())
	emitFn := func(sw *state.Window) { o.emitWindow(sw) }
	// Checkpoints of an earlier revision of the spec are restored with that revision's spec and
	// carried over afterwards (takeOver); the worker's own, as they are.
	var restored *state.Store
	var old *spec.Spec // the revision the restored point was written under, if another
	res, err := lease.Restore(ctx, func(links []checkpoint.Checkpoint) (int, error) {
		tip := links[len(links)-1]
		rs, rl, prev, err := o.restoreSpec(tip)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", checkpoint.ErrAbortRestore, err)
		}
		states := make([][]byte, len(links))
		for i, l := range links {
			states[i] = l.State
		}
		st, n, rerr := state.RestoreChain(rs, rl, emitFn, states)
		if errors.Is(rerr, state.ErrMismatch) && tip.Spec == "" && w.ranInOneStage(tip.State) {
			return 0, fmt.Errorf("%w: %w: the checkpoint at offset %d was written when this spec ran in one stage; it now runs in two, since its input is not "+
				"declared partitioned within its key. If the producers key every record by a subset of the key, declare it (input.partitioned_by) and the "+
				"checkpoints restore; otherwise retire them (liveagg checkpoint retire) and the two stages start from the start of the topic",
				checkpoint.ErrAbortRestore, ErrChangeRefused, tip.Offset)
		}
		if errors.Is(rerr, state.ErrMismatch) && tip.Spec == "" {
			return 0, fmt.Errorf("%w: %w: the checkpoint at offset %d was written before specs had versions, by a spec with other key, windows or aggregations, "+
				"so the worker cannot tell how to carry it over. Restore the previous spec, or retire the checkpoints "+
				"(liveagg checkpoint retire) to start this spec afresh", checkpoint.ErrAbortRestore, ErrChangeRefused, tip.Offset)
		}
		if errors.Is(rerr, state.ErrMismatch) {
			return 0, fmt.Errorf("%w: %w", checkpoint.ErrAbortRestore, rerr)
		}
		if rerr != nil {
			o.log.Error("checkpoint state does not restore; trying an older point", "links", len(states), "restored_links", n, "err", rerr)
		}
		if n > 0 {
			restored, old = st, prev
		}
		return n, rerr
	})
	fellBack := false // the newest checkpoint did not restore
	var switched *switchover
	cp := res.Checkpoint
	switch {
	case errors.Is(err, checkpoint.ErrNoCheckpoint):
		o.store = state.New(w.cfg.Spec, w.layout, emitFn)
		o.nextOffset, o.nextSeq = -1, 0
	case errors.Is(err, checkpoint.ErrNoneRestores):
		// Starting empty would replay from the log's start, which retention may have cut, and
		// overwrite good rollups.
		return 0, fmt.Errorf("partition %s: %w: %w; not starting from empty", o.key, ErrNoRestore, err)
	case err != nil:
		return 0, fmt.Errorf("partition %s: %w", o.key, err)
	default:
		o.store, o.nextOffset, o.nextSeq = restored, cp.Offset, cp.EmitSeq
		fellBack = !res.Tip
		o.chain = chainState{}
		if old != nil {
			// The new revision's state starts its own chain (a base) at its first checkpoint.
			if switched, err = o.takeOver(ctx, cp, old, restored, emitFn); err != nil {
				return 0, fmt.Errorf("partition %s: %w", o.key, err)
			}
		} else if !fellBack && o.store.HasChain() {
			o.chain = chainState{chained: true, baseBytes: res.BaseBytes, deltaBytes: res.DeltaBytes,
				deltas: res.Links - 1, baseAt: res.BaseCreated}
		}
	}
	pk := sink.PartitionKey{Spec: o.key.Spec, Topic: o.key.Topic, Partition: o.key.Partition}
	for _, s := range w.sinks {
		wr, err := s.Open(ctx, pk, cp.Sinks[s.Name()])
		if err != nil {
			o.closeWriters()
			return 0, fmt.Errorf("partition %s: open %s: %w", o.key, s.Name(), err)
		}
		o.writers = append(o.writers, wr)
		o.names = append(o.names, s.Name())
		if dl, ok := wr.(deadLetterer); ok {
			o.outbox = dl
		}
	}
	o.lastCkpt = time.Now()
	o.ckptOffset, o.ckptSeq = o.nextOffset, o.nextSeq
	o.handling = -1
	// A checkpoint taken between an idle advance and the windows it closes (see idleAdvance)
	// holds the raised watermark: close them now, as the run that wrote it did next.
	if o.store.Pending() {
		o.curOffset, o.curRecord = o.nextOffset-1, nil
		o.store.CloseDue()
		if o.emitErr != nil {
			o.closeWriters()
			return 0, o.emitErr
		}
		o.ckptOffset = -2 // what they wrote is committed by the next checkpoint, even with no record
	}
	if f := lease.Manifest().Failure; f != nil && f.Count >= w.cfg.PoisonAfter && f.Offset >= o.nextOffset {
		o.poison = f
		o.log.Error("POISON RECORD: this partition failed at one record repeatedly; it will be dead-lettered as poison and the partition goes on",
			"offset", f.Offset, "failures", f.Count, "phase", f.Phase, "err", f.Error)
	}
	if fellBack {
		o.ckptOffset = -2 // the newest checkpoint is unreadable: the next one must replace it
	}
	if o.sources != nil {
		if err := o.restoreReader(cp, switched); err != nil {
			o.closeWriters()
			return 0, fmt.Errorf("partition %s: %w", o.key, err)
		}
	}
	if switched != nil {
		// A reader's rebuild must not close the new windows at the sources' watermarks of the
		// switch before it has read the partials up to it: it runs with a tracker of its own,
		// and the restored one takes over after.
		restoredSources := o.sources
		if o.sources != nil {
			o.sources = partial.NewWatermarks()
		}
		err := o.rebuild(ctx, switched)
		if restoredSources != nil {
			o.sources = restoredSources
			if wm, ok := o.sources.Min(); ok && err == nil {
				o.store.AdvanceWatermark(wm)
				err = o.emitErr
			}
		}
		if err != nil {
			o.closeWriters()
			return 0, fmt.Errorf("partition %s: %w", o.key, err)
		}
		// The new version's first checkpoint is written within one interval, even with no
		// record: until then a restart carries the switch out again from the old checkpoint.
		o.ckptOffset, o.sinceCkpt = -2, 1
	}
	o.setStat(func(s *PartitionStatus) {
		s.Generation = lease.Generation()
		s.RestoredFrom = cp.Offset
		s.NextOffset = o.nextOffset
	})
	o.log.Info("partition restored", "generation", lease.Generation(), "offset", o.nextOffset,
		"emit_seq", o.nextSeq, "series", o.store.Stats().Series)
	return o.nextOffset, nil
}

// run is the owner's loop: batches in, controls in, periodic checkpoints.
func (o *owner) run(ctx context.Context) {
	defer close(o.done)
	// Mirror the restored offset at once: the previous owner's last mirror commit may never
	// have happened (it was killed) or may have been refused (it had left the group).
	if o.nextOffset >= 0 {
		o.w.mirrorOffset(o.key.Partition, o.nextOffset)
	}
	period := o.w.cfg.CheckpointInterval / 4
	if idle := o.w.cfg.Spec.Input.IdleTimeout.Std(); idle > 0 {
		period = min(period, idleRefresh(idle))
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case batch := <-o.in:
			if err := o.apply(ctx, batch); err != nil {
				o.fail(err)
				return
			}
			if o.sinceCkpt >= o.w.cfg.CheckpointRecords {
				if err := o.checkpoint(ctx, false); err != nil {
					o.fail(err)
					return
				}
			}
		case <-tick.C:
			// Records applied, or only transaction markers passed: either moves the offset.
			moved := o.sinceCkpt > 0 || (o.nextOffset >= 0 && o.nextOffset != o.ckptOffset) || o.nextSeq != o.ckptSeq
			if moved && time.Since(o.lastCkpt) >= o.w.cfg.CheckpointInterval {
				if err := o.checkpoint(ctx, false); err != nil {
					o.fail(err)
					return
				}
			} else if o.sinceCkpt == 0 && o.saving == nil && o.ckptOffset >= 0 && o.ckptOffset == o.nextOffset {
				o.w.metrics.checkpointCurrent(o.key.Partition)
			}
			if err := o.idleAdvance(ctx, time.Now()); err != nil {
				o.fail(err)
				return
			}
		case err := <-o.saving: // a background save finished
			o.saving = nil
			if err != nil {
				o.fail(err)
				return
			}
		case c := <-o.ctl:
			switch c.kind {
			case ctlCheckpoint:
				// A failed checkpoint fails the partition however it was asked for: the sinks
				// may hold output the checkpoint did not cover, and only a restart squares them.
				err := o.checkpoint(ctx, true)
				c.reply <- err
				if err != nil {
					o.fail(err)
					return
				}
			case ctlFlushAll:
				err := o.drainInput(ctx)
				if err == nil {
					o.store.Flush()
					err = o.emitErr
					o.ckptOffset = -2 // the flush moved the watermark, even with no window to emit
				}
				if err == nil {
					err = o.checkpoint(ctx, true)
				}
				c.reply <- err
				if err != nil {
					o.fail(err)
					return
				}
			case ctlStop:
				// Finish the batches already handed over, then checkpoint what they did.
				err := o.drainInput(ctx)
				if err == nil {
					err = o.checkpoint(ctx, true)
				}
				o.closeWriters()
				c.reply <- err
				return
			case ctlAbandon:
				_ = o.waitSave()
				o.closeWriters()
				c.reply <- nil
				return
			}
		case <-ctx.Done():
			_ = o.waitSave()
			o.closeWriters()
			return
		}
	}
}

func (o *owner) drainInput(ctx context.Context) error {
	for {
		select {
		case batch := <-o.in:
			if err := o.apply(ctx, batch); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// apply runs one fetched batch through decode and state.
func (o *owner) apply(ctx context.Context, batch []*kgo.Record) (err error) {
	start := time.Now()
	m := o.w.metrics
	var bad, late int
	defer func() {
		// A panic while handling a record is a bug, but it must not take the process down
		// with every other partition, nor loop: it fails this partition like any error, at
		// this record, and the poison guard takes over if it happens again and again.
		if r := recover(); r != nil {
			o.log.Error("BUG: panic while handling a record", "offset", o.handling, "phase", o.phase, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("partition %s: BUG: panic at offset %d (%s): %v", o.key, o.handling, o.phase, r)
		}
	}()
	data := 0
	for _, kr := range batch {
		if kr.Offset < o.nextOffset {
			continue // before the checkpoint (a fetch that raced the seek)
		}
		if kr.Attrs.IsControl() {
			// A transaction's commit or abort marker: nothing to apply, but the position moves
			// past it, so that a partition whose log ends with one is seen to be caught up.
			o.nextOffset = kr.Offset + 1
			continue
		}
		data++
		o.curOffset, o.curRecord = kr.Offset, kr
		o.handling, o.phase = kr.Offset, phaseApply
		passedPoison := false
		if p := o.poison; p != nil && kr.Offset == p.Offset {
			skip, err := o.handlePoison(ctx, kr)
			if err != nil {
				return err
			}
			passedPoison = true
			if skip {
				bad++
				o.nextOffset = kr.Offset + 1
				o.sinceCkpt++
				// Checkpoint past it at once: the manifest forgets the failure, and a record
				// right after it that fails too starts its own count from here, instead of
				// the restart replaying into this one again with its count reset.
				if err := o.checkpoint(ctx, true); err != nil {
					return err
				}
				continue
			}
		}
		var reason record.Reason
		var detail string
		if o.proj != nil {
			var err error
			if reason, detail, err = o.applyPartial(kr.Value); err != nil {
				return err
			}
		} else if err := o.dec.Decode(kr.Value, kr.Timestamp.UnixMilli(), o.rec); err != nil {
			reason, detail = record.ReasonOf(err), err.Error()
			if reason == "" {
				reason = record.ReasonMalformed
			}
		} else if o.partitionedBy != nil && !record.IsCanonicalKey(kr.Key, o.rec.Key, o.partitionedBy) {
			// Applying it would put its series on a partition the declaration says it is not
			// on: two partitions would each write the series' rows, one overwriting the other.
			reason = record.ReasonMisKeyed
			detail = fmt.Sprintf("Kafka key %q is not %q, the canonical key of partitioned_by %v: the producer breaks the declared partitioning",
				truncate(kr.Key, 64), truncate(record.AppendCanonicalKey(nil, o.rec.Key, o.partitionedBy), 64), o.w.cfg.Spec.Input.PartitionedBy)
			o.setStat(func(s *PartitionStatus) { s.MisKeyed++ })
		} else if !o.store.Apply(o.rec) {
			reason = record.ReasonLate
			detail = fmt.Sprintf("event time %d is behind the watermark %d", o.rec.Time, o.store.Watermark())
		}
		if reason != "" {
			if reason == record.ReasonLate {
				late++
			} else {
				bad++
			}
			if err := o.reject(ctx, kr, reason, detail); err != nil {
				return err
			}
		}
		if o.emitErr != nil {
			return o.emitErr
		}
		o.guardEmit = false
		o.nextOffset = kr.Offset + 1
		o.sinceCkpt++
		if passedPoison {
			if err := o.checkpoint(ctx, true); err != nil {
				return err
			}
		}
	}
	o.handling = -1
	busy := time.Since(start)
	m.recordsIn(o.key.Partition, data, busy)
	o.w.totalRecords.Add(int64(data))
	o.w.totalDead.Add(int64(bad + late))
	o.w.busyNanos.Add(int64(busy))
	st := o.store.Stats()
	defer func() { o.sourcesMoved = false }()
	o.setStat(func(s *PartitionStatus) {
		s.NextOffset = o.nextOffset
		s.Series, s.Slots, s.StateBytes = st.Series, st.Slots, st.Bytes
		s.Watermark = st.Watermark
		if o.sourcesMoved {
			s.WaitingFor = o.sources.Waiting()
		}
		s.Records += int64(data)
		s.BusySeconds += busy.Seconds()
		s.DeadLettered += int64(bad + late)
	})
	m.state(o.key.Partition, st)
	return nil
}

// Phases of handling a record, as checkpoint.Failure records them.
const (
	phaseApply = "apply"
	phaseEmit  = "emit"
)

// handlePoison deals with the record that failed PoisonAfter owners in a row. A record that
// failed while being decoded or aggregated is dead-lettered as poison and skipped (skip is
// true). One that failed while writing the windows it closed is applied, with those windows
// written guarded: a sink that fails on them gets their rows dead-lettered instead.
func (o *owner) handlePoison(ctx context.Context, kr *kgo.Record) (skip bool, err error) {
	p := o.poison
	o.poison = nil
	if p.Phase == phaseEmit {
		o.log.Error("POISON RECORD: writing the windows this record closes failed repeatedly; they are written guarded",
			"offset", kr.Offset, "failures", p.Count, "err", p.Error)
		o.guardEmit = true
		return false, nil
	}
	o.log.Error("POISON RECORD: dead-lettered without being applied", "offset", kr.Offset, "failures", p.Count, "err", p.Error)
	return true, o.reject(ctx, kr, record.ReasonPoison, fmt.Sprintf("failed %d times at this offset: %s", p.Count, p.Error))
}

// applyPartial merges one partial record, or takes in a source's watermark marker; it returns
// why the record is dead-lettered, if it is, or an error that fails the partition.
func (o *owner) applyPartial(v []byte) (record.Reason, string, error) {
	if partial.IsMarker(v) {
		m, err := partial.ParseMarker(v)
		if err != nil {
			return record.ReasonBadState, err.Error(), nil
		}
		o.sources.Observe(m)
		o.sourcesMoved = true // the status's list of sources waited for is redone once a batch
		if wm, ok := o.sources.Min(); ok {
			o.store.AdvanceWatermark(wm)
		}
		return "", "", nil
	}
	p := &o.part
	if err := partial.Parse(v, p); err != nil {
		return record.ReasonBadState, err.Error(), nil
	}
	if err := partial.CheckLayout(p, o.w.layout); err != nil {
		b := o.bridges[p.Fingerprint]
		if b == nil && slices.Contains(o.superseded, p.Fingerprint) {
			o.logBadPartial(err)
			return record.ReasonBadState, fmt.Sprintf("a partial of a revision of the spec that an incompatible change replaced: %v", err), nil
		}
		if b == nil && o.w.cfg.Stage == 2 {
			// The first stage runs this very spec: a partial of another layout was written
			// under a revision this worker has not loaded yet. Failing restarts the worker,
			// which loads it; a partial that is really bad fails three owners in a row and is
			// dead-lettered as poison.
			return "", "", fmt.Errorf("%w: a partial of another revision of the spec (%v); restart to load it", ErrStaleSpec, err)
		}
		if b == nil {
			o.logBadPartial(err)
			return record.ReasonBadState, err.Error(), nil
		}
		if o.converted, err = b.Convert(o.converted[:0], p.State, p.Start); err != nil {
			return record.ReasonBadState, fmt.Sprintf("partial of an earlier revision of the spec: %v", err), nil
		}
		p.State = o.converted
	}
	var err error
	if o.parts, err = o.proj.Key(p, o.parts[:0]); err != nil {
		o.logBadPartial(err)
		return record.ReasonBadState, err.Error(), nil
	}
	ok, err := o.store.ApplyPartial(o.parts, p.Start, p.Size, p.State)
	switch {
	case err != nil:
		if errors.Is(err, state.ErrPartialShape) {
			o.logBadPartial(err)
		}
		return record.ReasonBadState, err.Error(), nil
	case !ok:
		return record.ReasonLate, fmt.Sprintf("partial window start %d is behind the watermark %d", p.Start, o.store.Watermark()), nil
	}
	return "", "", nil
}

// readerState is what a partition reading partials keeps in its checkpoint besides its state:
// its sources' watermarks, and the earlier revisions of its spec whose partials it converts
// (see state.Bridge), newest last.
type readerState struct {
	Watermarks *partial.Watermarks `json:"watermarks"`
	Previous   []string            `json:"previous_specs,omitempty"`
	// Superseded are the layout fingerprints of revisions an incompatible change replaced.
	Superseded []uint64 `json:"superseded_layouts,omitempty"`
}

// decodeReaderState decodes a checkpoint's reader state, in either of its forms.
func decodeReaderState(b []byte) (readerState, error) {
	rs := readerState{Watermarks: partial.NewWatermarks()}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return rs, fmt.Errorf("the checkpoint's reader state: %w", err)
	}
	if _, ok := probe["watermarks"]; ok {
		if err := json.Unmarshal(b, &rs); err != nil {
			return rs, fmt.Errorf("the checkpoint's reader state: %w", err)
		}
	} else if err := rs.Watermarks.UnmarshalJSON(b); err != nil { // the first form: the watermarks alone
		return rs, fmt.Errorf("the checkpoint's reader state: %w", err)
	}
	return rs, nil
}

// keptRevisions bounds how many earlier revisions a reader converts partials of: partials
// older than a few spec changes have long been read.
const keptRevisions = 3

// restoreReader restores a partials reader's watermarks and earlier revisions from its
// checkpoint, and adds the revision a spec change just took over from, when it migrated in
// place: the partials that revision's writers committed are still to be read.
func (o *owner) restoreReader(cp checkpoint.Checkpoint, switched *switchover) error {
	if len(cp.Sources) > 0 {
		rs, err := decodeReaderState(cp.Sources)
		if err != nil {
			return err
		}
		o.sources, o.previous, o.superseded = rs.Watermarks, rs.Previous, rs.Superseded
	}
	if switched != nil && switched.plan.Action != spec.ActionMigrate && switched.plan.Action != spec.ActionNone {
		// Partials of the revision an incompatible change replaced cannot be converted: they
		// are dead-lettered rather than make the stage restart for a revision it will not load.
		if lo, err := agg.LayoutOf(switched.old); err == nil && lo.Fingerprint() != o.w.layout.Fingerprint() &&
			!slices.Contains(o.superseded, lo.Fingerprint()) {
			o.superseded = append(o.superseded, lo.Fingerprint())
			o.superseded = o.superseded[max(0, len(o.superseded)-keptRevisions):]
		}
	}
	if switched != nil && switched.cp.Spec != "" && (switched.plan.Action == spec.ActionMigrate || switched.plan.Action == spec.ActionNone) {
		o.previous = append(o.previous, switched.cp.Spec)
		o.previous = o.previous[max(0, len(o.previous)-keptRevisions):]
	}
	o.sourcesMoved = true // shown in the status from the first batch on
	o.bridges = map[uint64]*state.Bridge{}
	for _, doc := range o.previous {
		old, err := spec.Parse([]byte(doc))
		if err != nil {
			continue
		}
		b, err := state.NewBridge(old, o.w.cfg.Spec)
		if err != nil || b.Fingerprint() == o.w.layout.Fingerprint() {
			continue // not convertible (a later change rebuilt), or nothing to convert
		}
		o.bridges[b.Fingerprint()] = b
	}
	return nil
}

// logBadPartial says loudly, once a minute, that partials do not fit this spec: that is a
// pipeline wiring mistake (specs of two levels that disagree), not a stray bad record.
func (o *owner) logBadPartial(err error) {
	if time.Since(o.badLogged) < time.Minute {
		return
	}
	o.badLogged = time.Now()
	o.log.Error("partials do not fit this spec; they go to the dead-letter topic", "err", err)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// reject counts, logs (rate-limited) and dead-letters one input record.
func (o *owner) reject(ctx context.Context, kr *kgo.Record, reason record.Reason, detail string) error {
	o.w.metrics.deadLettered(string(reason))
	o.w.deadLetters.note(o.log, string(reason), string(kr.Value[:min(len(kr.Value), previewBytes+1)]), kr.Partition, kr.Offset, detail)
	if o.outbox == nil {
		return nil
	}
	return o.outbox.DeadLetter(ctx, kr, string(reason), detail)
}

// emitWindow is the state store's callback for a closed window.
func (o *owner) emitWindow(sw *state.Window) {
	if o.emitErr != nil {
		return
	}
	// From here on a failure is the window's: copying it, encoding its states, writing it.
	// Not reset by a defer: a panic below must leave the phase at emit for the recover in
	// apply to record.
	o.phase = phaseEmit
	win, err := o.copyWindow(sw)
	if err != nil {
		o.emitErr = fmt.Errorf("partition %s: %w", o.key, err)
		return
	}
	if win == nil {
		o.phase = phaseApply
		return // a poison window that could not even be copied: dead-lettered
	}
	o.nextSeq++
	ctx := o.w.runCtx
	for i, wr := range o.writers {
		if o.guardEmit {
			if err := o.guardedWrite(ctx, i, wr, win); err != nil {
				o.emitErr = err
				return
			}
			continue
		}
		if err := wr.Write(ctx, win); err != nil {
			o.w.metrics.sinkFailed(o.names[i])
			o.w.totalSinkErrors.Add(1)
			o.emitErr = fmt.Errorf("partition %s: sink %s: %w", o.key, o.names[i], err)
			return
		}
		o.w.metrics.sinkRowsOut(o.names[i], len(win.Rows))
	}
	o.w.metrics.windowsEmitted(len(win.Rows))
	o.setStat(func(s *PartitionStatus) { s.WindowsEmitted++ })
	o.phase = phaseApply
}

// copyWindow copies a closed window out of the store, with final values and/or encoded states
// as the outputs need. For a window closed by a poison record of phase emit, a failure to copy
// it (a panic included) dead-letters the record with the window named and returns no window,
// so the window is left out of every output rather than failing the partition once more.
func (o *owner) copyWindow(sw *state.Window) (win *emit.Window, err error) {
	if o.guardEmit {
		defer func() {
			if r := recover(); r != nil {
				win, err = nil, nil
				detail := fmt.Sprintf("closing window %d+%d (%d series) failed again: %v", sw.Start, sw.Size, sw.Len(), r)
				o.log.Error("POISON RECORD: a window it closes cannot be copied; the record is dead-lettered and the window left out", "detail", detail)
				err = o.reject(o.w.runCtx, o.curRecord, record.ReasonPoison, detail)
			}
		}()
	}
	if o.w.values {
		win = emit.Copy(sw, o.key.Spec, o.key.Topic, o.key.Partition, o.w.cfg.Spec.Key, o.nextSeq, o.curOffset+1)
	} else {
		win = emit.CopyKeys(sw, o.key.Spec, o.key.Topic, o.key.Partition, o.w.cfg.Spec.Key, o.nextSeq, o.curOffset+1)
	}
	if o.w.states {
		if err := win.AttachStates(sw); err != nil {
			if o.guardEmit {
				panic(err) // handled above like any failure to copy a poison window
			}
			return nil, err
		}
	}
	if o.written != nil {
		keep := 0
		for i := range win.Rows {
			if o.written(sw.Size, sw.End(), sw.Key(i)) {
				continue
			}
			win.Rows[keep] = win.Rows[i]
			if win.States != nil {
				win.States[keep] = win.States[i]
			}
			keep++
		}
		win.Rows = win.Rows[:keep]
		if win.States != nil {
			win.States = win.States[:keep]
		}
	}
	return win, nil
}

// guardedWrite writes a window closed by a poison record: a sink that fails or panics on it
// gets the window's rows dead-lettered instead. Only the outbox failing is an error.
func (o *owner) guardedWrite(ctx context.Context, i int, wr sink.Writer, win *emit.Window) (err error) {
	if _, outbox := wr.(deadLetterer); outbox {
		return wr.Write(ctx, win)
	}
	werr := func() (werr error) {
		defer func() {
			if r := recover(); r != nil {
				werr = fmt.Errorf("panic: %v", r)
			}
		}()
		return wr.Write(ctx, win)
	}()
	if werr == nil {
		return nil
	}
	o.log.Error("POISON RECORD: a sink failed on a window it closed; its rows are dead-lettered", "sink", o.names[i], "err", werr)
	for row := range win.Rows {
		rej := sink.Rejection{Sink: o.names[i], Window: win, Row: row, Err: fmt.Errorf("poison: %w", werr)}
		o.w.metrics.deadLettered(sink.RejectedRow)
		o.w.totalDead.Add(1)
		o.w.deadLetters.note(o.log, sink.RejectedRow, fmt.Sprintf("window %d+%d row %v", win.Start, win.Size, win.Rows[row].Key),
			o.key.Partition, win.Offset, rej.Err.Error())
		if o.outbox != nil {
			if err := o.outbox.DeadLetterRow(ctx, rej); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkpoint makes everything emitted durable in the sinks and snapshots the state, then saves
// snapshot and offset. The save (the upload, the long part for a big state) runs in the
// background while the partition goes on consuming; only the sink flush and the in-memory
// snapshot pause it. One save is in flight at a time: the next checkpoint first waits for it.
// wait makes this call return only once the checkpoint is durable (drain, revoke, admin).
//
// Saving in the background is safe because nothing depends on the new checkpoint until it
// lands: the sinks already hold its output (the Kafka outbox committed it with its marker), so
// if the save never lands, the next owner restores the previous checkpoint and its replay skips
// or overwrites what the sinks hold.
func (o *owner) checkpoint(ctx context.Context, wait bool) error {
	if err := o.waitSave(); err != nil {
		return err
	}
	if o.nextOffset < 0 {
		return nil // nothing consumed yet: nothing to checkpoint
	}
	if o.nextOffset == o.ckptOffset && o.nextSeq == o.ckptSeq {
		return nil // nothing applied or emitted since: the last checkpoint says it all
	}
	start := time.Now()
	if o.outbox != nil {
		o.outbox.Position(o.nextSeq, o.nextOffset)
		// Readers of partial outputs may close a window once every source has passed its end;
		// not while windows the watermark passed are still to be written.
		if wm := o.store.Watermark(); wm != math.MinInt64 && !o.store.Pending() {
			o.outbox.Watermark(wm)
		}
	}
	progress := map[string]string{}
	// The Kafka outbox commits last: if an idempotent sink fails first, the transaction still
	// aborts and the replay redoes both.
	for _, outbox := range []bool{false, true} {
		if outbox {
			// Rows the other sinks refused for good join this checkpoint's transaction.
			if err := o.deadLetterRejections(ctx); err != nil {
				return err
			}
		}
		for i, wr := range o.writers {
			if _, ok := wr.(deadLetterer); ok != outbox {
				continue
			}
			fstart := time.Now()
			p, err := wr.Flush(ctx)
			if err != nil {
				o.w.metrics.sinkFailed(o.names[i])
				o.w.totalSinkErrors.Add(1)
				return fmt.Errorf("partition %s: flush %s: %w", o.key, o.names[i], err)
			}
			o.w.metrics.sinkFlushed(o.names[i], time.Since(fstart))
			if p != "" {
				progress[o.names[i]] = p
			}
		}
	}
	kind := o.checkpointKind(wait)
	// Two snapshot buffers: one may still be uploading while the next fills.
	buf := o.snapBufs[o.snapNext][:0]
	// Size the buffer once for the whole snapshot: growing a gigabyte by doubling would copy
	// it again and again while the partition waits, and hold up to twice the state at the
	// peak. A delta is small; its buffer grows.
	want := o.chain.lastDelta * 2
	if kind != checkpoint.Delta {
		want = o.store.EncodedSize()
		want += want / 50
	}
	if cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	var err error
	var parent uint32
	switch kind {
	case checkpoint.Full:
		buf, err = o.store.AppendSnapshot(buf, o.fp)
	case checkpoint.Base:
		buf, err = o.store.AppendBase(buf, o.fp)
	case checkpoint.Delta:
		parent = o.store.ChainLink()
		buf, err = o.store.AppendDelta(buf, o.fp)
	}
	if err != nil {
		return fmt.Errorf("partition %s: snapshot: %w", o.key, err)
	}
	o.snapBufs[o.snapNext] = buf
	o.snapNext ^= 1
	switch kind {
	case checkpoint.Delta:
		o.chain.deltas++
		o.chain.deltaBytes += int64(len(buf))
		o.chain.lastDelta = len(buf)
	case checkpoint.Base:
		o.chain = chainState{chained: true, baseBytes: int64(len(buf)), baseAt: time.Now()}
	}
	pause := time.Since(start)
	cp := checkpoint.Checkpoint{Offset: o.nextOffset, EmitSeq: o.nextSeq, Sinks: progress, State: buf, Kind: kind, Parent: parent}
	if o.sources != nil {
		if cp.Sources, err = json.Marshal(readerState{Watermarks: o.sources, Previous: o.previous, Superseded: o.superseded}); err != nil {
			return fmt.Errorf("partition %s: source watermarks: %w", o.key, err)
		}
	}
	o.sinceCkpt, o.lastCkpt = 0, time.Now()
	o.ckptOffset, o.ckptSeq = o.nextOffset, o.nextSeq // a failed save fails the partition
	done := make(chan error, 1)
	o.saving = done
	go func() { done <- o.save(ctx, cp, start, pause) }()
	if wait {
		return o.waitSave()
	}
	return nil
}

// checkpointKind picks what the next checkpoint writes: a full snapshot when the store is not
// incremental; else a delta while the chain rule allows one, or a base. A checkpoint someone
// waits for (a drain, a revocation, the admin API) writes a delta whenever the chain allows at
// all, since its time is the waiter's: the base the rule asks for is left to the next periodic
// checkpoint, which writes it in the background, up to twice the rule's limits.
func (o *owner) checkpointKind(wait bool) checkpoint.Kind {
	rule, on := o.w.cfg.Checkpoints.Incremental()
	if !on {
		return checkpoint.Full
	}
	c := o.chain
	if !c.chained || !o.store.HasChain() {
		return checkpoint.Base
	}
	if wait {
		rule.BaseRatio, rule.MaxDeltas, rule.BaseInterval = 2*rule.BaseRatio, 2*rule.MaxDeltas, 2*rule.BaseInterval
	}
	if rule.NeedBase(c.baseBytes, c.deltaBytes, c.deltas, c.baseAt, time.Now()) {
		return checkpoint.Base
	}
	return checkpoint.Delta
}

// deadLetterRejections dead-letters the rows that sinks refused for good since the last
// checkpoint: one row never stops its partition.
func (o *owner) deadLetterRejections(ctx context.Context) error {
	for i, wr := range o.writers {
		rj, ok := wr.(sink.Rejecter)
		if !ok {
			continue
		}
		for _, rej := range rj.TakeRejections() {
			o.w.metrics.deadLettered(sink.RejectedRow)
			o.w.totalDead.Add(1)
			o.setStat(func(s *PartitionStatus) { s.RowsRejected++ })
			o.w.deadLetters.note(o.log, sink.RejectedRow, fmt.Sprintf("window %d+%d row %v", rej.Window.Start, rej.Window.Size, rej.Window.Rows[rej.Row].Key),
				o.key.Partition, rej.Window.Offset, fmt.Sprintf("%s: %v", o.names[i], rej.Err))
			if o.outbox == nil {
				continue
			}
			if err := o.outbox.DeadLetterRow(ctx, rej); err != nil {
				return fmt.Errorf("partition %s: dead-letter a row %s refused: %w", o.key, o.names[i], err)
			}
		}
	}
	return nil
}

// save uploads a checkpoint and, once it is durable, records it and mirrors its offset.
func (o *owner) save(ctx context.Context, cp checkpoint.Checkpoint, start time.Time, pause time.Duration) error {
	e, err := o.lease.Save(ctx, cp)
	if err != nil {
		return err
	}
	dur := time.Since(start)
	o.w.metrics.checkpointed(o.key.Partition, dur, e.Size)
	o.setStat(func(s *PartitionStatus) {
		s.LastCheckpoint = e.Created
		s.LastCheckpointOffset = e.Offset
		s.LastCheckpointBytes = e.Size
		s.LastCheckpointSeconds = dur.Seconds()
		s.LastCheckpointPauseSeconds = pause.Seconds()
		s.Checkpoints++
	})
	o.log.Debug("checkpointed", "offset", e.Offset, "emit_seq", e.EmitSeq, "bytes", e.Size,
		"seconds", dur.Seconds(), "pause_seconds", pause.Seconds())
	o.w.mirrorOffset(o.key.Partition, cp.Offset)
	return nil
}

// waitSave waits for the save in flight, if any, and returns its error.
func (o *owner) waitSave() error {
	if o.saving == nil {
		return nil
	}
	err := <-o.saving
	o.saving = nil
	// Shrink snapshot buffers that a burst made huge. With incremental checkpoints a base's
	// buffer, the size of the state, would otherwise sit idle until the next base.
	_, incremental := o.w.cfg.Checkpoints.Incremental()
	for i, b := range o.snapBufs {
		if cap(b) > 4*len(b)+(64<<20) || (incremental && cap(b) > 4*o.chain.lastDelta+(64<<20)) {
			o.snapBufs[i] = nil
		}
	}
	return err
}

func (o *owner) fail(err error) {
	o.closeWriters()
	if errors.Is(err, checkpoint.ErrFenced) {
		o.log.Warn("partition fenced by a newer owner; dropping it", "err", err)
		return
	}
	o.recordFailure(err)
	o.log.Error("partition failed; the worker stops so it can be restarted from the last checkpoint", "err", err)
	o.w.fail(err)
}

// recordFailure notes a failure at a record in the partition's manifest, where the owners after
// this one see it: PoisonAfter failures in a row at one offset make it a poison record. Transient
// failures (a sink or a broker away) are not the record's fault and are not counted.
func (o *owner) recordFailure(err error) {
	if o.handling < 0 || o.lease == nil || sink.KnownTransient(err) {
		return
	}
	_ = o.waitSave() // the lease is not shared with a save still in flight
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, rerr := o.lease.RecordFailure(ctx, o.handling, o.phase, err)
	if rerr != nil {
		o.log.Warn("could not record the failure at its record", "offset", o.handling, "err", rerr)
		return
	}
	o.log.Error("partition failed at one record", "offset", f.Offset, "phase", f.Phase, "failures_in_a_row", f.Count,
		"poison_after", o.w.cfg.PoisonAfter)
}

func (o *owner) closeWriters() {
	for _, wr := range o.writers {
		_ = wr.Close()
	}
	o.writers = nil
}

func (o *owner) setStat(f func(*PartitionStatus)) {
	o.mu.Lock()
	f(&o.stat)
	o.mu.Unlock()
}

// request sends a control to the owner and waits for its answer.
func (o *owner) request(ctx context.Context, kind controlKind) error {
	reply := make(chan error, 1)
	select {
	case o.ctl <- control{kind: kind, reply: reply}:
	case <-o.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-o.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
