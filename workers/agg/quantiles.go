package agg

import (
	"math"
	"slices"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// DDS is the quantiles function's sketch: DataDog's DDSketch with a logarithmic mapping, whose
// quantiles are within the spec's relative accuracy of the true value and which merges exactly
// (bucket counts add). Buffered paginated stores keep small sketches small. A slot gets one only
// after SmallN values; until then the values sit in the slot's Vals and quantiles are exact.
type DDS = ddsketch.DDSketch

func newDDS(f *Func) *DDS {
	return ddsketch.NewDDSketch(f.mapping, store.NewBufferedPaginatedStore(), store.NewBufferedPaginatedStore())
}

// addQuantile records value x as the n-th value (1-based) of a slot's quantiles f.
func addQuantile(s Slot, f *Func, x float64, n int, p *Pool) {
	if sk := s.DDS[f.Sketch]; sk != nil {
		// Add fails only beyond the mapping's range (about ±1e300); such a value still counts
		// in count, sum and the rest, and the sketch skips it.
		_ = sk.Add(x)
		return
	}
	if n <= SmallN {
		s.Vals[f.Off+n-1] = x
		return
	}
	sk := p.getDDS(f)
	for _, v := range s.Vals[f.Off : f.Off+SmallN] {
		_ = sk.Add(v)
	}
	clear(s.Vals[f.Off : f.Off+SmallN])
	_ = sk.Add(x)
	s.DDS[f.Sketch] = sk
}

// mergeQuantiles merges src into dst; dn and sn are their counts before the merge.
func mergeQuantiles(dst, src Slot, f *Func, dn, sn int, p *Pool) error {
	if sk := src.DDS[f.Sketch]; sk != nil {
		if dst.DDS[f.Sketch] == nil {
			d := p.getDDS(f)
			for _, v := range dst.Vals[f.Off : f.Off+dn] {
				_ = d.Add(v)
			}
			clear(dst.Vals[f.Off : f.Off+SmallN])
			dst.DDS[f.Sketch] = d
		}
		return dst.DDS[f.Sketch].MergeWith(sk)
	}
	for i, v := range src.Vals[f.Off : f.Off+sn] {
		addQuantile(dst, f, v, dn+i+1, p)
	}
	return nil
}

// quantilesResult appends the quantiles of a slot with n values: from the sketch, or exactly
// from the inline values (nearest rank, the value at round(q·(n-1)) in sorted order).
func quantilesResult(dst []float64, sk *DDS, small []float64, n int, qs []float64) []float64 {
	if sk == nil {
		var buf [SmallN]float64
		vals := buf[:min(n, SmallN)]
		copy(vals, small)
		slices.Sort(vals)
		for _, q := range qs {
			if len(vals) == 0 {
				dst = append(dst, math.NaN())
				continue
			}
			dst = append(dst, vals[int(math.Round(q*float64(len(vals)-1)))])
		}
		return dst
	}
	for _, q := range qs {
		v := math.NaN()
		if !sk.IsEmpty() {
			if x, err := sk.GetValueAtQuantile(q); err == nil {
				v = x
			}
		}
		dst = append(dst, v)
	}
	return dst
}
