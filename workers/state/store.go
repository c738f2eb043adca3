// Package state holds one input partition's live aggregation state: for every series (a key)
// and every open event-time window of every configured size, the slot of its aggregates. It
// assigns records to tumbling windows, keeps the partition's watermark, closes each window
// exactly once when the watermark passes its end, and snapshots itself to bytes and back:
// whole (AppendSnapshot), or for incremental checkpoints as a base and deltas of what changed
// since (AppendBase, AppendDelta, RestoreChain; see delta.go).
//
// Its layout is built for hundreds of millions of slots per worker: keys are interned in an
// arena, slots live in chunked columns (no per-series objects), in-order records find their
// slot through a per-series cursor instead of a hash lookup per window, and closed windows'
// chunks and sketches are recycled. See agg for the slot itself.
//
// A Store is owned by one goroutine (the partition's owner) and is not safe for concurrent use.
// Given the same snapshot and the same records in the same order, it emits the same windows in
// the same order: that determinism is what makes replay after a crash exact.
package state

import (
	"cmp"
	"slices"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
)

// Window is one closed window of one size, handed to the emit callback. It is valid only during
// the callback: its slots are recycled when the callback returns.
type Window struct {
	// Size and Start are in milliseconds; the window is [Start, Start+Size).
	Size, Start int64
	st          *Store
	b           *bucket
}

// End is the exclusive end of the window in Unix milliseconds.
func (w *Window) End() int64 { return w.Start + w.Size }

// Len is the number of series with data in the window.
func (w *Window) Len() int { return w.b.n }

// Key returns series i's key: the key field values joined by record.KeySep. The bytes are the
// store's own; copy them to keep them.
func (w *Window) Key(i int) []byte { return w.st.keys.key(w.st.seriesAt(w.b, uint32(i))) }

// Slot returns series i's aggregation state, for partial outputs.
func (w *Window) Slot(i int) agg.Slot { return w.st.slot(w.b, uint32(i)) }

// Results appends series i's final values, in Layout.Columns order, to dst.
func (w *Window) Results(i int, dst []float64) []float64 {
	return w.st.layout.Results(w.Slot(i), dst)
}

// Layout is the slot layout of the window's store.
func (w *Window) Layout() *agg.Layout { return w.st.layout }

// EmitFunc receives each closed window, in close order. It must not keep the Window.
type EmitFunc func(*Window)

// Stats is a store's size, for metrics and autoscaling.
type Stats struct {
	Series      int   // live series
	Slots       int   // live (series, window) slots
	OpenWindows int   // open buckets, all sizes
	Bytes       int64 // memory of keys, slots and cursors (sketches estimated)
	KeyBytes    int64 // of which interned key bytes
	Watermark   int64 // ms; math.MinInt64 before the first record
	MaxTime     int64 // newest watermark time seen (event time, held to log time), ms
	Late        int64 // records rejected as late, ever
	Records     int64 // records applied, ever
	Emitted     int64 // windows emitted, ever
}

type sizeState struct {
	size    int64
	open    []*bucket // few: the windows the watermark has not passed yet
	nextSeq uint32
}

// Store is the state of one input partition.
type Store struct {
	layout *agg.Layout
	pool   *agg.Pool
	keys   *keyTable
	sizes  []sizeState
	// cursors holds, per series id, one cursor per window size side by side: a record's
	// lookups for all its windows touch one cache line.
	cursors    []cursor
	lateness   int64
	watermark  int64
	maxTime    int64
	nextClose  int64 // smallest end of any open bucket: the watermark that closes something
	emit       EmitFunc
	freeChunks []*chunk
	keyBuf     []byte
	scratch    []byte   // snapshot encoding of one sketch
	partial    agg.Slot // decoding space for ApplyPartial
	slots      int
	// counters
	late, records, emitted int64
	inc                    incremental
}

const noTime = -1 << 63

