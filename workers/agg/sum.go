package agg

// sum keeps a running float64 sum. Integer inputs sum exactly while the total stays below 2^53
// (9e15), so partial sums merge to exactly the sum of the union, in any order.

func updateSum(vals []float64, off int, x float64) { vals[off] += x }

func mergeSum(dst, src []float64, off int) { dst[off] += src[off] }
