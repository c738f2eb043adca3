// Package sink writes closed windows where a spec's outputs say: Cassandra, S3, Kafka, local
// files or stdout. Every sink is exactly-once under replay, each in the way its store allows:
//
//   - Cassandra: one row per (series, window), so a replayed write overwrites itself.
//   - S3: one object per (spec, window, input partition), so a replayed put overwrites itself.
//   - Kafka: transactions. Outputs, dead letters and a progress marker for the partition go in
//     one transaction, committed before the checkpoint that covers them; after a crash the new
//     owner reads the committed marker and skips what the transaction already holds.
//   - Files: appended, with the file length in the checkpoint; a new owner truncates to it.
//
// A sink that cannot keep up blocks Write, which stops the partition's consumption: lag grows
// and metrics say why, but nothing is dropped and memory stays bounded.
package sink

import (
	"context"

	"github.com/liveagg/liveagg/workers/emit"
)

// PartitionKey identifies the input partition whose windows a writer receives.
type PartitionKey struct {
	Spec      string
	Topic     string
	Partition int32
}

// Writer receives one input partition's closed windows, in order.
type Writer interface {
	// Write hands over a closed window. It may block to apply backpressure.
	Write(ctx context.Context, w *emit.Window) error
	// Flush makes every window written so far durable and returns the sink's progress, which
	// the checkpoint stores and gives back to Open after a restore.
	Flush(ctx context.Context) (progress string, err error)
	// Close releases the writer; unflushed windows are abandoned (a replay writes them again).
	Close() error
}

// Rejection is one output row a sink refused for a reason that neither a retry nor a replay
// can fix: a value the store does not accept, a row too large for it. Such a row is set aside
// and dead-lettered, so that one row never stops its partition.
type Rejection struct {
	// Sink is the name of the sink that refused the row.
	Sink string
	// Window holds the row; Row is its index in Window.Rows.
	Window *emit.Window
	Row    int
	// Err is the store's answer.
	Err error
	// Value is the row as the sink rendered it, when it did (a partial state, whose window
	// carries no final values); nil renders the row as JSON.
	Value []byte
}

// Rejecter is a Writer that sets refused rows aside instead of failing. The worker takes them
// after each Flush and dead-letters them in the same checkpoint.
type Rejecter interface {
	// TakeRejections returns the rows refused since the last call.
	TakeRejections() []Rejection
}

// Sink opens writers for input partitions.
type Sink interface {
	// Name identifies the sink in checkpoints' progress, logs and metrics.
	Name() string
	// Open returns the writer for a partition, given the progress of the checkpoint the
	// partition was restored from ("" when none).
	Open(ctx context.Context, p PartitionKey, progress string) (Writer, error)
	// Close releases the sink's clients.
	Close() error
}
