package state

import (
	"errors"
	"fmt"
	"time"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/spec"
)

// ErrPartialShape is wrapped by ApplyPartial's errors about a partial that does not fit this
// store's windows.
var ErrPartialShape = errors.New("partial does not fit the spec's windows")

// ApplyPartial merges a lower level's partial state, for the window [start, start+size) of the
// series key, into every window of this store that contains it: a spatial rollup when key is
// coarser than the partial's, a temporal one when the store's windows are larger (1m partials
// into 15m and 1h windows). state is the slot's encoding (agg.Layout.AppendSlot).
//
// Partials do not move the watermark: partials of many sources arrive interleaved, and one
// source running ahead says nothing about the others. The reader moves it with AdvanceWatermark
// from the sources' watermark markers (see partial.Watermarks). A partial for a window this store
// has already closed is late (false, nothing changed); with the sources' markers that only
// happens to a source that wrote partials below the watermark it had announced.
func (st *Store) ApplyPartial(key [][]byte, start, size int64, state []byte) (bool, error) {
	for i := range st.sizes {
		if sz := st.sizes[i].size; sz%size != 0 {
			return false, fmt.Errorf("%w: a %s window cannot hold %s partials (it must be a multiple)",
				ErrPartialShape, msDur(sz), msDur(size))
		}
	}
	if start%size != 0 {
		return false, fmt.Errorf("%w: window start %d is not aligned to its size %s", ErrPartialShape, start, msDur(size))
	}
	if st.closedAt(start) {
		st.late++
		return false, nil
	}
	if st.partial.Vals == nil {
		st.partial = st.layout.NewSlot(start)
	}
	src := st.partial
	src.Start = start
	st.layout.Init(src)
	rest, err := st.layout.DecodeSlot(state, src, st.pool)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: %d bytes after the slot", agg.ErrCorrupt, len(rest))
	}
	if err != nil {
		st.pool.Release(src)
		return false, err
	}
	id := st.seriesID(key)
	for si := range st.sizes {
		sz := &st.sizes[si]
		b := st.bucketFor(sz, start-mod(start, sz.size))
		pos := st.findSlot(si, b, id)
		if pos < b.clean {
			b.touch(pos)
		}
		if err := st.layout.Merge(st.slot(b, pos), src, st.pool); err != nil {
			// The slot may hold part of the merge; a partial that passed decoding and the
			// shape checks cannot fail here, so this is a bug, not bad input.
			st.pool.Release(src)
			return false, fmt.Errorf("merge partial: %w", err)
		}
	}
	st.pool.Release(src)
	st.records++
	st.maxTime = max(st.maxTime, start)
	return true, nil
}

// closedAt says whether a window holding time t has been emitted already, for any window size.
func (st *Store) closedAt(t int64) bool {
	if st.watermark == noTime {
		return false
	}
	for _, sz := range st.sizes {
		if t-mod(t, sz.size)+sz.size <= st.watermark {
			return true
		}
	}
	return false
}

// msDur prints a window size in milliseconds as specs write it (500ms, 1m, 1d).
func msDur(ms int64) string { return spec.Duration(time.Duration(ms) * time.Millisecond).String() }
