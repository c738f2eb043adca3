package agg

// last is the value at the latest event time. Ties (two records with the same event time) go to
// the greater value, not to the later arrival: arrival order differs between partitions and
// between replays of a merge, and last must not depend on it, or merge(partial(A), partial(B))
// would not equal last(A ∪ B). The slot keeps one event-time offset shared by every last of the
// slot, in ms after the window start (32 bits: windows are at most spec.MaxWindow long).

// lastDecision says, for a new event time at offset off, whether it is newer than the slot's
// current last (replace), or ties with it (replace only with a greater value).
func lastDecision(s Slot, off uint32, first bool) (newer, tie bool) {
	if first {
		return true, false
	}
	return off > *s.LastOff, off == *s.LastOff
}

func updateLast(vals []float64, off int, x float64, newer, tie bool) {
	if newer || (tie && x > vals[off]) {
		vals[off] = x
	}
}

// updateLastText is updateLast for text: ties go to the greater text (bytes compared). The
// comparison with the current value comes first, so a value that repeats (a status, a state)
// costs no allocation.
func updateLastText(texts []string, i int, x []byte, newer, tie bool) {
	if string(x) == texts[i] {
		return
	}
	if newer || (tie && string(x) > texts[i]) {
		texts[i] = string(x)
	}
}

func mergeLastText(dst, src []string, i int, newer, tie bool) {
	if newer || (tie && src[i] > dst[i]) {
		dst[i] = src[i]
	}
}
