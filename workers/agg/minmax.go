package agg

// min and max start at +Inf and -Inf (Layout.Init), so an empty partial is the identity of merge.

func updateMin(vals []float64, off int, x float64) {
	if x < vals[off] {
		vals[off] = x
	}
}

func updateMax(vals []float64, off int, x float64) {
	if x > vals[off] {
		vals[off] = x
	}
}

func mergeMin(dst, src []float64, off int) { updateMin(dst, off, src[off]) }

func mergeMax(dst, src []float64, off int) { updateMax(dst, off, src[off]) }
