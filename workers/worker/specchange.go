package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
)

// Errors of a spec change, documented where they surface.
var (
	// ErrStaleSpec fails a partition whose checkpoint was written by a newer revision of the
	// spec than the worker runs: the worker has not seen the change yet. A restart loads the
	// newer revision, so the worker exits to be restarted (never touching the newer state).
	ErrStaleSpec = errors.New("the partition's checkpoint was written by a newer revision of the spec")
	// ErrChangeRefused wraps state.ErrMismatch (the worker halts: a restart cannot fix it) when
	// the checkpoints cannot be carried over to the spec at hand: a backfill whose records
	// retention removed, a registry holding an older revision than the checkpoints, a
	// checkpoint written before specs had versions under a changed layout.
	ErrChangeRefused = fmt.Errorf("%w: the spec change cannot be carried out", state.ErrMismatch)
)

// processStart is when this process started: before it loaded its spec. A checkpoint of a
// newer revision written before that means the spec source went back to an older revision.
var processStart = time.Now()

// switchover is what restore found: a checkpoint of an earlier revision of the spec, and how
// the partition takes over from it.
type switchover struct {
	plan    spec.Plan
	old     *spec.Spec
	cp      checkpoint.Checkpoint
	from    int64 // RebuildStart, for ActionFromOffsets
	rebuild bool  // read the records before cp.Offset into the new windows once sinks are open
}

// specDocument is the worker's spec as checkpoints record it.
func (w *Worker) specDocument() string {
	y, err := spec.Marshal(w.cfg.Spec)
	if err != nil {
		return "" // unreachable for a parsed spec; then checkpoints record no document
	}
	return string(y)
}

// restoreSpec decides, from the newest link of a chain (what its manifest entry says), which
// spec its state is read with: the worker's own (prev nil), or the earlier revision that
// wrote it (prev, its spec and layout), to be carried over by takeOver once restored. It
// refuses what a restart cannot fix (ErrChangeRefused) and a checkpoint of a newer revision
// than the worker runs (ErrStaleSpec: a restart loads it).
func (o *owner) restoreSpec(tip checkpoint.Checkpoint) (s *spec.Spec, layout *agg.Layout, prev *spec.Spec, err error) {
	w := o.w
	cur := w.cfg.Spec
	if tip.Spec == "" || tip.Spec == w.specDocument() {
		return cur, w.layout, nil, nil
	}
	if tip.SpecVersion > cur.Version {
		if tip.Created.Before(processStart) {
			return nil, nil, nil, fmt.Errorf("%w: the checkpoint at offset %d was written by spec version %d, and the spec this worker loaded since is version %d: "+
				"the spec source went back to an older revision. Apply the spec with a version above %d, or retire the checkpoints (liveagg checkpoint retire)",
				ErrChangeRefused, tip.Offset, tip.SpecVersion, cur.Version, tip.SpecVersion)
		}
		return nil, nil, nil, fmt.Errorf("%w (version %d; this worker runs version %d): restart to load it", ErrStaleSpec, tip.SpecVersion, cur.Version)
	}
	old, err := spec.Parse([]byte(tip.Spec))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: the spec recorded in the checkpoint at offset %d does not parse: %v", ErrChangeRefused, tip.Offset, err)
	}
	lo, err := agg.LayoutOf(old)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: the spec recorded in the checkpoint at offset %d: %v", ErrChangeRefused, tip.Offset, err)
	}
	if state.Fingerprint(old, lo) == w.fp && !leftSecondStage(old, cur) {
		// Nothing the state is made of changed (lateness, outputs, names): it restores as is.
		// Not when two stages became one: the second stage's unwritten windows are rebuilt.
		o.log.Info("spec changed; the checkpoint restores unchanged", "from_version", tip.SpecVersion, "to_version", cur.Version,
			"plan", spec.Diff(old, cur).Summary())
		return cur, w.layout, nil, nil
	}
	return old, lo, old, nil
}

