package state

import (
	"fmt"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/spec"
)

// Bridge re-encodes partials written under an earlier revision of a spec for the current one,
// when the change between them migrates in place (aggregations added, removed, renamed or
// reordered). A level reading partials meets such partials right after a spec change: the
// level that writes them committed them under the old revision, and the reader takes over
// under the new one. They carry the old layout's fingerprint; the bridge decodes their state
// with the old layout and moves it into the new one exactly as Migrate moves a checkpoint's
// slots, so an added aggregation holds only what was read after the switch, as in the
// reader's own open windows.
type Bridge struct {
	from, to  *agg.Layout
	sources   []int
	fromPool  *agg.Pool
	toPool    *agg.Pool
	scratch   *[]byte
	old, next agg.Slot
}

// NewBridge returns the bridge from partials of spec old to a reader of spec next, or
// ErrNotMigratable if the change between them does not migrate in place.
func NewBridge(old, next *spec.Spec) (*Bridge, error) {
	p := spec.Diff(old, next)
	if p.Action != spec.ActionNone && p.Action != spec.ActionMigrate {
		return nil, fmt.Errorf("%w: %s", ErrNotMigratable, p.Summary())
	}
	lo, err := agg.LayoutOf(old)
	if err != nil {
		return nil, err
	}
	ln, err := agg.LayoutOf(next)
	if err != nil {
		return nil, err
	}
	return &Bridge{from: lo, to: ln, sources: columnSources(lo, ln, p.Kept), fromPool: lo.NewPool(), toPool: ln.NewPool(),
		scratch: new([]byte), old: lo.NewSlot(0), next: ln.NewSlot(0)}, nil
}

// Fingerprint is the layout fingerprint of the partials the bridge takes.
func (b *Bridge) Fingerprint() uint64 { return b.from.Fingerprint() }

// Convert appends to dst the encoding under the new layout of a slot state encoded under the
// old one.
func (b *Bridge) Convert(dst, state []byte, start int64) ([]byte, error) {
	b.old.Start, b.next.Start = start, start
	b.from.Init(b.old)
	b.to.Init(b.next)
	defer b.fromPool.Release(b.old)
	defer b.toPool.Release(b.next)
	rest, err := b.from.DecodeSlot(state, b.old, b.fromPool)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: %d bytes after the slot", agg.ErrCorrupt, len(rest))
	}
	if err != nil {
		return dst, err
	}
	if err := moveSlot(b.to, b.from, b.next, b.old, b.sources, b.toPool, b.scratch); err != nil {
		return dst, err
	}
	return b.to.AppendSlot(dst, b.next)
}
