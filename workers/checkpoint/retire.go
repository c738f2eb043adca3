package checkpoint

import (
	"context"
	"fmt"
	"path"
)

// Retire deletes every object of a partition's checkpoints (manifest first, so no reader finds
// a manifest naming missing data), for an operator retiring an old revision's state. A worker
// that still owns the partition finds its next save fenced, fails the partition and restores
// afresh; so retire only what no running spec revision should carry over.
func (s *Store) Retire(ctx context.Context, key Key) error {
	if err := s.b.remove(ctx, path.Join(key.dir(), "MANIFEST"), 0); err != nil {
		return fmt.Errorf("retire %s: %w", key, err)
	}
	names, err := s.b.list(ctx, key.dir()+"/")
	if err != nil {
		return fmt.Errorf("retire %s: %w", key, err)
	}
	for _, n := range names {
		if err := s.b.remove(ctx, n, 0); err != nil { // segments are listed too
			return fmt.Errorf("retire %s: %w", key, err)
		}
	}
	return nil
}