// New returns an empty store for a spec whose layout was built with agg.NewLayout. emit
// receives every closed window.
func New(s *spec.Spec, layout *agg.Layout, emit EmitFunc) *Store {
	st := &Store{
		layout:    layout,
		pool:      layout.NewPool(),
		keys:      newKeyTable(),
		lateness:  s.AllowedLateness.Millis(),
		watermark: noTime,
		maxTime:   noTime,
		nextClose: 1<<63 - 1,
		emit:      emit,
	}
	for _, w := range s.Windows {
		st.sizes = append(st.sizes, sizeState{size: w.Millis(), nextSeq: 1})
	}
	return st
}

// Layout returns the store's slot layout.
func (st *Store) Layout() *agg.Layout { return st.layout }

// Watermark is the newest watermark time seen (see Apply) minus the allowed lateness (ms).
// Records older than it are late, and every window ending at or before it has been emitted.
func (st *Store) Watermark() int64 { return st.watermark }

// Apply adds one decoded record to every window it falls in, and emits the windows its event
// time closes.
//
// A record moves the watermark by the earlier of its event time and its Kafka log time (when
// it has one). A record stamped ahead of the moment it was written (a device with a wrong
// clock, within the spec's max_future_skew) would otherwise drag the watermark with it and
// make every record after it late; held to its log time, it can only move the watermark as
// far as the log itself has gone. Both times are in the record, so a replay decides exactly
// as the first run did, and records written after their events (the normal case) are not
// affected at all. It returns false, and changes nothing but the late counter, for a late record:
// one older than the watermark. A record is thus either in all its windows or in none, so the
// windows of every size agree on which records they hold.
func (st *Store) Apply(r *record.Record) bool {
	if r.Time < st.watermark {
		st.late++
		return false
	}
	st.records++
	id := st.seriesID(r.Key)
	for si := range st.sizes {
		sz := &st.sizes[si]
		start := r.Time - mod(r.Time, sz.size)
		b := st.bucketFor(sz, start)
		pos := st.findSlot(si, b, id)
		if pos < b.clean {
			b.touch(pos)
		}
		st.layout.Update(st.slot(b, pos), r, st.pool)
	}
	t := r.Time
	if r.LogTime > 0 && r.LogTime < t {
		t = r.LogTime
	}
	if t > st.maxTime {
		st.maxTime = t
		if wm := t - st.lateness; wm > st.watermark {
			st.watermark = wm
			if wm >= st.nextClose {
				st.closeUpTo(wm)
			}
		}
	}
	return true
}

// AdvanceWatermark moves the watermark to at least wm and emits the windows it closes: for a
// partition reading partials, the minimum of its sources' watermarks; for a bounded run, the
// maximum time, to flush every window.
func (st *Store) AdvanceWatermark(wm int64) {
	st.RaiseWatermark(wm)
	st.CloseDue()
}

// RaiseWatermark moves the watermark to at least wm (as if a record of time wm plus the allowed
// lateness had been applied) without emitting the windows it closes: CloseDue does. An idle
// partition's advance is checkpointed in between, so that a restore of that checkpoint closes
// the same windows again rather than let the replay decide differently.
func (st *Store) RaiseWatermark(wm int64) {
	if wm <= st.watermark {
		return
	}
	st.watermark = wm
	if t := wm + st.lateness; wm < 1<<62 && t > st.maxTime {
		st.maxTime = t
	}
}

// CloseDue emits the windows the watermark has passed and that are still open.
func (st *Store) CloseDue() {
	if st.watermark >= st.nextClose {
		st.closeUpTo(st.watermark)
	}
}

// Closes says whether a watermark of wm would close a window that is open now.
func (st *Store) Closes(wm int64) bool { return wm >= st.nextClose }

// Pending says whether windows the watermark has passed are still open (between RaiseWatermark
// and CloseDue).
func (st *Store) Pending() bool {
	return st.watermark != noTime && st.watermark >= st.nextClose && st.nextClose != 1<<63-1
}

// Flush emits every open window, as at the end of input.
func (st *Store) Flush() { st.AdvanceWatermark(1<<63 - 1) }

// seriesID interns the record's key.
func (st *Store) seriesID(parts [][]byte) uint32 {
	buf := st.keyBuf[:0]
	for i, p := range parts {
		if i > 0 {
			buf = append(buf, record.KeySep)
		}
		buf = append(buf, p...)
	}
	st.keyBuf = buf
	id, added := st.keys.intern(buf, hashKey(buf))
	if added {
		st.resetCursors(id)
	}
	return id
}

