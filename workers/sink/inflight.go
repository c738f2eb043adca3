package sink

import (
	"context"
	"fmt"
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

// retryPolicy holds writes that fail for a transient or a configuration reason (Classify): a
// sink that is down or refuses every write holds its writes, retried with backoff until they
// succeed or the worker stops; the full semaphore blocks Write, the partition stops consuming,
// and nothing is dropped. A write refused for its row is handed to the write's reject function
// instead.
type retryPolicy struct {
	name     string
	obs      Observer
	min, max time.Duration
}

// inflight runs a writer's asynchronous writes with bounded concurrency, remembers the first
// error that ended a write (the worker stopping), and collects the rows refused for good: the
// Cassandra and S3 writers issue writes as windows arrive and wait for all of them at Flush. A
// full semaphore blocks Write, which is how a slow or absent sink pauses consumption.
type inflight struct {
	sem      chan struct{}
	retry    *retryPolicy
	wg       sync.WaitGroup
	mu       sync.Mutex
	err      error
	rejected []Rejection
}

func newInflight(concurrency int, retry *retryPolicy) *inflight {
	return &inflight{sem: make(chan struct{}, concurrency), retry: retry}
}

// goWrite runs write once a slot is free, or returns ctx's error while waiting for one. If the
// sink refuses the write for good, reject turns its error into the rows to dead-letter.
func (f *inflight) goWrite(ctx context.Context, write func() error, reject func(error) []Rejection) error {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.wg.Add(1)
	go func() {
		defer func() { <-f.sem; f.wg.Done() }()
		err := f.run(ctx, write)
		if err == nil {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if ctx.Err() == nil && Classify(err) == Rejected {
			f.rejected = append(f.rejected, reject(err)...)
			return
		}
		if f.err == nil {
			f.err = err
		}
	}()
	return nil
}

// run calls write until it succeeds, is rejected for good, or ctx ends.
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
		class := Classify(err)
		if ctx.Err() != nil || class == Rejected {
			if failed {
				r.obs.Settled(r.name, false)
			}
			return err
		}
		if class == Configuration {
			err = fmt.Errorf("%w (the sink refuses every write: check its credentials, permissions and schema; the partition holds until then)", err)
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

// takeRejections returns the rows refused since the last call. Call it after wait.
func (f *inflight) takeRejections() []Rejection {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rejected
	f.rejected = nil
	return r
}

// wait waits for every write and returns the first error.
func (f *inflight) wait() error {
	f.wg.Wait()
	return f.firstErr()
}
