// Package demo runs liveagg's whole job in one process, on nothing but Go: an in-process Kafka
// broker (franz-go's kfake), a file:// checkpoint store, the indoor-location event generator,
// and the real worker runtime running the example's multilevel pipeline: level 1 on the raw
// topic writes partial states to an intermediate topic, level 2 merges them into zone, floor
// and site rollups, level 3 into org rollups. Half-way it kills a level-1 worker the way a spot
// interruption without notice would (its memory is gone, nothing is saved), starts a
// replacement that restores from the checkpoints and replays, later does the same to a level-2
// worker, and at the end checks every rollup against a single-pass recomputation from the
// generated events.
//
// The demo is a user's first contact with liveagg, so it takes no shortcut around the runtime:
// workers join consumer groups, own partitions, checkpoint, and write through the same sinks
// and the same transactional Kafka outbox as on EC2. Only the broker is in-process, and the
// rollups go to files instead of Cassandra.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	indoorlocation "github.com/liveagg/liveagg/examples/indoor-location"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/spec"
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
	// Partitions of the raw and the intermediate topic (4), and Workers sharing level 1 (2).
	Partitions int
	Workers    int
	// NoKill skips the crashes and restores.
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
	Consumed      int64   // raw records applied by level 1, counted once (replays do not count twice)
	RecordsPerSec float64 // raw records applied per second, replays included
	Lag           int64   // raw records waiting for level 1
	Series        int64   // live series, all levels
	StateBytes    int64   // aggregation state, all levels
	Windows       int64   // rollup rows emitted by the levels that write rollups, replays included
	Checkpoints   int64
	DeadLettered  int64
	Levels        []LevelStat
}

// LevelStat is one spec's line in the live view.
type LevelStat struct {
	Spec    string
	Workers []string
	Records int64 // records in (raw records or partials), replays included
	Series  int64
	Emitted int64 // (series, window) rows emitted, partials included
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
	Windows    int // (series, window) rollups the recomputation expects, all specs
	Lost       int // expected but never emitted
	Duplicated int // emitted more than once
	Wrong      int // emitted with values that differ
	Unexpected int // emitted but not expected at all
	// PerSpec counts the verified rollups of each spec.
	PerSpec map[string]int
	// Differences lists the first differences found, for the report.
	Differences []string
	// DeadLetters counts the dead-letter topic's records by reason; ExpectedDead is what the
	// recomputation says they should be.
	DeadLetters, ExpectedDead map[string]int64
	// Partials counts the records of the intermediate topics, and their bytes.
	Partials, PartialBytes int64
	// Files are the sorted rollup files written to Out, one per rollup spec.
	Files []string
	// Top are the biggest org rollups of the largest window.
	Top []TopRow
	// Crashes says what each crash did.
	Crashes []string
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
	Key     string
	Window  string
	Count   int64
	Devices float64
	P50RSSI float64
}

const (
	rawTopic = "location-raw"
	dlqTopic = "indoor.dlq"
	// Event time advances 10 ms per record: 400,000 records cover about 67 minutes, enough
	// 1-minute and 15-minute windows to be worth verifying.
	stepMs = 10
	// upperLateness replaces the example's 5m allowed lateness above level 1. The demo runs
	// event time about a thousand times faster than the clock, so a level-1 worker that is
	// restarting falls minutes of event time behind in a second; on real time the example's
	// 5 minutes cover the spread between level-1 partitions.
	upperLateness = 3 * time.Hour
)

