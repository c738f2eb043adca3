// Package capacity holds what the engine measurably costs, so fleets are sized from numbers
// the benchmarks produced rather than from guesses: the Terraform provider's fleet plan and the
// docs use it. The figures come from workers/BENCHMARKS.md on a 2-core machine; re-measure and
// update them when the engine changes.
package capacity

import (
	"math"

	"github.com/liveagg/liveagg/workers/agg"
)

const (
	// EngineSecondsPerRecord is decode plus aggregate for one record on one core at a
	// million live series (BenchmarkIngest: 1.56 µs uniform).
	EngineSecondsPerRecord = 1.56e-6
	// WorkerEfficiency is the worker's records per CPU-second against the engine's, with the
	// real Kafka consumer, checkpoints and the outbox (BenchmarkWorkerThroughput: 0.77).
	WorkerEfficiency = 0.77
	// SlotBytes is the memory of one (series, window) slot of the benchmark layout: count, sum,
	// min, max, distinct and quantiles, with small sets inline (79 bytes measured).
	SlotBytes = 79
	// SketchBytes is a typical sketch's memory once a slot outgrows its inline values.
	SketchBytes = 400
	// SnapshotFactor is memory for checkpoint snapshots on top of the state: two buffers,
	// one uploading while the next fills, each about three quarters of the state.
	SnapshotFactor = 1.5
	// BaseBytes is a worker process without state: runtime, clients, buffers.
	BaseBytes = 256 << 20
)

// WorkerSecondsPerRecord is what one record costs a worker, on one core.
func WorkerSecondsPerRecord() float64 { return EngineSecondsPerRecord / WorkerEfficiency }

// SeriesBytes estimates the state of one live series of a layout with windows open window
// sizes: each size keeps the current window and, within the allowed lateness, the previous one
// (1.5 on average); functions with sketches are charged one when the slot is busy.
func SeriesBytes(l *agg.Layout, windows int) float64 {
	slot := float64(SlotBytes) + 8*float64(l.Stride+l.SmallStride) - 8*(6+4)
	slot = math.Max(slot, 32) + float64(l.NumHLL+l.NumDDS)*SketchBytes/4
	return 1.5 * float64(windows) * slot
}
