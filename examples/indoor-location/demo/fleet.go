package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/gen"
	"github.com/liveagg/liveagg/workers/metrics"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/worker"
)

// fleet is the workers of one spec, each a worker.Worker with its own consumer-group
// membership, as separate processes would be. They share one Prometheus registry, the one an
// operator would scrape, which is where the live view reads its numbers.
type fleet struct {
	o       Options
	spec    *spec.Spec
	kopts   []kgo.Opt
	store   *checkpoint.Store
	sinks   []sink.Sink
	reg     *prometheus.Registry
	metrics *worker.Metrics
	ctx     context.Context
	failed  chan error

	mu      sync.Mutex
	workers map[string]*running
	order   []string
	// next is each partition's last known next offset (-1: its owner crashed; unknown until
	// a new owner restores it); owned says which partitions have a live owner.
	next  map[int32]int64
	owned map[int32]bool
	// rate of records in, from the registry's counter.
	lastAt      time.Time
	lastRecords float64
	rate        float64
}

type running struct {
	w      *worker.Worker
	cancel context.CancelFunc
	done   chan error
}

func newFleet(ctx context.Context, o Options, s *spec.Spec, kopts []kgo.Opt, store *checkpoint.Store, partsDir string) (*fleet, error) {
	outs, err := worker.KafkaOutputs(s)
	if err != nil {
		return nil, err
	}
	outbox := sink.NewKafka(kopts, outs, dlqTopic, s.Name+".progress")
	parts := int32(o.Partitions)
	if strings.HasSuffix(s.Input.Topic, "-org") {
		parts = 2
	}
	if err := outbox.EnsureTopics(ctx, s.Input.Topic, parts); err != nil {
		return nil, fmt.Errorf("demo: %s topics: %w", s.Name, err)
	}
	sinks := []sink.Sink{outbox}
	if hasRollupOutput(s) {
		files, err := sink.NewFile(partsDir)
		if err != nil {
			return nil, err
		}
		sinks = append([]sink.Sink{files}, sinks...)
	}
	reg := prometheus.NewRegistry()
	return &fleet{o: o, spec: s, kopts: kopts, store: store, sinks: sinks, reg: reg, metrics: worker.NewMetrics(reg),
		ctx: ctx, failed: make(chan error, 8), workers: map[string]*running{},
		next: map[int32]int64{}, owned: map[int32]bool{}, lastAt: time.Now()}, nil
}

