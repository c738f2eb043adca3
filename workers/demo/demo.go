// Package demo runs liveagg's whole job in one process, on nothing but Go: an in-process Kafka
// broker (franz-go's kfake), a file:// checkpoint store, the indoor-location event generator,
// and the real worker runtime running the example's specs. Half-way it kills a worker the way
// a spot interruption without notice would (its memory is gone, nothing is saved), starts a
// replacement that restores from the checkpoints and replays, and at the end checks every
// emitted rollup against a recomputation from the generated events.
//
// The demo is a user's first contact with liveagg, so it takes no shortcut around the runtime:
// workers join a consumer group, own partitions, checkpoint, write through the same sinks and
// the same transactional Kafka outbox as on EC2. Only the broker is in-process.
package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	indoorlocation "github.com/liveagg/liveagg/examples/indoor-location"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/gen"
	"github.com/liveagg/liveagg/workers/metrics"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/worker"
)

// Options shape a demo run. Zero fields take the defaults in parentheses.
type Options struct {
	// Records is the size of a fixed-size run (400,000 unless Duration is set).
	Records int64
	// Duration makes a timed run instead: produce for this long.
	Duration time.Duration
	// Rate is records produced per second (100,000; negative: as fast as possible).
	Rate int
	// Orgs is the number of orgs, Zipf-distributed (50).
	Orgs int
	// Out is where the rollup files go (liveagg-demo).
	Out string
	// Seed fixes the generated events: the same seed and size give byte-identical rollups.
	Seed uint64
	// Partitions of the raw topic (4) and Workers sharing them (2).
	Partitions int
	Workers    int
	// NoKill skips the half-way crash and restore.
	NoKill bool
	// Checkpoints is a folder for the file:// checkpoint store (a temporary one, removed after).
	Checkpoints string
	// Logger receives the workers' logs (discarded when nil).
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Records <= 0 && o.Duration <= 0 {
		o.Records = 400_000
	}
	if o.Rate == 0 {
		o.Rate = 100_000
	}
	if o.Orgs <= 0 {
		o.Orgs = 50
	}
	if o.Out == "" {
		o.Out = "liveagg-demo"
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Snapshot is what the live view shows, taken a few times a second.
type Snapshot struct {
	Elapsed       time.Duration
	Produced      int64
	Target        int64   // records of a fixed-size run (0 for a timed run)
	TimeDone      float64 // fraction of a timed run's duration gone
	Consumed      int64   // records applied, counted once (replays do not count twice)
	RecordsPerSec float64 // records applied per second, replays included
	Lag           int64
	Series        int64
	StateBytes    int64
	Windows       int64 // rollup rows emitted, replays included
	Checkpoints   int64
	DeadLettered  int64
	Workers       []string
}

// Reporter receives the run's progress.
type Reporter interface {
	Update(Snapshot)
	Event(msg string)
}

// Result is the verified outcome of a run.
type Result struct {
	Records    int64
	Elapsed    time.Duration
	Windows    int // (series, window) rollups the recomputation expects
	Lost       int // expected but never emitted
	Duplicated int // emitted more than once
	Wrong      int // emitted with values that differ
	Unexpected int // emitted but not expected at all
	// Differences lists the first differences found, for the report.
	Differences []string
	// DeadLetters counts the dead-letter topic's records by reason; ExpectedDead is what the
	// recomputation says they should be.
	DeadLetters, ExpectedDead map[string]int64
	// Files are the sorted rollup files written to Out.
	Files []string
	// Top are the biggest rollups of the largest window.
	Top []TopRow
	// Killed says what the half-way crash did ("" when there was none).
	Killed string
}

// OK says whether every rollup and every dead letter matched the recomputation.
func (r *Result) OK() bool {
	if r.Lost+r.Duplicated+r.Wrong+r.Unexpected > 0 {
		return false
	}
	for k, v := range r.ExpectedDead {
		if r.DeadLetters[k] != v {
			return false
		}
	}
	return len(r.DeadLetters) == len(r.ExpectedDead)
}

// TopRow is one line of the top-rollups table.
type TopRow struct {
	Org, Site, Zone string
	Window          string
	Count           int64
	Devices         float64
	P50RSSI         float64
}

const (
	rawTopic = "location-raw"
	dlqTopic = "indoor.dlq"
	// Event time advances 10 ms per record: 400,000 records cover about 67 minutes, enough
	// 1-minute and 15-minute windows to be worth verifying.
	stepMs = 10
)

// Run runs the demo and reports to r; the error is for runs that could not complete, while a
// completed run with differences returns a Result whose OK is false.
func Run(ctx context.Context, o Options, r Reporter) (*Result, error) {
	o.defaults()
	start := time.Now()
	s, err := demoSpec(o.Out)
	if err != nil {
		return nil, err
	}
	partsDir := filepath.Join(o.Out, "partitions")
	if err := os.RemoveAll(partsDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(partsDir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	ckptDir := o.Checkpoints
	if ckptDir == "" {
		if ckptDir, err = os.MkdirTemp("", "liveagg-demo-checkpoints-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(ckptDir)
	}
	store, err := checkpoint.Open("file://" + ckptDir)
	if err != nil {
		return nil, err
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(o.Partitions), rawTopic))
	if err != nil {
		return nil, fmt.Errorf("demo: in-process kafka: %w", err)
	}
	defer cluster.Close()
	kopts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	outbox := sink.NewKafka(kopts, nil, dlqTopic, s.Name+".progress")
	if err := outbox.EnsureTopics(ctx, int32(o.Partitions)); err != nil {
		return nil, fmt.Errorf("demo: topics: %w", err)
	}
	files, err := sink.NewFile(partsDir)
	if err != nil {
		return nil, err
	}
	r.Event(fmt.Sprintf("in-process Kafka up; topic %s with %d partitions; checkpoints in %s", rawTopic, o.Partitions, ckptDir))

	reg := prometheus.NewRegistry()
	fleet := &fleet{o: o, spec: s, kopts: kopts, store: store, sinks: []sink.Sink{files, outbox},
		metrics: worker.NewMetrics(reg), ctx: ctx, workers: map[string]*running{}}
	defer fleet.stopAll()
	for i := range o.Workers {
		if err := fleet.start(fmt.Sprintf("worker-%d", i+1)); err != nil {
			return nil, err
		}
	}
	r.Event(fmt.Sprintf("%d workers joined group liveagg.%s running spec %s", o.Workers, s.Name, s.Name))

	sizes := make([]int64, len(s.Windows))
	for i, w := range s.Windows {
		sizes[i] = w.Millis()
	}
	ref := newReference(o.Partitions, sizes, s.AllowedLateness.Millis())
	prod := &producer{o: o, ref: ref, kopts: kopts, ends: make([]int64, o.Partitions)}
	prodErr := make(chan error, 1)
	go func() { prodErr <- prod.run(ctx, start) }()

	// Watch, kill half-way, and wait until every produced record is applied.
	var killed string
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	mon := &monitor{reg: reg, last: time.Now(), next: make([]int64, o.Partitions)}
	producing := true
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-prodErr:
			if err != nil {
				return nil, fmt.Errorf("demo: producer: %w", err)
			}
			producing = false
			r.Event(fmt.Sprintf("producer done: %d records (%d late, %d malformed)", prod.produced.Load(), prod.late, prod.malformed))
		case err := <-fleet.failed:
			return nil, fmt.Errorf("demo: %w", err)
		case <-tick.C:
		}
		snap := mon.take(fleet, prod, o, start)
		r.Update(snap)
		half := o.Records / 2
		if o.Records <= 0 {
			half = int64(float64(prod.produced.Load()) * 0.5)
		}
		if !o.NoKill && killed == "" && snap.Consumed >= half && half > 0 &&
			(o.Records > 0 || time.Since(start) >= o.Duration/2) {
			var lost []int32
			killed, lost, err = fleet.crashAndReplace(r)
			if err != nil {
				return nil, err
			}
			mon.forget(lost)
		}
		if !producing && mon.caughtUp(prod.ends) {
			break
		}
	}

	// The input is bounded: close every window that is still open and checkpoint.
	if err := fleet.flushAll(ctx); err != nil {
		return nil, fmt.Errorf("demo: final flush: %w", err)
	}
	r.Update(mon.take(fleet, prod, o, start))
	r.Event("input consumed; every open window flushed and checkpointed")
	fleet.stopAll()

	res, err := verify(ctx, o, s, ref, kopts, partsDir)
	if err != nil {
		return nil, err
	}
	res.Records, res.Elapsed, res.Killed = prod.produced.Load(), time.Since(start), killed
	return res, nil
}

// demoSpec is the example's level-1 spec with its outputs pointed at files here: the
// aggregations, keys and windows are exactly the example's.
func demoSpec(out string) (*spec.Spec, error) {
	s, err := spec.Parse(indoorlocation.Level1)
	if err != nil {
		return nil, fmt.Errorf("demo: example spec: %w", err)
	}
	s.Outputs = []spec.Output{{Type: spec.OutputFile, Path: out}}
	return s, nil
}

// fleet is the demo's set of workers, each a worker.Worker with its own consumer-group
// membership, as separate processes would be.
type fleet struct {
	o       Options
	spec    *spec.Spec
	kopts   []kgo.Opt
	store   *checkpoint.Store
	sinks   []sink.Sink
	metrics *worker.Metrics
	ctx     context.Context
	failed  chan error

	mu      sync.Mutex
	workers map[string]*running
	order   []string
}

type running struct {
	w      *worker.Worker
	cancel context.CancelFunc
	done   chan error
}

func (f *fleet) start(id string) error {
	if f.failed == nil {
		f.failed = make(chan error, 8)
	}
	w, err := worker.New(worker.Config{
		WorkerID: id, Spec: f.spec, KafkaOpts: f.kopts, Checkpoints: f.store, Sinks: f.sinks,
		CheckpointInterval: 2 * time.Second, CheckpointRecords: 50_000, Metrics: f.metrics,
		Logger: f.o.Logger, SessionTimeout: 6 * time.Second, MaxPollRecords: 5_000,
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

func (f *fleet) live() []*running {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*running
	for _, id := range f.order {
		if rw := f.workers[id]; rw != nil {
			out = append(out, rw)
		}
	}
	return out
}

func (f *fleet) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, id := range f.order {
		if f.workers[id] != nil {
			out = append(out, id)
		}
	}
	return out
}

// crashAndReplace kills the first worker without letting it save anything, the way an
// instance lost without notice dies, and starts a replacement with empty memory.
func (f *fleet) crashAndReplace(r Reporter) (string, []int32, error) {
	ids := f.ids()
	if len(ids) == 0 {
		return "", nil, nil
	}
	victim := ids[0]
	f.mu.Lock()
	rw := f.workers[victim]
	delete(f.workers, victim)
	f.mu.Unlock()
	st := rw.w.Status()
	var parts []string
	var lost []int32
	var series int64
	for _, p := range st.Partitions {
		lost = append(lost, p.Partition)
		parts = append(parts, fmt.Sprintf("p%d@%d", p.Partition, p.NextOffset))
		series += int64(p.Series)
	}
	rw.cancel()
	<-rw.done
	msg := fmt.Sprintf("CRASH: killed %s holding %s (%d series in memory, unsaved since its last checkpoint)",
		victim, strings.Join(parts, " "), series)
	r.Event(msg)
	repl := victim + "b"
	if err := f.start(repl); err != nil {
		return "", nil, err
	}
	r.Event(fmt.Sprintf("%s started with empty memory: the lost partitions restore from their checkpoints and replay from the checkpointed offsets", repl))
	return msg, lost, nil
}

func (f *fleet) flushAll(ctx context.Context) error {
	// A rebalance may still be settling after the crash: flush until every partition is owned
	// and flushed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		owned := 0
		var errs []error
		for _, rw := range f.live() {
			owned += len(rw.w.Status().Partitions)
			if err := rw.w.FlushAll(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if owned == f.o.Partitions {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d partitions owned", owned, f.o.Partitions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *fleet) stopAll() {
	for _, rw := range f.live() {
		rw.cancel()
		<-rw.done
	}
	f.mu.Lock()
	clear(f.workers)
	f.mu.Unlock()
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
		part := int(e.Device % p.o.Partitions)
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

// monitor turns the workers' Prometheus metrics (the same ones operators scrape) and
// statuses into snapshots.
type monitor struct {
	reg         *prometheus.Registry
	last        time.Time
	lastRecords float64
	rate        float64
	next        []int64 // each partition's last known next offset (-1: restoring, unknown)
	owned       map[int32]bool
}

// forget marks the crashed worker's partitions as unknown until a new owner reports them:
// their progress since the last checkpoint is gone and will be replayed.
func (m *monitor) forget(parts []int32) {
	for _, p := range parts {
		m.next[p] = -1
	}
}

// caughtUp says whether every partition is owned and has applied every produced record.
func (m *monitor) caughtUp(ends []int64) bool {
	for p, end := range ends {
		if !m.owned[int32(p)] || m.next[p] < end {
			return false
		}
	}
	return true
}

func (m *monitor) take(f *fleet, p *producer, o Options, start time.Time) Snapshot {
	s := Snapshot{Elapsed: time.Since(start), Produced: p.produced.Load(), Target: o.Records, Workers: f.ids()}
	if o.Duration > 0 {
		s.TimeDone = min(1, float64(s.Elapsed)/float64(o.Duration))
	}
	m.owned = map[int32]bool{}
	for _, rw := range f.live() {
		for _, ps := range rw.w.Status().Partitions {
			m.owned[ps.Partition] = true
			if int(ps.Partition) < len(m.next) && ps.NextOffset >= 0 {
				m.next[ps.Partition] = ps.NextOffset
			}
			s.Lag += ps.Lag
			s.Series += int64(ps.Series)
			s.StateBytes += ps.StateBytes
		}
	}
	for _, n := range m.next {
		s.Consumed += max(n, 0)
	}
	fams, _ := m.reg.Gather()
	var records float64
	for _, mf := range fams {
		switch mf.GetName() {
		case metrics.RecordsIn.Prom:
			records = sum(mf)
		case metrics.WindowsEmitted.Prom:
			s.Windows = int64(sum(mf))
		case metrics.DeadLettered.Prom:
			s.DeadLettered = int64(sum(mf))
		case metrics.CheckpointDuration.Prom:
			for _, x := range mf.GetMetric() {
				s.Checkpoints += int64(x.GetHistogram().GetSampleCount())
			}
		}
	}
	if dt := time.Since(m.last).Seconds(); dt >= 0.9 {
		m.rate = (records - m.lastRecords) / dt
		m.last, m.lastRecords = time.Now(), records
	}
	s.RecordsPerSec = m.rate
	return s
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

// verify reads back every rollup the workers wrote and every dead letter, compares them with
// the recomputation, and writes the sorted rollup file.
func verify(ctx context.Context, o Options, s *spec.Spec, ref *reference, kopts []kgo.Opt, partsDir string) (*Result, error) {
	res := &Result{ExpectedDead: ref.dead, Windows: len(ref.rows)}
	var quantiles []float64
	accuracy := 0.01
	for _, a := range s.Aggregations {
		if a.Fn == spec.FnQuantiles {
			quantiles, accuracy = a.Quantiles, a.RelativeAccuracy
		}
	}
	seen := map[rowID]int{}
	largest := slices.Max(sizesOf(s))
	emitted := map[rowID]map[string]float64{}
	var lines [][]byte
	paths, _ := filepath.Glob(filepath.Join(partsDir, "*.jsonl"))
	for _, path := range paths {
		// Files are <spec>-<topic>-p<partition>.jsonl.
		var part int32
		if i := strings.LastIndex(path, "-p"); i >= 0 {
			n, err := strconv.ParseInt(strings.TrimSuffix(path[i+2:], ".jsonl"), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("demo: rollup file %s: no partition in its name", path)
			}
			part = int32(n)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := slices.Clone(sc.Bytes())
			lines = append(lines, line)
			id, vals, err := parseRow(line, part)
			if err != nil {
				return nil, fmt.Errorf("demo: %s: %w", path, err)
			}
			seen[id]++
			if id.Size == largest {
				emitted[id] = vals
			}
			if seen[id] > 1 {
				res.Duplicated++
				res.note(fmt.Sprintf("%v emitted %d times", id, seen[id]))
				continue
			}
			want := ref.rows[id]
			if want == nil {
				res.Unexpected++
				res.note(fmt.Sprintf("%v emitted but not expected (count %v)", id, vals["count"]))
				continue
			}
			if d := checkRow(id, vals, want, accuracy, quantiles); len(d) > 0 {
				res.Wrong++
				for _, x := range d {
					res.note(x)
				}
			}
		}
	}
	for id := range ref.rows {
		if seen[id] == 0 {
			res.Lost++
			res.note(fmt.Sprintf("%v never emitted", id))
		}
	}
	dead, err := readDeadLetters(ctx, kopts)
	if err != nil {
		return nil, err
	}
	res.DeadLetters = dead

	// One sorted file of every rollup: the same seed and size always give the same bytes,
	// whatever the crash interrupted.
	slices.SortFunc(lines, bytes.Compare)
	out := filepath.Join(o.Out, s.Name+".jsonl")
	if err := os.WriteFile(out, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	res.Files = append(res.Files, out)
	res.Top = top(emitted, 8)
	return res, nil
}

func (r *Result) note(d string) {
	if len(r.Differences) < 10 {
		r.Differences = append(r.Differences, d)
	}
}

func sizesOf(s *spec.Spec) []int64 {
	var out []int64
	for _, w := range s.Windows {
		out = append(out, w.Millis())
	}
	return out
}

// parseRow reads one emitted JSON row with encoding/json, independently of the engine.
func parseRow(line []byte, part int32) (rowID, map[string]float64, error) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return rowID{}, nil, fmt.Errorf("row %q: %w", line, err)
	}
	str := func(k string) string { v, _ := m[k].(string); return v }
	start, err := time.Parse(time.RFC3339, str("window_start"))
	if err != nil {
		return rowID{}, nil, fmt.Errorf("row %q: window_start: %w", line, err)
	}
	size, err := time.ParseDuration(str("window_size"))
	if err != nil {
		return rowID{}, nil, fmt.Errorf("row %q: window_size: %w", line, err)
	}
	id := rowID{Part: part, Org: str("org"), Site: str("site"), Zone: str("zone"), Size: size.Milliseconds(), Start: start.UnixMilli()}
	vals := map[string]float64{}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			vals[k] = f
		}
	}
	return id, vals, nil
}

// readDeadLetters counts the committed records of the dead-letter topic by their reason
// header: exactly-once covers dead letters too, so the counts must match exactly.
func readDeadLetters(ctx context.Context, kopts []kgo.Opt) (map[string]int64, error) {
	cl, err := kgo.NewClient(append(kopts, kgo.ConsumeTopics(dlqTopic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	counts := map[string]int64{}
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.NumRecords() == 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			reason := "unknown"
			for _, h := range r.Headers {
				if h.Key == "liveagg-reason" {
					reason = string(h.Value)
				}
			}
			if reason != "late" {
				reason = "malformed" // wrong type, missing field, bad JSON: all malformed input
			}
			counts[reason]++
		})
	}
	return counts, nil
}

// top picks the n emitted rollups with the most records.
func top(rows map[rowID]map[string]float64, n int) []TopRow {
	ids := make([]rowID, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b rowID) int {
		if ca, cb := rows[a]["count"], rows[b]["count"]; ca != cb {
			if ca > cb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.String(), b.String())
	})
	var out []TopRow
	for _, id := range ids[:min(n, len(ids))] {
		v := rows[id]
		out = append(out, TopRow{Org: id.Org, Site: id.Site, Zone: id.Zone, Window: fmtTime(id.Start) + " +" + fmtSize(id.Size),
			Count: int64(v["count"]), Devices: v["distinct_device"], P50RSSI: v["quantiles_rssi_p50"]})
	}
	return out
}

func fmtTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04") }
func fmtSize(ms int64) string {
	return strings.TrimSuffix((time.Duration(ms) * time.Millisecond).String(), "0s")
}