// pipeline is the demo's specs, level by level, with their outputs pointed at local files.
func pipeline(partsDir string) ([]*spec.Spec, error) {
	var specs []*spec.Spec
	for _, y := range indoorlocation.Specs() {
		s, err := spec.Parse(y)
		if err != nil {
			return nil, fmt.Errorf("demo: example spec: %w", err)
		}
		if s.Input.Format == spec.FormatPartials {
			s.AllowedLateness = spec.Duration(upperLateness)
		}
		for i, o := range s.Outputs {
			if o.Type == spec.OutputCassandra {
				s.Outputs[i] = spec.Output{Type: spec.OutputFile, Path: partsDir}
			}
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// Run runs the demo and reports to r; the error is for runs that could not complete, while a
// completed run with differences returns a Result whose OK is false.
func Run(ctx context.Context, o Options, r Reporter) (*Result, error) {
	o.defaults()
	start := time.Now()
	partsDir := filepath.Join(o.Out, "partitions")
	specs, err := pipeline(partsDir)
	if err != nil {
		return nil, err
	}
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
	if err := createTopics(ctx, kopts, specs, o.Partitions); err != nil {
		return nil, err
	}
	r.Event(fmt.Sprintf("in-process Kafka up: %s and the intermediate topics, %d partitions; checkpoints in %s", rawTopic, o.Partitions, ckptDir))

	var levels []*fleet
	for i, s := range specs {
		n := 1
		if i == 0 {
			n = o.Workers
		}
		f, err := newFleet(ctx, o, s, kopts, store, partsDir)
		if err != nil {
			return nil, err
		}
		defer f.stopAll()
		for j := range n {
			if err := f.start(fmt.Sprintf("%s-w%d", shortName(s.Name), j+1)); err != nil {
				return nil, err
			}
		}
		levels = append(levels, f)
	}
	r.Event(fmt.Sprintf("workers up: %d on level 1 (raw -> partials), 1 each on zone, floor and site rollups (level 2) and org rollups (level 3)", o.Workers))

	var rollups []rollup
	for _, s := range specs[1:] {
		if hasRollupOutput(s) {
			rollups = append(rollups, rollupOf(s))
		}
	}
	ref := newReference(o.Partitions, specs[0].AllowedLateness.Millis(), rollups)
	prod := &producer{o: o, ref: ref, kopts: kopts, ends: make([]int64, o.Partitions)}
	prodErr := make(chan error, 1)
	go func() { prodErr <- prod.run(ctx, start) }()

	// Watch, crash level 1 half-way and level 2 at three quarters, and wait until every
	// produced record is applied by level 1.
	var crashes []string
	crashAt := []struct {
		frac  float64
		level int
	}{{0.5, 0}, {0.75, 3}}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	failed := make(chan error, 1)
	for _, f := range levels {
		go func() {
			select {
			case err := <-f.failed:
				failed <- err
			case <-ctx.Done():
			}
		}()
	}
	producing := true
	snap := func() Snapshot { return snapshot(levels, prod, o, start) }
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-prodErr:
			if err != nil {
				return nil, fmt.Errorf("demo: producer: %w", err)
			}
			producing = false
			r.Event(fmt.Sprintf("producer done: %d records (%d generated late, %d malformed)", prod.produced.Load(), prod.late, prod.malformed))
		case err := <-failed:
			return nil, fmt.Errorf("demo: %w", err)
		case <-tick.C:
		}
		s := snap()
		r.Update(s)
		if !o.NoKill && len(crashAt) > 0 {
			// The progress bar's fraction: records for a counted run, time for a timed one (a
			// rate of -1, as fast as possible, gives no record target).
			if c, done := crashAt[0], fractionOf(s); done >= c.frac && s.Consumed > 0 {
				crashAt = crashAt[1:]
				msg, err := levels[c.level].crashAndReplace(r)
				if err != nil {
					return nil, err
				}
				crashes = append(crashes, msg)
			}
		}
		if !producing && levels[0].caughtUp(prod.ends) {
			break
		}
	}

	// The input is bounded: close every open window, level by level. Each level first
	// consumes everything the level below committed, then flushes.
	if err := levels[0].flushAll(ctx); err != nil {
		return nil, fmt.Errorf("demo: level 1 final flush: %w", err)
	}
	r.Event("level 1 consumed every raw record; its open windows flushed as partials")
	for _, f := range levels[1:] {
		ends, err := dataEnds(ctx, kopts, f.spec.Input.Topic)
		if err != nil {
			return nil, err
		}
		if err := f.waitCaughtUp(ctx, ends); err != nil {
			return nil, fmt.Errorf("demo: %s: %w", f.spec.Name, err)
		}
		if err := f.flushAll(ctx); err != nil {
			return nil, fmt.Errorf("demo: %s final flush: %w", f.spec.Name, err)
		}
	}
	r.Update(snap())
	r.Event("every level consumed and flushed; verifying")
	for _, f := range levels {
		f.stopAll()
	}

	res, err := verify(ctx, o, specs, ref, kopts, partsDir)
	if err != nil {
		return nil, err
	}
	res.Records, res.Elapsed, res.Crashes = prod.produced.Load(), time.Since(start), crashes
	return res, nil
}

func hasRollupOutput(s *spec.Spec) bool {
	for _, o := range s.Outputs {
		if o.Type == spec.OutputFile {
			return true
		}
	}
	return false
}

func shortName(spec string) string {
	if len(spec) > 7 && spec[:7] == "indoor-" {
		return spec[7:]
	}
	return spec
}

// createTopics makes the intermediate topics the specs write partials to, with the raw topic's
// partition count (2 for the small org-keyed one), and each spec's progress and dead-letter
// topics.
func createTopics(ctx context.Context, kopts []kgo.Opt, specs []*spec.Spec, partitions int) error {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, s := range specs {
		for _, o := range s.Outputs {
			if o.Type != spec.OutputKafka {
				continue
			}
			n := int32(partitions)
			if len(o.Key) == 1 {
				n = 2
			}
			if _, err := adm.CreateTopic(ctx, n, 1, nil, o.Topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("demo: create %s: %w", o.Topic, err)
			}
		}
	}
	return nil
}

// dataEnds reads a topic to its end with read_committed and returns, per partition, the offset
// after its last committed data record: where a consumer that applied everything stands
// (transaction markers take offsets too, so the high watermark is not it).
func dataEnds(ctx context.Context, kopts []kgo.Opt, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(append(kopts, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends := map[int32]int64{}
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fs.NumRecords() == 0 {
			return ends, nil
		}
		fs.EachRecord(func(r *kgo.Record) { ends[r.Partition] = max(ends[r.Partition], r.Offset+1) })
	}
}

func fractionOf(s Snapshot) float64 { f, _ := s.fraction(); return f }
