package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/state"
	"github.com/liveagg/liveagg/workers/worker"
)

// Each way a worker ends maps to the exit status its supervisor acts on: halted (5, stay down)
// for what a restart cannot fix, failed (4, restart) for the rest.
func TestExitStatus(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"offset lost to retention", fmt.Errorf("partition 3: %w", worker.ErrOffsetLost), ExitHalted},
		{"log truncated or recreated", fmt.Errorf("partition 3: %w: ...", worker.ErrLogRewritten), ExitHalted},
		{"partitions added under a declared keying", fmt.Errorf("%w: raw went from 2 to 3 partitions", worker.ErrPartitionsAdded), ExitHalted},
		{"no checkpoint restores", fmt.Errorf("partition x/y/3: %w", worker.ErrNoRestore), ExitHalted},
		{"dead-letter topic too small", fmt.Errorf("outbox: %w", sink.ErrDeadLetterTooSmall), ExitHalted},
		{"rollup table of another shape", fmt.Errorf("outputs[0]: %w", sink.ErrSchemaMismatch), ExitHalted},
		{"checkpoints of another spec", fmt.Errorf("restore: %w", state.ErrMismatch), ExitHalted},
		{"a partition failed", errors.New("partition x/y/3: flush kafka: broker gone"), ExitFailed},
		{"drained for termination", &ExitError{Code: ExitDrained}, ExitDrained},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var exit *ExitError
			if err := exitStatus(tc.err, log); !errors.As(err, &exit) || exit.Code != tc.want {
				t.Errorf("exitStatus(%v) = %v, want exit status %d", tc.err, err, tc.want)
			}
		})
	}
	if err := exitStatus(nil, log); err != nil {
		t.Errorf("exitStatus(nil) = %v", err)
	}
}
