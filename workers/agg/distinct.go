package agg

import (
	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"
)

// HLL is the distinct function's sketch: axiomhq's HyperLogLog, which starts sparse (a few bytes
// per distinct value, exact-ish for small sets) and turns dense (2^precision one-byte registers)
// only once the sparse form would be larger. Most series are small, so most sketches stay sparse.
type HLL = hyperloglog.Sketch

// hashValue is the one hash every level uses: sketches merge only if they hashed alike.
func hashValue(b []byte) uint64 { return xxhash.Sum64(b) }

func distinctResult(sk *HLL) float64 {
	if sk == nil {
		return 0
	}
	return float64(sk.Estimate())
}