// takeOver carries over the state restored from a checkpoint of an earlier revision, old, to
// the spec at hand, and returns the switch to finish once the sinks are open, with o.store
// set to the new version's state.
func (o *owner) takeOver(ctx context.Context, cp checkpoint.Checkpoint, old *spec.Spec, src *state.Store, emitFn state.EmitFunc) (*switchover, error) {
	w := o.w
	cur := w.cfg.Spec
	sw := &switchover{plan: spec.Diff(old, cur), old: old, cp: cp}
	if leftSecondStage(old, cur) && sw.plan.Action != spec.ActionBackfill {
		// Two stages became one: whatever else changed (the stages' own specs may differ in
		// nothing the state is made of), the windows the second stage had not written are
		// rebuilt, as the user's plan says.
		sw.plan.Action = spec.ActionFromOffsets
	}
	if !slices.Equal(old.Key, cur.Key) && (w.cfg.Stage != 0 || leftSecondStage(old, cur)) {
		// What spec.Plan.Refuse refuses at plan time, for a spec stored without a plan.
		return nil, fmt.Errorf("%w: the key of a spec run in two stages cannot change in place (%v -> %v): give the spec a new name, "+
			"or declare its input's partitioning within the new key first", ErrChangeRefused, old.Key, cur.Key)
	}
	o.log.Info("SPEC CHANGED: taking over from the checkpoint of an earlier revision", "from_version", cp.SpecVersion, "to_version", cur.Version,
		"action", string(sw.plan.Action), "plan", sw.plan.Summary(), "checkpoint_offset", cp.Offset)
	switch sw.plan.Action {
	case spec.ActionNone, spec.ActionMigrate:
		st, err := state.MigrateStore(src, old, cur, emitFn)
		if err != nil {
			return nil, fmt.Errorf("%w: migrate the checkpoint at offset %d: %v", ErrChangeRefused, cp.Offset, err)
		}
		o.store, o.nextOffset = st, cp.Offset
	case spec.ActionFromOffsets:
		wm := src.Watermark()
		from := wm
		continued := false
		switch {
		case wm == state.NoTime:
		case leftSecondStage(old, cur):
			var err error
			if from, err = o.leaveSecondStage(ctx, old, cur, wm); err != nil {
				return nil, err
			}
		default:
			var err error
			if from, continued, err = o.partialsFrom(ctx, old, cur, wm); err != nil {
				return nil, err
			}
		}
		if continued {
			sw.from = from
		} else {
			sw.from = state.RebuildStart(old.Windows, cur.Windows, from)
		}
		sw.rebuild = true
		o.store, o.nextOffset = state.NewFrom(cur, w.layout, notAgain(old, cur, wm, emitFn), sw.from), cp.Offset
	case spec.ActionBackfill:
		if writesPartials(old) || writesPartials(cur) {
			return nil, fmt.Errorf("%w: on_incompatible_change: backfill, but the spec's partials are merged by a next level or a second stage, "+
				"which would merge the recomputed partials with the ones already written and count every record twice. "+
				"Apply the change with on_incompatible_change: from_offsets", ErrChangeRefused)
		}
		start, _, err := o.w.logBounds(ctx, o.w.cl, o.key.Partition)
		if err != nil {
			return nil, fmt.Errorf("backfill: list the log bounds: %w", err)
		}
		if start > 0 {
			return nil, fmt.Errorf("%w: on_incompatible_change: backfill, but partition %d's log starts at offset %d: the records the old revision read are gone. "+
				"Apply the change with on_incompatible_change: from_offsets", ErrChangeRefused, o.key.Partition, start)
		}
		wm := src.Watermark()
		o.store, o.nextOffset = state.New(cur, w.layout, notAgain(old, cur, wm, emitFn)), -1
	default:
		return nil, fmt.Errorf("%w: %s", ErrChangeRefused, sw.plan.Summary())
	}
	return sw, nil
}

