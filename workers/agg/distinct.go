package agg

import (
	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"
)

// HLL is the distinct function's sketch: axiomhq's HyperLogLog, which itself starts sparse and
// turns dense (2^precision one-byte registers) only once the sparse form would be larger. A slot
// gets one only after SmallN distinct values; until then distinct keeps the values' hashes
// inline and counts them exactly.
type HLL = hyperloglog.Sketch

// hashValue is the one hash every level uses: sketches merge only if they hashed alike. Zero
// marks an empty inline entry, so a value hashing to zero is taken as one (a 2^-64 collision).
func hashValue(b []byte) uint64 {
	h := xxhash.Sum64(b)
	if h == 0 {
		h = 1
	}
	return h
}

// addDistinct adds hash h to a slot's distinct f, promoting the inline set to a sketch when it
// overflows.
func addDistinct(s Slot, f *Func, h uint64, p *Pool) {
	if sk := s.HLL[f.Sketch]; sk != nil {
		sk.InsertHash(h)
		return
	}
	set := s.Small[f.SmallOff : f.SmallOff+SmallN]
	for i, x := range set {
		if x == h {
			return
		}
		if x == 0 {
			set[i] = h
			return
		}
	}
	sk := p.getHLL(f)
	for _, x := range set {
		sk.InsertHash(x)
	}
	clear(set)
	sk.InsertHash(h)
	s.HLL[f.Sketch] = sk
}

func mergeDistinct(dst, src Slot, f *Func, p *Pool) error {
	if sk := src.HLL[f.Sketch]; sk != nil {
		if dst.HLL[f.Sketch] == nil {
			// Promote dst: an empty sketch fed dst's inline hashes, then merged with src's.
			d := p.getHLL(f)
			for _, x := range dst.Small[f.SmallOff : f.SmallOff+SmallN] {
				if x != 0 {
					d.InsertHash(x)
				}
			}
			clear(dst.Small[f.SmallOff : f.SmallOff+SmallN])
			dst.HLL[f.Sketch] = d
		}
		return dst.HLL[f.Sketch].Merge(sk)
	}
	for _, x := range src.Small[f.SmallOff : f.SmallOff+SmallN] {
		if x != 0 {
			addDistinct(dst, f, x, p)
		}
	}
	return nil
}

func distinctResult(sk *HLL, small []uint64) float64 {
	if sk != nil {
		return float64(sk.Estimate())
	}
	n := 0
	for _, x := range small {
		if x != 0 {
			n++
		}
	}
	return float64(n)
}
