package agg

// count is Vals[0] of every slot: the number of records in the (series, window). It needs no
// code of its own beyond Update's increment and Merge's addition, and every other function's
// partial state is consistent with it because a record either contributes to all of a slot's
// functions or to none (a record missing a field is rejected whole).

func mergeCount(dst, src Slot) { dst.Vals[0] += src.Vals[0] }
