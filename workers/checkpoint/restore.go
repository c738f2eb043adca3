package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// Restored is the point a restore found: the checkpoint of the last link applied (its State is
// that link's bytes) and where it stands in the stored chains.
type Restored struct {
	Checkpoint
	// Links is how many links were applied: 1 for a full checkpoint or a base alone.
	Links int
	// Tip says the point is the partition's newest checkpoint, the current chain whole: a
	// writer may add deltas to it. Otherwise a restore fell back, and the next checkpoint must
	// be a base (or a full one).
	Tip bool
	// BaseBytes and DeltaBytes are the sizes of the chain's base and of its deltas applied;
	// BaseCreated is when the base was written. A writer continuing the chain starts its chain
	// rule from them.
	BaseBytes, DeltaBytes int64
	BaseCreated           time.Time
}

// Decoder restores a chain's links (a base or full snapshot, then deltas in order, each with
// its State and what its manifest entry says, such as the spec that wrote it) and returns how
// many of them it applied: fewer than given when a delta does not apply (its error then says
// why), 0 when none restores. An error wrapping ErrAbortRestore stops the search.
type Decoder func(links []Checkpoint) (applied int, err error)

// States is a Decoder over the links' states alone.
func States(decode func(states [][]byte) (int, error)) Decoder {
	return func(links []Checkpoint) (int, error) {
		states := make([][]byte, len(links))
		for i, cp := range links {
			states[i] = cp.State
		}
		return decode(states)
	}
}

// fetchConcurrency is how many links of a chain are read at once: deltas are small, so their
// round trips, not their bytes, would otherwise add up.
const fetchConcurrency = 8

// Restore finds the newest point of the partition's checkpoints that decode restores: the
// current chain whole, else the current chain up to the link before the first unreadable or
// undecodable one, else the same on the previous chain. Every link is read and verified (size
// and CRC-32C against the manifest) before decode sees it; each fallback is logged and
// reported to the fallback hook. It returns ErrNoCheckpoint when nothing is stored, and
// ErrNoneRestores when every link reads and none of the points restores.
func (l *Lease) Restore(ctx context.Context, decode Decoder) (Restored, error) {
	cur, prev := l.man.Chains()
	if len(cur)+len(prev) == 0 {
		return Restored{}, fmt.Errorf("restore %s: %w", l.key, ErrNoCheckpoint)
	}
	var errs []error
	readFailed, transient := false, false
	for ci, chain := range [][]Entry{cur, prev} {
		if len(chain) == 0 {
			continue
		}
		links, rerr := l.s.fetchChain(ctx, chain)
		if rerr != nil {
			if ctx.Err() != nil {
				return Restored{}, ctx.Err()
			}
			l.fellBack(chain[len(links)], rerr)
			errs = append(errs, rerr)
			readFailed = true
			transient = transient || !errors.Is(rerr, ErrCorrupt)
		}
		if len(links) == 0 {
			continue
		}
		n, derr := decode(links)
		if derr != nil && errors.Is(derr, ErrAbortRestore) {
			return Restored{}, fmt.Errorf("restore %s: %w", l.key, derr)
		}
		if n > len(links) {
			return Restored{}, fmt.Errorf("restore %s: BUG: %d links applied of %d", l.key, n, len(links))
		}
		if derr != nil {
			l.fellBack(chain[n], derr)
			errs = append(errs, derr)
		}
		if n == 0 {
			continue
		}
		r := Restored{Checkpoint: links[n-1], Links: n, Tip: ci == 0 && n == len(chain),
			BaseBytes: chain[0].Size, BaseCreated: chain[0].Created}
		if !r.Tip {
			l.fallback = slices.Clone(chain[:n])
		}
		for _, e := range chain[1:n] {
			r.DeltaBytes += e.Size
		}
		return r, nil
	}
	// A read that failed for a reason a retry may not have (the store away, a timeout) leaves
	// the partition to be restored again later; objects found missing or corrupt stay so.
	if transient {
		return Restored{}, fmt.Errorf("restore %s: no readable checkpoint restores: %w", l.key, errors.Join(errs...))
	}
	if readFailed {
		return Restored{}, fmt.Errorf("restore %s: %w: every checkpoint is missing, corrupt or does not restore: %w", l.key, ErrNoneRestores, errors.Join(errs...))
	}
	return Restored{}, fmt.Errorf("restore %s: %w: every checkpoint reads and none restores: %w", l.key, ErrNoneRestores, errors.Join(errs...))
}

func (l *Lease) fellBack(e Entry, err error) {
	l.s.log.Error("checkpoint unreadable; falling back to an older one",
		"partition", l.key.String(), "object", e.Object, "offset", e.Offset, "err", err)
	if l.s.onFall != nil {
		l.s.onFall(l.key, err)
	}
}

// fetchChain reads and verifies a chain's links, several at once, and returns those before the
// first that is unreadable, with that one's error.
func (s *Store) fetchChain(ctx context.Context, chain []Entry) ([]Checkpoint, error) {
	out := make([]Checkpoint, len(chain))
	errs := make([]error, len(chain))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchConcurrency)
	for i, e := range chain {
		g.Go(func() error {
			out[i], errs[i] = s.fetch(gctx, e)
			return nil
		})
	}
	_ = g.Wait()
	for i, err := range errs {
		if err != nil {
			return out[:i], err
		}
	}
	return out, nil
}
