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
			updateLast(s.Vals, f.Off, r.Num[f.Num], newer, tie)
		case Distinct:
			sk := s.HLL[f.Sketch]
			if sk == nil {
				sk = p.getHLL(f)
				s.HLL[f.Sketch] = sk
			}
			sk.InsertHash(hashValue(r.Str[f.Str]))
		case Quantiles:
			sk := s.DDS[f.Sketch]
			if sk == nil {
				sk = p.getDDS(f)
				s.DDS[f.Sketch] = sk
			}
			// Add fails only for values outside the mapping's range (beyond ±1e300-ish); such a
			// value still counts in count, sum and the rest, and the sketch skips it.
			_ = sk.Add(r.Num[f.Num])
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
			updateLast(dst.Vals, f.Off, src.Vals[f.Off], newer, tie)
		case Distinct:
			if src.HLL[f.Sketch] == nil {
				continue
			}
			if dst.HLL[f.Sketch] == nil {
				dst.HLL[f.Sketch] = p.getHLL(f)
			}
			if err := dst.HLL[f.Sketch].Merge(src.HLL[f.Sketch]); err != nil {
				return fmt.Errorf("merge %s: %w", f.Name, err)
			}
		case Quantiles:
			if src.DDS[f.Sketch] == nil {
				continue
			}
			if dst.DDS[f.Sketch] == nil {
				dst.DDS[f.Sketch] = p.getDDS(f)
			}
			if err := dst.DDS[f.Sketch].MergeWith(src.DDS[f.Sketch]); err != nil {
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
	l   *Layout
	hll [][]*HLL
	dds [][]*DDS
}

// NewPool returns an empty pool for the layout's sketch columns.
func (l *Layout) NewPool() *Pool {
	return &Pool{l: l, hll: make([][]*HLL, l.NumHLL), dds: make([][]*DDS, l.NumDDS)}
}

// pooledHLLMax bounds which HyperLogLogs go back to the pool: one that has turned dense holds
// 2^precision bytes and would be wasted on the small series that most slots are.
const pooledHLLMax = 512

func (p *Pool) getHLL(f *Func) *HLL {
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
		if sk.Estimate() <= pooledHLLMax {
			sk.Reset()
			p.hll[i] = append(p.hll[i], sk)
		}
		s.HLL[i] = nil
	}
	for i, sk := range s.DDS {
		if sk == nil {
			continue
		}
		sk.Clear()
		p.dds[i] = append(p.dds[i], sk)
		s.DDS[i] = nil
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
