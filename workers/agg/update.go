package agg

import (
	"fmt"

	"github.com/axiomhq/hyperloglog"

	"github.com/liveagg/liveagg/workers/record"
)

// Update adds one record to a slot. It is the engine's innermost loop: no allocation once the
// slot's sketches exist, one switch per function.
func (l *Layout) Update(s Slot, r *record.Record, p *Pool) {
	s.Vals[0]++
	first := s.Vals[0] == 1
	var newer, tie bool
	if l.HasLast {
		newer, tie = lastDecision(s, uint32(r.Time-s.Start), first)
	}
	for i := range l.Funcs {
		f := &l.Funcs[i]
		switch f.Kind {
		case Sum, Avg:
			if !f.sharedSum {
				updateSum(s.Vals, f.Off, r.Num[f.Num])
			}
		case Min:
			updateMin(s.Vals, f.Off, r.Num[f.Num])
		case Max:
			updateMax(s.Vals, f.Off, r.Num[f.Num])
		case Last:
			if f.Text >= 0 {
				updateLastText(s.Text, f.Text, r.Str[f.Str], newer, tie)
			} else {
				updateLast(s.Vals, f.Off, r.Num[f.Num], newer, tie)
			}
		case Distinct:
			addDistinct(s, f, hashValue(r.Str[f.Str]), p)
		case Quantiles:
			addQuantile(s, f, r.Num[f.Num], int(s.Vals[0]), p)
		}
	}
	if newer {
		*s.LastOff = uint32(r.Time - s.Start)
	}
}

// Merge adds the partial state src into dst. dst's window must contain src's window (equal for
// a restore, larger for a temporal rollup such as 1m partials into a 15m window).
func (l *Layout) Merge(dst, src Slot, p *Pool) error {
	if src.Vals[0] == 0 {
		return nil
	}
	first := dst.Vals[0] == 0
	dn, sn := int(dst.Vals[0]), int(src.Vals[0])
	var newer, tie bool
	var srcLast int64
	if l.HasLast {
		srcLast = src.Start + int64(*src.LastOff)
		if srcLast < dst.Start || srcLast-dst.Start > int64(^uint32(0)) {
			return fmt.Errorf("merge: partial's last event time %d is outside the window starting %d", srcLast, dst.Start)
		}
		newer, tie = lastDecision(dst, uint32(srcLast-dst.Start), first)
	}
	mergeCount(dst, src)
	for i := range l.Funcs {
		f := &l.Funcs[i]
		switch f.Kind {
		case Sum, Avg:
			if !f.sharedSum {
				mergeSum(dst.Vals, src.Vals, f.Off)
			}
		case Min:
			mergeMin(dst.Vals, src.Vals, f.Off)
		case Max:
			mergeMax(dst.Vals, src.Vals, f.Off)
		case Last:
			if f.Text >= 0 {
				mergeLastText(dst.Text, src.Text, f.Text, newer, tie)
			} else {
				updateLast(dst.Vals, f.Off, src.Vals[f.Off], newer, tie)
			}
		case Distinct:
			if err := mergeDistinct(dst, src, f, p); err != nil {
				return fmt.Errorf("merge %s: %w", f.Name, err)
			}
		case Quantiles:
			if err := mergeQuantiles(dst, src, f, dn, sn, p); err != nil {
				return fmt.Errorf("merge %s: %w", f.Name, err)
			}
		}
	}
	if newer {
		*dst.LastOff = uint32(srcLast - dst.Start)
	}
	return nil
}

// Pool recycles sketches of closed windows, so that a worker in steady state allocates no new
// sketches. It belongs to one partition's store and is not safe for concurrent use.
type Pool struct {
	l    *Layout
	hll  [][]*HLL
	dds  [][]*DDS
	live int
}

// NewPool returns an empty pool for the layout's sketch columns.
func (l *Layout) NewPool() *Pool {
	return &Pool{l: l, hll: make([][]*HLL, l.NumHLL), dds: make([][]*DDS, l.NumDDS)}
}

func (p *Pool) getHLL(f *Func) *HLL {
	p.live++
	if free := p.hll[f.Sketch]; len(free) > 0 {
		sk := free[len(free)-1]
		p.hll[f.Sketch] = free[:len(free)-1]
		return sk
	}
	sk, err := hyperloglog.NewSketch(f.Precision, true)
	if err != nil {
		panic(fmt.Sprintf("BUG: precision %d passed spec validation: %v", f.Precision, err))
	}
	return sk
}

func (p *Pool) getDDS(f *Func) *DDS {
	p.live++
	if free := p.dds[f.Sketch]; len(free) > 0 {
		sk := free[len(free)-1]
		p.dds[f.Sketch] = free[:len(free)-1]
		return sk
	}
	return newDDS(f)
}

// Release returns a closed slot's sketches to the pool and clears the slot's pointers.
func (p *Pool) Release(s Slot) {
	for i, sk := range s.HLL {
		if sk == nil {
			continue
		}
		// A sketch that turned dense stays dense after Reset; the pool holds at most as many of
		// those as were ever live at once, so that is bounded, and it saves the allocations.
		sk.Reset()
		p.hll[i] = append(p.hll[i], sk)
		s.HLL[i] = nil
		p.live--
	}
	for i, sk := range s.DDS {
		if sk == nil {
			continue
		}
		sk.Clear()
		p.dds[i] = append(p.dds[i], sk)
		s.DDS[i] = nil
		p.live--
	}
}

// DecodeSketch decodes one sketch of function f (distinct or quantiles) into slot s, from the
// pool. Snapshots use it; partials use DecodeSlot.
func (p *Pool) DecodeSketch(f *Func, s Slot, enc []byte) error {
	switch f.Kind {
	case Distinct:
		sk := p.getHLL(f)
		if err := sk.UnmarshalBinary(enc); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		s.HLL[f.Sketch] = sk
	case Quantiles:
		sk := p.getDDS(f)
		if err := sk.DecodeAndMergeWith(enc); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		s.DDS[f.Sketch] = sk
	default:
		return fmt.Errorf("BUG: %s has no sketch", f.Name)
	}
	return nil
}

// Live is the number of sketches handed out and not yet released.
func (p *Pool) Live() int { return p.live }
