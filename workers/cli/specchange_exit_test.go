package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/liveagg/liveagg/workers/worker"
)

// A spec change's outcomes map to the statuses the spot-workers unit acts on: a worker that has
// not seen the change yet restarts (4) onto it; one that cannot carry the change out halts (5)
// instead of restarting into the same refusal.
func TestSpecChangeExitStatus(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"checkpoint of a newer revision", fmt.Errorf("partition x/y/3: %w (version 4; this worker runs version 3)", worker.ErrStaleSpec), ExitFailed},
		{"change refused", fmt.Errorf("partition x/y/3: %w: backfill, but partition 3's log starts at 120", worker.ErrChangeRefused), ExitHalted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var exit *ExitError
			if err := exitStatus(tc.err, log); !errors.As(err, &exit) || exit.Code != tc.want {
				t.Errorf("exitStatus(%v) = %v, want exit status %d", tc.err, err, tc.want)
			}
		})
	}
}
