package agg

import (
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// DDS is the quantiles function's sketch: DataDog's DDSketch with a logarithmic mapping, whose
// quantiles are within the spec's relative accuracy of the true value and which merges exactly
// (bucket counts add). Buffered paginated stores keep small sketches small.
type DDS = ddsketch.DDSketch

func newDDS(f *Func) *DDS {
	return ddsketch.NewDDSketch(f.mapping, store.NewBufferedPaginatedStore(), store.NewBufferedPaginatedStore())
}

func quantilesResult(dst []float64, sk *DDS, qs []float64) []float64 {
	for _, q := range qs {
		v := math.NaN()
		if sk != nil && !sk.IsEmpty() {
			if x, err := sk.GetValueAtQuantile(q); err == nil {
				v = x
			}
		}
		dst = append(dst, v)
	}
	return dst
}