func (f *fleet) start(id string) error {
	w, err := worker.New(worker.Config{
		WorkerID: id, Spec: f.spec, KafkaOpts: f.kopts, Checkpoints: f.store, Sinks: f.sinks,
		CheckpointInterval: 2 * time.Second, CheckpointRecords: 50_000, Metrics: f.metrics,
		Logger: f.o.Logger.With("worker", id), SessionTimeout: 6 * time.Second, MaxPollRecords: 5_000,
	})
	if err != nil {
		return fmt.Errorf("demo: %s: %w", id, err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	rw := &running{w: w, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := w.Run(ctx)
		rw.done <- err
		if err != nil {
			f.failed <- fmt.Errorf("%s: %w", id, err)
		}
	}()
	f.mu.Lock()
	f.workers[id] = rw
	f.order = append(f.order, id)
	f.mu.Unlock()
	return nil
}

func (f *fleet) live() (ids []string, ws []*running) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range f.order {
		if rw := f.workers[id]; rw != nil {
			ids, ws = append(ids, id), append(ws, rw)
		}
	}
	return ids, ws
}

// crashAndReplace kills the fleet's first worker without letting it save anything, the way an
// instance lost without notice dies, and starts a replacement with empty memory.
func (f *fleet) crashAndReplace(r Reporter) (string, error) {
	ids, ws := f.live()
	if len(ids) == 0 {
		return "", nil
	}
	// The worker holding the most partitions: the crash should cost something.
	victim, rw := ids[0], ws[0]
	st := rw.w.Status()
	for i := range ws[1:] {
		if other := ws[i+1].w.Status(); len(other.Partitions) > len(st.Partitions) {
			victim, rw, st = ids[i+1], ws[i+1], other
		}
	}
	var parts []string
	var series int64
	for _, p := range st.Partitions {
		parts = append(parts, fmt.Sprintf("p%d@%d", p.Partition, p.NextOffset))
		series += int64(p.Series)
	}
	rw.cancel()
	<-rw.done
	f.mu.Lock()
	delete(f.workers, victim)
	for _, p := range st.Partitions {
		f.next[p.Partition] = -1
	}
	f.mu.Unlock()
	msg := fmt.Sprintf("CRASH: killed %s (%s) holding %s, %d series in memory, unsaved since its last checkpoint",
		victim, f.spec.Name, strings.Join(parts, " "), series)
	r.Event(msg)
	repl := victim + "-new"
	if err := f.start(repl); err != nil {
		return "", err
	}
	r.Event(fmt.Sprintf("%s started with empty memory: the partitions restore from their checkpoints and replay from the checkpointed offsets", repl))
	return msg, nil
}

// observe reads the workers' statuses into next and owned, and returns them summed.
func (f *fleet) observe() (st LevelStat, lag, bytes int64) {
	ids, ws := f.live()
	st = LevelStat{Spec: f.spec.Name, Workers: ids}
	owned := map[int32]bool{}
	for _, rw := range ws {
		for _, ps := range rw.w.Status().Partitions {
			owned[ps.Partition] = true
			if ps.NextOffset >= 0 {
				f.mu.Lock()
				f.next[ps.Partition] = ps.NextOffset
				f.mu.Unlock()
			}
			lag += ps.Lag
			st.Series += int64(ps.Series)
			bytes += ps.StateBytes
		}
	}
	f.mu.Lock()
	f.owned = owned
	f.mu.Unlock()
	return st, lag, bytes
}

// caughtUp says whether every partition is owned and its owner has applied up to ends[p].
func (f *fleet) caughtUp(ends []int64) bool {
	f.observe()
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, end := range ends {
		if end > 0 && (!f.owned[int32(p)] || f.next[int32(p)] < end) {
			return false
		}
	}
	return true
}

func (f *fleet) waitCaughtUp(ctx context.Context, ends map[int32]int64) error {
	var list []int64
	for p, e := range ends {
		for int(p) >= len(list) {
			list = append(list, 0)
		}
		list[p] = e
	}
	deadline := time.Now().Add(time.Minute)
	for !f.caughtUp(list) {
		select {
		case err := <-f.failed:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not caught up with %v after a minute", ends)
		}
	}
	return nil
}

// flushAll closes every open window of every partition and checkpoints. A rebalance may still
// be settling after a crash: it flushes until every partition with input was owned and flushed.
func (f *fleet) flushAll(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, ws := f.live()
		var errs []error
		for _, rw := range ws {
			if err := rw.w.FlushAll(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		f.observe()
		f.mu.Lock()
		missing := 0
		for p, n := range f.next {
			if n != 0 && !f.owned[p] {
				missing++
			}
		}
		f.mu.Unlock()
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d partitions still without an owner", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *fleet) stopAll() {
	_, ws := f.live()
	for _, rw := range ws {
		rw.cancel()
		<-rw.done
	}
	f.mu.Lock()
	clear(f.workers)
	f.mu.Unlock()
}

// counters reads the fleet's Prometheus counters.
func (f *fleet) counters() (records, emitted, dead, checkpoints float64) {
	fams, _ := f.reg.Gather()
	for _, mf := range fams {
		switch mf.GetName() {
		case metrics.RecordsIn.Prom:
			records = sum(mf)
		case metrics.WindowsEmitted.Prom:
			emitted = sum(mf)
		case metrics.DeadLettered.Prom:
			dead = sum(mf)
		case metrics.CheckpointDuration.Prom:
			for _, x := range mf.GetMetric() {
				checkpoints += float64(x.GetHistogram().GetSampleCount())
			}
		}
	}
	return records, emitted, dead, checkpoints
}

func sum(mf *dto.MetricFamily) float64 {
	var t float64
	for _, m := range mf.GetMetric() {
		if c := m.GetCounter(); c != nil {
			t += c.GetValue()
		} else if g := m.GetGauge(); g != nil {
			t += g.GetValue()
		}
	}
	return t
}

func snapshot(levels []*fleet, p *producer, o Options, start time.Time) Snapshot {
	s := Snapshot{Elapsed: time.Since(start), Produced: p.produced.Load(), Target: o.Records}
	if o.Duration > 0 {
		s.TimeDone = min(1, float64(s.Elapsed)/float64(o.Duration))
	}
	for i, f := range levels {
		st, lag, bytes := f.observe()
		records, emitted, dead, ckpts := f.counters()
		st.Records, st.Emitted = int64(records), int64(emitted)
		s.Levels = append(s.Levels, st)
		s.Series += st.Series
		s.StateBytes += bytes
		s.DeadLettered += int64(dead)
		s.Checkpoints += int64(ckpts)
		if hasRollupOutput(f.spec) {
			s.Windows += int64(emitted)
		}
		if i == 0 {
			s.Lag = lag
			f.mu.Lock()
			for _, n := range f.next {
				s.Consumed += max(n, 0)
			}
			if dt := time.Since(f.lastAt).Seconds(); dt >= 0.9 {
				f.rate = (records - f.lastRecords) / dt
				f.lastAt, f.lastRecords = time.Now(), records
			}
			s.RecordsPerSec = f.rate
			f.mu.Unlock()
		}
	}
	return s
}

// producer writes the generated events to the raw topic, keyed by device, at the configured
// rate, and feeds the recomputation the same events in the same per-partition order.
type producer struct {
	o         Options
	ref       *reference
	kopts     []kgo.Opt
	produced  atomic.Int64
	late      int64
	malformed int64
	// ends are the records produced to each partition, read once run has returned.
	ends []int64
}

func (p *producer) run(ctx context.Context, start time.Time) error {
	cl, err := kgo.NewClient(append(p.kopts, kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	g := gen.New(gen.Config{Seed: p.o.Seed, Orgs: p.o.Orgs, StepMs: stepMs,
		LateFraction: 0.002, LateByMs: 5 * 60 * 1000, MalformedFraction: 0.001})
	var firstErr atomic.Value
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, err)
		}
	}
	var n int64
	for {
		if p.o.Records > 0 && n >= p.o.Records {
			break
		}
		if p.o.Duration > 0 && time.Since(start) >= p.o.Duration {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Pace in steps of 10 ms worth of records.
		if p.o.Rate > 0 && n%int64(max(1, p.o.Rate/100)) == 0 {
			if ahead := time.Duration(float64(n)/float64(p.o.Rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		e := g.Next()
		part := e.Device % p.o.Partitions
		p.ref.add(part, e)
		p.ends[part]++
		switch e.Kind {
		case gen.Late:
			p.late++
		case gen.Malformed:
			p.malformed++
		}
		cl.Produce(ctx, &kgo.Record{Topic: rawTopic, Partition: int32(part), Key: gen.Key(nil, e), Value: gen.AppendJSON(nil, e)}, promise)
		n++
		if n%1000 == 0 {
			if err := cl.Flush(ctx); err != nil {
				return err
			}
			p.produced.Store(n)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	p.produced.Store(n)
	return nil
}
