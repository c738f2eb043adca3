package agg

// avg is a running sum divided by the slot's record count at the end. It shares the sum of its
// field with sum when both are asked for, so sum and avg of one field cost one float.

func avgResult(sum, count float64) float64 {
	if count == 0 {
		return 0
	}
	return sum / count
}
