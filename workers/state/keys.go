package state

import (
	"math/bits"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// keyTable interns series keys: each distinct key gets a small integer id, its bytes live once
// in an arena, and the table is an open-addressing hash of ids. Per series it costs about 24
// bytes plus the key itself, where a map[string]uint32 with per-key strings would cost 60-70
// and one heap object per series for the garbage collector to scan.
//
// A table slot packs the key's 32-bit hash with its id, so a probe rejects other keys without
// touching their entries, and a hit costs one more cache line for the entry and one for the
// bytes.
//
// Series come and go (a device leaves a site, an org goes quiet), so ids are reference-counted
// by the open windows holding them; an id whose last window closes is freed and reused, and the
// arena is compacted when more than half of it is dead keys.
type keyTable struct {
	slots   []uint64 // linear probing: hash32<<32 | id+1; 0 is empty
	entries []keyEntry
	arena   []byte
	free    []uint32
	live    int
	garbage int // arena bytes of freed keys
	// track makes the table mark in dirty every id interned or freed, for the next delta.
	track bool
	dirty []uint64
}

type keyEntry struct {
	off, len uint32 // the key is arena[off : off+len]
	refs     uint32 // open windows holding the id; 0 means free
}

func newKeyTable() *keyTable {
	return &keyTable{slots: make([]uint64, 1024)}
}

// reserve sizes an empty table for n keys of keyBytes bytes in all, so that filling it (a
// restore re-interns every series of a snapshot) neither rehashes the table as it doubles,
// some twenty times for millions of keys, nor copies the arena as it grows.
func (t *keyTable) reserve(n, keyBytes int) {
	size := len(t.slots)
	for n*4 > size*3 {
		size *= 2
	}
	if size > len(t.slots) && t.live == 0 {
		t.slots = make([]uint64, size)
	}
	t.entries = slices.Grow(t.entries, n)
	t.arena = slices.Grow(t.arena, keyBytes)
}

// add appends a key to an empty table being loaded, as id len(entries), without placing it in
// the hash slots: load places them all at once.
func (t *keyTable) add(key []byte) uint32 {
	id := uint32(len(t.entries))
	t.entries = append(t.entries, keyEntry{off: uint32(len(t.arena)), len: uint32(len(key))})
	t.arena = append(t.arena, key...)
	return id
}

// load places every added key in the hash slots and returns the id of a key added twice, or
// -1. It places them in the order of their home slots (bucketed by the top bits of the home
// index), so a table far larger than the caches, 16 MB for a million keys, is written nearly
// front to back; in id order every placement would be a cache miss.
//
// With liveOnly, entries without references are free ids (a chain restore marks live ones with
// a reference first) and are left out; otherwise every entry is a key.
func (t *keyTable) load(liveOnly bool) int {
	n := len(t.entries)
	if liveOnly {
		n = 0
		for _, e := range t.entries {
			if e.refs > 0 {
				n++
			}
		}
	}
	if size := len(t.slots); n*4 > size*3 {
		for n*4 > size*3 {
			size *= 2
		}
		t.slots = make([]uint64, size)
	}
	mask := uint32(len(t.slots) - 1)
	shift := max(0, bits.Len32(mask)-8) // 256 buckets at most
	nb := int(mask>>shift) + 1
	start := make([]int, nb+1)
	packed := make([]uint64, 0, n)
	for id := range t.entries {
		if liveOnly && t.entries[id].refs == 0 {
			continue
		}
		h := hashKey(t.key(uint32(id)))
		packed = append(packed, uint64(h)<<32|uint64(id+1))
		start[int((h&mask)>>shift)+1]++
	}
	for b := range nb {
		start[b+1] += start[b]
	}
	ordered := make([]uint64, n)
	for _, s := range packed {
		b := (uint32(s>>32) & mask) >> shift
		ordered[start[b]] = s
		start[b]++
	}
	for _, s := range ordered {
		h, id := uint32(s>>32), uint32(s)-1
		i := h & mask
		for ; t.slots[i] != 0; i = (i + 1) & mask {
			if o := t.slots[i]; uint32(o>>32) == h && string(t.key(uint32(o)-1)) == string(t.key(id)) {
				return int(id)
			}
		}
		t.slots[i] = s
	}
	t.live = n
	return -1
}

// hashKey hashes a key; the table uses its low 32 bits.
func hashKey(k []byte) uint32 { return uint32(xxhash.Sum64(k)) }

// find returns the id of key, or -1.
func (t *keyTable) find(key []byte, h uint32) int {
	mask := uint32(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if uint32(s>>32) == h {
			id := uint32(s) - 1
			if string(t.key(id)) == string(key) {
				return int(id)
			}
		}
	}
}

// intern returns the id of key, adding it (with no references yet) if new.
func (t *keyTable) intern(key []byte, h uint32) (id uint32, added bool) {
	if id := t.find(key, h); id >= 0 {
		return uint32(id), false
	}
	if (t.live+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		id = uint32(len(t.entries))
		t.entries = append(t.entries, keyEntry{})
	}
	if t.garbage > 1<<20 && t.garbage*2 > len(t.arena) {
		t.compact()
	}
	t.entries[id] = keyEntry{off: uint32(len(t.arena)), len: uint32(len(key))}
	t.arena = append(t.arena, key...)
	t.place(uint64(h)<<32 | uint64(id+1))
	t.live++
	if t.track {
		t.mark(id)
	}
	return id, true
}

func (t *keyTable) place(slot uint64) {
	mask := uint32(len(t.slots) - 1)
	i := uint32(slot>>32) & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = slot
}

func (t *keyTable) key(id uint32) []byte {
	e := &t.entries[id]
	return t.arena[e.off : e.off+e.len]
}

// release drops one reference to id and frees it when none is left.
func (t *keyTable) release(id uint32) (freed bool) {
	e := &t.entries[id]
	e.refs--
	if e.refs > 0 {
		return false
	}
	t.remove(id)
	return true
}

// remove deletes id with backward-shift deletion, which keeps linear probing tombstone-free.
func (t *keyTable) remove(id uint32) {
	mask := uint32(len(t.slots) - 1)
	i := hashKey(t.key(id)) & mask
	for uint32(t.slots[i]) != id+1 {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		home := uint32(t.slots[j]>>32) & mask
		// Move slot j back to the hole at i if its home is not cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j)) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
	t.garbage += int(t.entries[id].len)
	t.entries[id] = keyEntry{}
	t.free = append(t.free, id)
	t.live--
	if t.track {
		t.mark(id)
	}
}

// mark notes that id changed (interned or freed) since the last base or delta.
func (t *keyTable) mark(id uint32) {
	w := int(id >> 6)
	if w >= len(t.dirty) {
		t.dirty = append(t.dirty, make([]uint64, w+1-len(t.dirty))...)
	}
	t.dirty[w] |= 1 << (id & 63)
}

func (t *keyTable) grow() {
	old := t.slots
	t.slots = make([]uint64, 2*len(old))
	for _, s := range old {
		if s != 0 {
			t.place(s)
		}
	}
}

// compact rewrites the arena with live keys only.
func (t *keyTable) compact() {
	arena := make([]byte, 0, len(t.arena)-t.garbage+len(t.arena)/8)
	for id := range t.entries {
		e := &t.entries[id]
		if e.refs == 0 && e.len == 0 {
			continue
		}
		k := t.arena[e.off : e.off+e.len]
		e.off = uint32(len(arena))
		arena = append(arena, k...)
	}
	t.arena = arena
	t.garbage = 0
}

// bytes is the table's memory, arena included.
func (t *keyTable) bytes() int {
	return 8*len(t.slots) + 12*cap(t.entries) + cap(t.arena) + 4*cap(t.free)
}

// keyBytesLive is the bytes of the live keys.
func (t *keyTable) keyBytesLive() int { return len(t.arena) - t.garbage }

// keyBytes is the arena's memory alone: the interned key bytes.
func (t *keyTable) keyBytes() int { return cap(t.arena) }
