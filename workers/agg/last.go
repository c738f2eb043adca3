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
