package state

import (
	"github.com/cespare/xxhash/v2"
)

// keyTable interns series keys: each distinct key gets a small integer id, its bytes live once
// in an arena, and the table is an open-addressing hash of ids. Per series it costs about 20
// bytes plus the key itself, where a map[string]uint32 with per-key strings would cost 60-70
// and one heap object per series for the garbage collector to scan.
//
// Series come and go (a device leaves a site, an org goes quiet), so ids are reference-counted
// by the open windows holding them; an id whose last window closes is freed and reused, and the
// arena is compacted when more than half of it is dead keys.
type keyTable struct {
	slots   []uint32 // linear-probing table of id+1; 0 is empty
	hashes  []uint32 // per id: low bits of the key's hash, to skip most byte compares
	offs    []uint32 // per id: offset of the key in arena
	lens    []uint32 // per id: length of the key
	refs    []uint32 // per id: open windows holding the id; 0 means free
	arena   []byte
	free    []uint32
	live    int
	garbage int // arena bytes of freed keys
}

func newKeyTable() *keyTable {
	return &keyTable{slots: make([]uint32, 1024)}
}

func hashKey(k []byte) uint64 { return xxhash.Sum64(k) }

// find returns the id of key, or -1.
func (t *keyTable) find(key []byte, h uint64) int {
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		id := s - 1
		if t.hashes[id] == uint32(h) && string(t.key(id)) == string(key) {
			return int(id)
		}
	}
}

// intern returns the id of key, adding it (with no references yet) if new.
func (t *keyTable) intern(key []byte, h uint64) (id uint32, added bool) {
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
		id = uint32(len(t.hashes))
		t.hashes = append(t.hashes, 0)
		t.offs = append(t.offs, 0)
		t.lens = append(t.lens, 0)
		t.refs = append(t.refs, 0)
	}
	if t.garbage > 1<<20 && t.garbage*2 > len(t.arena) {
		t.compact()
	}
	t.hashes[id] = uint32(h)
	t.offs[id] = uint32(len(t.arena))
	t.lens[id] = uint32(len(key))
	t.refs[id] = 0
	t.arena = append(t.arena, key...)
	t.place(id, h)
	t.live++
	return id, true
}

func (t *keyTable) place(id uint32, h uint64) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = id + 1
}

func (t *keyTable) key(id uint32) []byte {
	o := t.offs[id]
	return t.arena[o : o+t.lens[id]]
}

// release drops one reference to id and frees it when none is left.
func (t *keyTable) release(id uint32) (freed bool) {
	t.refs[id]--
	if t.refs[id] > 0 {
		return false
	}
	t.remove(id)
	return true
}

// remove deletes id with backward-shift deletion, which keeps linear probing tombstone-free.
func (t *keyTable) remove(id uint32) {
	mask := uint64(len(t.slots) - 1)
	h := hashKey(t.key(id))
	i := h & mask
	for t.slots[i] != id+1 {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		home := hashKey(t.key(t.slots[j]-1)) & mask
		// Move slot j back to the hole at i if its home is not cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j)) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
	t.garbage += int(t.lens[id])
	t.lens[id] = 0
	t.free = append(t.free, id)
	t.live--
}

func (t *keyTable) grow() {
	old := t.slots
	t.slots = make([]uint32, 2*len(old))
	for _, s := range old {
		if s != 0 {
			t.place(s-1, uint64(t.hashFull(s-1)))
		}
	}
}

// hashFull recomputes an id's full hash; stored hashes keep only 32 bits.
func (t *keyTable) hashFull(id uint32) uint64 { return hashKey(t.key(id)) }

// compact rewrites the arena with live keys only.
func (t *keyTable) compact() {
	arena := make([]byte, 0, len(t.arena)-t.garbage+len(t.arena)/8)
	for id := range t.offs {
		if t.refs[id] == 0 && t.lens[id] == 0 {
			continue
		}
		k := t.key(uint32(id))
		t.offs[id] = uint32(len(arena))
		arena = append(arena, k...)
	}
	t.arena = arena
	t.garbage = 0
}

// bytes is the table's memory, arena included.
func (t *keyTable) bytes() int {
	return 4*len(t.slots) + 16*cap(t.hashes) + cap(t.arena) + 4*cap(t.free)
}

// keyBytes is the arena's memory alone: the interned key bytes.
func (t *keyTable) keyBytes() int { return cap(t.arena) }
