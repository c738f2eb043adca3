package state

import (
	"github.com/liveagg/liveagg/workers/agg"
)

// chunkSlots is the number of slots per chunk. Buckets grow a chunk at a time, so a bucket
// wastes at most one partly filled chunk, never the half-empty tail of a doubled slice.
const chunkSlots = 1024

// chunk holds the columns of chunkSlots slots of one bucket.
type chunk struct {
	series  []uint32   // series id per slot
	vals    []float64  // Layout.Stride per slot
	lastOff []uint32   // per slot, if the layout has last
	hll     []*agg.HLL // Layout.NumHLL per slot
	dds     []*agg.DDS // Layout.NumDDS per slot
	small   []uint64   // Layout.SmallStride per slot: inline distinct hashes
	text    []string   // Layout.NumText per slot: text last values
}

// bucket is one open window of one size: every series' slot for [start, start+size).
type bucket struct {
	seq    uint32 // creation order within its size, for cursors
	start  int64
	n      int // slots used
	chunks []*chunk
	// index maps series id to slot for lookups the cursors cannot answer (a series that has
	// moved on to a newer window of this size). Built on first need, nil until then.
	index map[uint32]uint32
	// For incremental snapshots: known says the bucket is in the newest base or delta, which
	// held its first clean slots; dirty marks those of them updated since. Slots from clean on
	// are new. clean is 0 while the store keeps no chain, so Apply marks nothing.
	known bool
	clean uint32
	dirty []uint64
}

// touch marks slot pos, one the last base or delta holds, as changed since.
func (b *bucket) touch(pos uint32) { b.dirty[pos>>6] |= 1 << (pos & 63) }

func (st *Store) slot(b *bucket, pos uint32) agg.Slot {
	c := b.chunks[pos/chunkSlots]
	i := int(pos % chunkSlots)
	l := st.layout
	s := agg.Slot{
		Vals:  c.vals[i*l.Stride : (i+1)*l.Stride : (i+1)*l.Stride],
		Start: b.start,
		HLL:   c.hll[i*l.NumHLL : (i+1)*l.NumHLL : (i+1)*l.NumHLL],
		DDS:   c.dds[i*l.NumDDS : (i+1)*l.NumDDS : (i+1)*l.NumDDS],
		Small: c.small[i*l.SmallStride : (i+1)*l.SmallStride : (i+1)*l.SmallStride],
		Text:  c.text[i*l.NumText : (i+1)*l.NumText : (i+1)*l.NumText],
	}
	if l.HasLast {
		s.LastOff = &c.lastOff[i]
	}
	return s
}

func (st *Store) seriesAt(b *bucket, pos uint32) uint32 {
	return b.chunks[pos/chunkSlots].series[pos%chunkSlots]
}

// addSlot appends an initialised slot for series id to b.
func (st *Store) addSlot(b *bucket, id uint32) uint32 {
	pos := uint32(b.n)
	if b.n == len(b.chunks)*chunkSlots {
		b.chunks = append(b.chunks, st.newChunk())
	}
	b.chunks[pos/chunkSlots].series[pos%chunkSlots] = id
	b.n++
	st.layout.Init(st.slot(b, pos))
	if b.index != nil {
		b.index[id] = pos
	}
	st.keys.entries[id].refs++
	st.slots++
	return pos
}

func (st *Store) newChunk() *chunk {
	if n := len(st.freeChunks); n > 0 {
		c := st.freeChunks[n-1]
		st.freeChunks = st.freeChunks[:n-1]
		return c
	}
	l := st.layout
	c := &chunk{
		series: make([]uint32, chunkSlots),
		vals:   make([]float64, chunkSlots*l.Stride),
		hll:    make([]*agg.HLL, chunkSlots*l.NumHLL),
		dds:    make([]*agg.DDS, chunkSlots*l.NumDDS),
		small:  make([]uint64, chunkSlots*l.SmallStride),
		text:   make([]string, chunkSlots*l.NumText),
	}
	if l.HasLast {
		c.lastOff = make([]uint32, chunkSlots)
	}
	return c
}

// chunkBytes is the memory of one chunk's columns.
func (st *Store) chunkBytes() int {
	l := st.layout
	n := chunkSlots * (4 + 8*l.Stride + 8*(l.NumHLL+l.NumDDS) + 8*l.SmallStride + 16*l.NumText)
	if l.HasLast {
		n += 4 * chunkSlots
	}
	return n
}

// findSlot returns series id's slot in b, creating it if absent, using the cursor of size si.
func (st *Store) findSlot(si int, b *bucket, id uint32) uint32 {
	cur := &st.cursors[int(id)*len(st.sizes)+si]
	switch {
	case cur.seq == b.seq:
		return cur.pos
	case cur.seq < b.seq:
		// The cursor names the newest bucket holding the series, and b is newer: not in b yet.
		pos := st.addSlot(b, id)
		*cur = cursor{seq: b.seq, pos: pos}
		return pos
	}
	if b.index == nil {
		b.index = make(map[uint32]uint32, b.n)
		for pos := range uint32(b.n) {
			b.index[st.seriesAt(b, pos)] = pos
		}
	}
	if pos, ok := b.index[id]; ok {
		return pos
	}
	return st.addSlot(b, id)
}

// cursor remembers the newest bucket of one size that holds a series, and its slot there.
// In-order data finds its slot through the cursor alone: no hashing per window.
type cursor struct {
	seq uint32 // bucket seq; 0 for none (bucket seqs start at 1)
	pos uint32
}
