package sink

import (
	"context"
	"sync"
)

// inflight runs a writer's asynchronous writes with bounded concurrency and remembers the first
// error: the Cassandra and S3 writers issue writes as windows arrive and wait for all of them at
// Flush. A full semaphore blocks Write, which is how a slow sink pauses consumption.
type inflight struct {
	sem chan struct{}
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func newInflight(concurrency int) *inflight {
	return &inflight{sem: make(chan struct{}, concurrency)}
}

// goWrite runs write once a slot is free, or returns ctx's error while waiting for one.
func (f *inflight) goWrite(ctx context.Context, write func() error) error {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.wg.Add(1)
	go func() {
		defer func() { <-f.sem; f.wg.Done() }()
		if err := write(); err != nil {
			f.mu.Lock()
			if f.err == nil {
				f.err = err
			}
			f.mu.Unlock()
		}
	}()
	return nil
}

// firstErr is the first failed write's error, if any.
func (f *inflight) firstErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// wait waits for every write and returns the first error.
func (f *inflight) wait() error {
	f.wg.Wait()
	return f.firstErr()
}