// notAgain wraps a new version's emit so that a window of an old size that the old version had
// closed at the switch (its watermark then was wm) is not written again when the key did not
// change: it is in the outputs already, written from every record it holds, and a Kafka output
// would carry it twice. With partial outputs it is not written again whatever the key: a next
// level would merge the old and the new partial of the window, counting its records twice.
func notAgain(old, cur *spec.Spec, wm int64, emit state.EmitFunc) state.EmitFunc {
	partials := slices.ContainsFunc(cur.Outputs, func(o spec.Output) bool { return o.Partial })
	oldPartials := slices.ContainsFunc(old.Outputs, func(o spec.Output) bool { return o.Partial })
	if partials != oldPartials {
		// One stage became two, or two one: the old version wrote final rows where the new one
		// writes partials (or the reverse), so nothing the new one writes is in the outputs yet.
		return emit
	}
	if !slices.Equal(old.Key, cur.Key) && !partials {
		return emit
	}
	closed := map[int64]bool{}
	for _, d := range old.Windows {
		closed[d.Millis()] = true
	}
	return func(win *state.Window) {
		if !closed[win.Size] || win.End() > wm {
			emit(win)
		}
	}
}

// rebuild reads the records between the rebuild's start and the old version's checkpoint into
// the new version's first windows: records whose event time is before the new version's start
// were the old version's (counted or dead-lettered by it), and are passed over silently, like
// records that do not decode, which the old version dead-lettered already. Windows that close
// on the way are written as usual.
func (o *owner) rebuild(ctx context.Context, sw *switchover) error {
	if !sw.rebuild || sw.from == state.NoTime || sw.cp.Offset <= 0 {
		return nil
	}
	w := o.w
	topic := w.cfg.Spec.Input.Topic
	since := sw.from - w.cfg.Spec.Input.MaxFutureSkew.Millis()
	adm := kadm.NewClient(w.cl)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	offs, err := adm.ListOffsetsAfterMilli(lctx, since, topic)
	cancel()
	if err != nil {
		return fmt.Errorf("rebuild: find the offset of time %d: %w", since, err)
	}
	first := sw.cp.Offset
	if lo, ok := offs.Lookup(topic, o.key.Partition); ok && lo.Err == nil && lo.Offset >= 0 {
		first = min(first, lo.Offset)
	}
	if start, _, err := w.logBounds(ctx, w.cl, o.key.Partition); err == nil && start > first {
		o.log.Error("REBUILD INCOMPLETE: retention removed records the new version's first windows need; those windows miss them",
			"needed_from", first, "log_start", start)
		first = start
	}
	if first >= sw.cp.Offset {
		return nil
	}
	o.log.Info("rebuilding the new version's first windows from the log", "from_offset", first, "to_offset", sw.cp.Offset, "windows_from", time.UnixMilli(sw.from).UTC())
	cl, err := kgo.NewClient(append(w.cfg.KafkaOpts[:len(w.cfg.KafkaOpts):len(w.cfg.KafkaOpts)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {o.key.Partition: kgo.NewOffset().At(first)}}),
		// The checkpoint's offset may sit just past a transaction marker, which owners pass:
		// the rebuild sees markers too, or it would wait for a record at that offset.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, fe := range fs.Errors() {
			return fmt.Errorf("rebuild: fetch partition %d: %w", fe.Partition, fe.Err)
		}
		done := false
		fs.EachRecord(func(kr *kgo.Record) {
			if done || kr.Offset >= sw.cp.Offset {
				done = true
				return
			}
			if kr.Attrs.IsControl() {
				done = kr.Offset+1 >= sw.cp.Offset
				return
			}
			o.curOffset, o.curRecord = kr.Offset, kr
			if o.proj != nil {
				_, _, _ = o.applyPartial(kr.Value) // dead letters and stale partials were the old version's
			} else if o.dec.Decode(kr.Value, kr.Timestamp.UnixMilli(), o.rec) == nil &&
				(o.partitionedBy == nil || record.IsCanonicalKey(kr.Key, o.rec.Key, o.partitionedBy)) {
				o.store.Apply(o.rec)
			}
			if kr.Offset+1 >= sw.cp.Offset {
				done = true
			}
		})
		if o.emitErr != nil {
			return o.emitErr
		}
		if done {
			o.curRecord = nil
			st := o.store.Stats()
			o.log.Info("rebuilt the new version's first windows", "records_read", sw.cp.Offset-first, "records_applied", st.Records,
				"windows_closed", st.Emitted, "series", st.Series)
			return nil
		}
	}
}
