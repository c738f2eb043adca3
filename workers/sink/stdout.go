package sink

import (
	"bufio"
	"context"
	"io"
	"sync"

	"github.com/liveagg/liveagg/workers/emit"
)

// Stdout prints rows as JSON lines, for trying a spec out. It is at-least-once: a replay
// prints replayed windows again.
type Stdout struct {
	mu sync.Mutex
	w  *bufio.Writer
}

// NewStdout returns a sink printing to w.
func NewStdout(w io.Writer) *Stdout { return &Stdout{w: bufio.NewWriter(w)} }

// Name implements Sink.
func (s *Stdout) Name() string { return "stdout" }

// Close implements Sink.
func (s *Stdout) Close() error { return s.w.Flush() }

// Open implements Sink.
func (s *Stdout) Open(context.Context, PartitionKey, string) (Writer, error) { return s, nil }

// Write implements Writer.
func (s *Stdout) Write(_ context.Context, w *emit.Window) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var line []byte
	for i := range w.Rows {
		line = append(w.AppendJSON(line[:0], i), '\n')
		if _, err := s.w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

// Flush implements Writer.
func (s *Stdout) Flush(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "", s.w.Flush()
}
