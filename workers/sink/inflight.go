package sink

import (
	"context"
	"sync"
	"time"
)

// Observer hears about a sink that is failing and retrying, so the worker can say why
// consumption paused (metrics, status, logs).
type Observer interface {
	// Retrying reports a transient write failure that will be retried; first says it is the
	// write's first failure. Writes of several partitions fail and retry at once.
	Retrying(sink string, err error, first bool)
	// Settled reports that a write which had failed is over: written (ok), or given up
	// because the worker is stopping or the error turned out not to pass.
	Settled(sink string, ok bool)
}

// Observable sinks accept an Observer; the worker sets one on every sink that has it.
type Observable interface {
	Observe(Observer)
}

type nopObserver struct{}

func (nopObserver) Retrying(string, error, bool) {}
func (nopObserver) Settled(string, bool)         {}

// retryPolicy decides which write errors pass (a sink down, a timeout, throttling). Writes
// that fail with them are retried until they succeed or the worker stops: a sink that is down
// holds its writes, the full semaphore blocks Write, the partition stops consuming, and
// nothing is dropped.
type retryPolicy struct {
	name      string
	transient func(error) bool
	obs       Observer
	min, max  time.Duration
}

// inflight runs a writer's asynchronous writes with bounded concurrency and remembers the first
// error that is not transient: the Cassandra and S3 writers issue writes as windows arrive and
// wait for all of them at Flush. A full semaphore blocks Write, which is how a slow or absent
// sink pauses consumption.
type inflight struct {
	sem   chan struct{}
	retry *retryPolicy
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
}

func newInflight(concurrency int, retry *retryPolicy) *inflight {
	return &inflight{sem: make(chan struct{}, concurrency), retry: retry}
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
		if err := f.run(ctx, write); err != nil {
			f.mu.Lock()
			if f.err == nil {
				f.err = err
			}
			f.mu.Unlock()
		}
	}()
	return nil
}

// run calls write until it succeeds, fails for good, or ctx ends.
func (f *inflight) run(ctx context.Context, write func() error) error {
	r := f.retry
	backoff := r.min
	failed := false
	for {
		err := write()
		if err == nil {
			if failed {
				r.obs.Settled(r.name, true)
			}
			return nil
		}
		if ctx.Err() != nil || !r.transient(err) {
			if failed {
				r.obs.Settled(r.name, false)
			}
			return err
		}
		r.obs.Retrying(r.name, err, !failed)
		failed = true
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			r.obs.Settled(r.name, false)
			return err
		}
		backoff = min(2*backoff, r.max)
	}
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