func (st *Store) resetCursors(id uint32) {
	n := len(st.sizes)
	if end := (int(id) + 1) * n; end > len(st.cursors) {
		st.cursors = append(st.cursors, make([]cursor, end-len(st.cursors))...)
		return
	}
	clear(st.cursors[int(id)*n : (int(id)+1)*n])
}

// bucketFor returns the open bucket of sz starting at start, creating it if needed. Open
// buckets are few and the newest is the usual answer, so it scans from the end.
func (st *Store) bucketFor(sz *sizeState, start int64) *bucket {
	for i := len(sz.open) - 1; i >= 0; i-- {
		if sz.open[i].start == start {
			return sz.open[i]
		}
	}
	b := &bucket{seq: sz.nextSeq, start: start}
	sz.nextSeq++
	// Keep open sorted by start so closing takes a prefix.
	i, _ := slices.BinarySearchFunc(sz.open, start, func(b *bucket, s int64) int { return cmp.Compare(b.start, s) })
	sz.open = slices.Insert(sz.open, i, b)
	if end := start + sz.size; end < st.nextClose {
		st.nextClose = end
	}
	return b
}

// closeUpTo emits and recycles every bucket whose end is at or before wm: in the spec's window
// order, then by start, so emission order is deterministic.
func (st *Store) closeUpTo(wm int64) {
	next := int64(1<<63 - 1)
	for si := range st.sizes {
		sz := &st.sizes[si]
		n := 0
		for n < len(sz.open) && sz.open[n].start+sz.size <= wm {
			n++
		}
		for _, b := range sz.open[:n] {
			st.closeBucket(sz, b)
		}
		sz.open = slices.Delete(sz.open, 0, n)
		if len(sz.open) > 0 {
			next = min(next, sz.open[0].start+sz.size)
		}
	}
	st.nextClose = next
}

func (st *Store) closeBucket(sz *sizeState, b *bucket) {
	if st.emit != nil && b.n > 0 {
		st.emit(&Window{Size: sz.size, Start: b.start, st: st, b: b})
	}
	st.emitted++
	for pos := range uint32(b.n) {
		st.pool.Release(st.slot(b, pos))
		st.keys.release(st.seriesAt(b, pos))
	}
	st.slots -= b.n
	for _, c := range b.chunks {
		clear(c.text) // a recycled chunk must not keep the texts alive
	}
	st.freeChunks = append(st.freeChunks, b.chunks...)
	// Free chunks beyond what the open windows could reuse go back to the garbage collector,
	// so a burst of series does not pin its memory forever.
	if keep := st.slots/chunkSlots + 2*len(st.sizes); len(st.freeChunks) > keep {
		clear(st.freeChunks[keep:])
		st.freeChunks = st.freeChunks[:keep]
	}
	b.chunks, b.index = nil, nil
}

// Stats returns the store's current size and counters.
func (st *Store) Stats() Stats {
	s := Stats{
		Series:    st.keys.live,
		Slots:     st.slots,
		Watermark: st.watermark,
		MaxTime:   st.maxTime,
		Late:      st.late,
		Records:   st.records,
		Emitted:   st.emitted,
		KeyBytes:  int64(st.keys.keyBytes()),
	}
	chunks := len(st.freeChunks)
	s.Bytes += int64(8 * cap(st.cursors))
	for _, sz := range st.sizes {
		s.OpenWindows += len(sz.open)
		for _, b := range sz.open {
			chunks += len(b.chunks)
		}
	}
	s.Bytes += int64(chunks*st.chunkBytes()) + int64(st.keys.bytes())
	// Sketch sizes are not exposed by the sketch libraries; count ~300 bytes for each sketch a
	// slot outgrew its inline values for.
	s.Bytes += int64(st.pool.Live()) * 300
	return s
}

func mod(t, size int64) int64 {
	m := t % size
	if m < 0 {
		m += size
	}
	return m
}
