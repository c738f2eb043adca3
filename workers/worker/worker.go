// Package worker is liveagg's spot-instance worker runtime: it joins a Kafka consumer group
// (cooperative-sticky), owns the state of the partitions assigned to it, applies their
// records, hands closed windows to the sinks, and checkpoints each partition's state with the
// offset it reflects.
//
// The checkpoint, not the consumer group's committed offset, is the source of truth: when a
// partition is assigned, the worker claims it in the checkpoint store (fencing any earlier
// owner), restores the newest readable checkpoint and seeks to its offset; committed offsets
// only mirror checkpoints so lag can be monitored. On revocation an owner finishes the batch it
// holds, checkpoints, and lets go. Each partition has one goroutine, its owner; the poll loop
// only routes batches.
//
// A failure the worker cannot repair in place (a sink that keeps failing, an offset lost to
// retention under the stop policy) ends Run with an error, and the process exits: the
// supervisor restarts it, and the restart replays from the last checkpoint.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/partial"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
)

// Policies for an offset to resume from that Kafka no longer has (retention passed it during
// an outage, or while the worker lagged): stop the worker, or resume from the earliest offset
// Kafka still has.
const (
	MissingOffsetStop     = "stop"
	MissingOffsetEarliest = "earliest"
)

// ErrOffsetLost is returned by Run when the offset to resume from is gone and the policy is stop.
var ErrOffsetLost = errors.New("offset to resume from is no longer in Kafka")

// ErrLogRewritten is returned by Run when a partition's log no longer holds what the worker
// applied: the topic was truncated or recreated, or an unclean leader election lost records
// and will reuse their offsets. No restart point avoids counting records twice; an operator
// must decide.
var ErrLogRewritten = errors.New("the partition's log no longer holds what the worker applied")

// ErrPartitionsAdded is returned by Run when partitions are added to the input topic of a spec
// that declares its input's keying (one stage): the producers' partitioner now sends some keys
// to other partitions, and a series moved mid-window would have its window written by two
// partitions, the second overwriting the first. The worker stops before that happens; running
// the spec in two stages (no partitioned_by) merges a series from any partitions.
var ErrPartitionsAdded = errors.New("partitions were added to the input topic of a spec that declares its keying")

// ErrNoRestore is returned by Run when a partition has checkpoints and none of them restores
// (damaged, or written by an incompatible build): starting empty would replay from the log's
// start and overwrite good rollups, so the worker stops for an operator.
var ErrNoRestore = errors.New("no checkpoint of the partition restores")

// Config is a worker's wiring. The config package builds it from a file.
type Config struct {
	WorkerID string
	Spec     *spec.Spec
	// KafkaOpts carry the brokers and their auth; the worker adds its group options.
	KafkaOpts []kgo.Opt
	Group     string
	// Checkpoints is where partition state goes.
	Checkpoints *checkpoint.Store
	// CheckpointInterval and CheckpointRecords trigger a partition's checkpoint, whichever
	// comes first (defaults 30s and 2,000,000 records).
	CheckpointInterval time.Duration
	CheckpointRecords  int64
	// OnMissingOffset is MissingOffsetStop (default) or MissingOffsetEarliest.
	OnMissingOffset string
	// Sinks receive closed windows; the Kafka outbox (dead letters, Kafka outputs, progress)
	// is one of them.
	Sinks  []sink.Sink
	Logger *slog.Logger
	// Metrics, if set, receives the worker's measurements.
	Metrics *Metrics
	// MaxPollRecords bounds one poll (default 10,000).
	MaxPollRecords int
	// PoisonAfter is how many owners in a row may fail at the same record (counted in the
	// partition's checkpoint manifest, across restarts) before the record is treated as
	// poison: dead-lettered, logged, and passed (default 3). Transient failures do not count.
	PoisonAfter int
	// Stage is the worker's stage in a two-stage pipeline (1 or 2), 0 for a spec run in one;
	// Source is then the spec the stages derive from (spec.Spec.Stages).
	Stage  int
	Source *spec.Spec
	// SessionTimeout is how long the group waits for a silent member before moving its
	// partitions (default 10s: an instance that vanishes without a drain is replaced fast).
	SessionTimeout time.Duration
}

// Worker runs one spec's partitions.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	layout  *agg.Layout
	fp      uint64
	sinks   []sink.Sink
	metrics *Metrics
	health  *sinkHealth
	// states says whether emitted windows carry encoded states (the spec has partial outputs),
	// values whether they carry final values (it has other outputs).
	states, values bool

	cl     *kgo.Client
	runCtx context.Context
	cancel context.CancelCauseFunc

	// Totals over the worker's life, for the CloudWatch publisher's per-interval deltas.
	totalRecords, totalDead, busyNanos, totalSinkErrors, totalIdle atomic.Int64
	deadLetters                                                    *deadLetterLog
	// partitionedBy is the positions in the spec's key of input.partitioned_by, nil when the
	// records are not checked against it.
	partitionedBy []int
	// smallestWindow is the spec's smallest window size, ms.
	smallestWindow int64

	mu       sync.Mutex
	owners   map[int32]*owner
	draining bool
	lag      map[int32]int64
}

// New validates the configuration and prepares a worker; Run starts it.
func New(cfg Config) (*Worker, error) {
	if cfg.Spec == nil || cfg.Checkpoints == nil {
		return nil, errors.New("worker: a spec and a checkpoint store are required")
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 30 * time.Second
	}
	if cfg.CheckpointRecords <= 0 {
		cfg.CheckpointRecords = 2_000_000
	}
	switch cfg.OnMissingOffset {
	case "":
		cfg.OnMissingOffset = MissingOffsetStop
	case MissingOffsetStop, MissingOffsetEarliest:
	default:
		return nil, fmt.Errorf("worker: on_missing_offset %q is not stop or earliest", cfg.OnMissingOffset)
	}
	if cfg.Group == "" {
		cfg.Group = "liveagg." + cfg.Spec.Name
	}
	if cfg.PoisonAfter <= 0 {
		cfg.PoisonAfter = 3
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = 10_000
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	layout, err := agg.LayoutOf(cfg.Spec)
	if err != nil {
		return nil, err
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	// The worker id is the caller's to put on its logger: the process's other parts (the
	// checkpoint store, the spec and spot watchers) log with it too.
	log := cfg.Logger.With("spec", cfg.Spec.Name)
	health := newSinkHealth(log, m)
	for _, s := range cfg.Sinks {
		if o, ok := s.(sink.Observable); ok {
			o.Observe(health)
		}
	}
	states, values := false, false
	for _, o := range cfg.Spec.Outputs {
		states = states || o.Partial
		values = values || !o.Partial
	}
	// Sinks not declared as outputs (a test's file sink, the demo's) read values too.
	for _, s := range cfg.Sinks {
		if _, outbox := s.(*sink.Kafka); !outbox {
			values = true
		}
	}
	// A declared partitioning within the key is checked record by record: the positions of
	// its fields in the decoded key.
	var partitionedBy []int
	if in := cfg.Spec.Input; in.Format == spec.FormatJSON && len(in.PartitionedBy) > 0 {
		for _, f := range in.PartitionedBy {
			if i := slices.Index(cfg.Spec.Key, f); i >= 0 {
				partitionedBy = append(partitionedBy, i)
			} else {
				partitionedBy = nil // partial outputs only: any partitioning merges right
				break
			}
		}
	}
	smallest := cfg.Spec.Windows[0].Millis()
	for _, win := range cfg.Spec.Windows {
		smallest = min(smallest, win.Millis())
	}
	w := &Worker{
		partitionedBy: partitionedBy, smallestWindow: smallest,
		cfg: cfg, log: log, states: states, values: values,
		layout: layout, fp: state.Fingerprint(cfg.Spec, layout), sinks: cfg.Sinks, metrics: m, health: health,
		owners: map[int32]*owner{}, lag: map[int32]int64{}, deadLetters: newDeadLetterLog(time.Minute),
	}
	health.errors = &w.totalSinkErrors
	return w, nil
}

// Run consumes until ctx ends, Drain completes, or a partition fails.
func (w *Worker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock() // Drain comes from other goroutines (signals, the spot notice, the admin API)
	w.runCtx, w.cancel = ctx, cancel
	w.mu.Unlock()
	topic := w.cfg.Spec.Input.Topic
	opts := append([]kgo.Opt{}, w.cfg.KafkaOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(w.cfg.Group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(w.cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, w.cfg.SessionTimeout/5)),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come through so that owners move past them: a partition whose
		// log ends with one is then seen to be read to its end (see idleness).
		kgo.KeepControlRecords(),
		// Never reset silently: a fetch that falls off the log comes back as OffsetOutOfRange
		// and goes through outOfRange and the OnMissingOffset policy.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.OnPartitionsAssigned(w.assigned),
		kgo.AdjustFetchOffsetsFn(w.adjustOffsets),
		kgo.OnPartitionsRevoked(w.revoked),
		kgo.OnPartitionsLost(w.lost),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("worker: kafka client: %w", err)
	}
	w.mu.Lock()
	w.cl = cl
	w.mu.Unlock()
	defer cl.Close()
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); w.refreshLag(lagCtx, cl, 10*time.Second) }()
	defer func() { stopLag(); <-lagDone }() // before the client closes: the refresher uses it
	w.log.Info("worker started", "topic", topic, "group", w.cfg.Group, "checkpoints", w.cfg.Checkpoints.Location())
	if s := w.cfg.Spec; w.cfg.Stage == 0 && s.NeedsRepartition() {
		w.log.Warn("running in one stage a spec whose input is not declared partitioned within its key: rollups are right only if the topic's producers "+
			"key every record by a subset of the key; the liveagg worker command runs such a spec in two stages", "key", s.Key, "partitioned_by", s.Input.PartitionedBy)
	}

	// With BlockRebalanceOnPoll every poll must be followed by AllowRebalance, the last one
	// too: Close leaves the group, and leaving is a rebalance.
	defer cl.AllowRebalance()
	for {
		fs := cl.PollRecords(ctx, w.cfg.MaxPollRecords)
		if fs.IsClientClosed() || ctx.Err() != nil {
			cl.AllowRebalance()
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			var lost *kgo.ErrDataLoss
			switch {
			case errors.Is(err, kerr.OffsetOutOfRange):
				w.outOfRange(ctx, cl, p)
			case errors.As(err, &lost):
				// The log was truncated under the worker (an unclean leader election): records
				// it applied are gone and new ones will take their offsets, which apply would
				// skip as already seen. Nothing safe to do but stop and say so.
				w.fail(fmt.Errorf("worker: partition %d: %w: %w: records the worker applied are no longer in Kafka and their offsets will be reused; "+
					"stopping rather than skip or count records twice", p, ErrLogRewritten, lost))
			case !errors.Is(err, context.Canceled):
				w.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			w.mu.Lock()
			o := w.owners[p.Partition]
			var lag int64
			if len(p.Records) > 0 {
				lag = p.HighWatermark - (p.Records[len(p.Records)-1].Offset + 1)
				w.lag[p.Partition] = lag
			}
			w.mu.Unlock()
			if o == nil || len(p.Records) == 0 {
				return
			}
			w.metrics.lag(p.Partition, lag)
			select {
			case o.in <- p.Records:
			case <-o.done:
			case <-ctx.Done():
			}
		})
		cl.AllowRebalance()
	}
	err = context.Cause(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, errDrained) {
		err = nil
	}
	// Stop every owner: a cancelled context means shutdown without a final checkpoint; the
	// last periodic checkpoint plus replay covers what was not saved.
	w.mu.Lock()
	owners := w.owners
	w.owners = map[int32]*owner{}
	w.mu.Unlock()
	for _, o := range owners {
		<-o.done
	}
	return err
}

var errDrained = errors.New("drained")

// refreshLag measures each owned partition's lag from the broker's end offset (the last
// stable offset, as the worker reads committed records) and what the owner has applied, every
// interval. The fetch loop updates lag only when it hands records over, and stops doing so
// exactly when lag matters: a sink that is down holds the owner, the owner holds the fetch
// loop, and the lag it last reported would freeze while the real one grows. With an idle
// timeout it also confirms the partitions that have nothing more to read (see idleness).
func (w *Worker) refreshLag(ctx context.Context, cl *kgo.Client, interval time.Duration) {
	adm := kadm.NewClient(cl)
	topic := w.cfg.Spec.Input.Topic
	idle := w.cfg.Spec.Input.IdleTimeout.Std()
	if idle > 0 && w.cfg.Spec.Input.Format != spec.FormatPartials {
		interval = min(interval, idleRefresh(idle))
	} else {
		idle = 0
	}
	// The partition count the worker started with, for a spec that declares its keying.
	partitions := 0
	count := func(ends kadm.ListedOffsets) (n int) {
		ends.Each(func(o kadm.ListedOffset) { n = max(n, int(o.Partition)+1) })
		return n
	}
	if w.partitionedBy != nil {
		if ends, err := adm.ListCommittedOffsets(ctx, topic); err == nil {
			partitions = count(ends)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		owners := make(map[int32]*owner, len(w.owners))
		maps.Copy(owners, w.owners)
		w.mu.Unlock()
		// What the owners had applied before the broker is asked: a record applied meanwhile
		// only makes a partition look less caught up than it is, never more.
		applied := make(map[int32]int64, len(owners))
		for p, o := range owners {
			o.mu.Lock()
			applied[p] = o.stat.NextOffset
			o.mu.Unlock()
		}
		ends, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			continue // the next tick tries again; the broker may be away
		}
		if n := count(ends); w.partitionedBy != nil && partitions > 0 && n > partitions {
			w.log.Error("PARTITIONS ADDED to the input topic of a spec that declares its keying: stopping before a series moved mid-window is written twice",
				"topic", topic, "from", partitions, "to", n, "partitioned_by", w.cfg.Spec.Input.PartitionedBy)
			w.fail(fmt.Errorf("%w: %s went from %d to %d partitions; the producers now send some keys elsewhere. Remove input.partitioned_by "+
				"so the spec runs in two stages (which merge a series from any partitions), then restart the workers", ErrPartitionsAdded, topic, partitions, n))
			return
		} else if partitions == 0 {
			partitions = n
		}
		var highs, starts kadm.ListedOffsets
		if idle > 0 {
			highs, err = adm.ListEndOffsets(ctx, topic)
			if err == nil {
				starts, err = adm.ListStartOffsets(ctx, topic)
			}
			if err != nil {
				highs = nil // no confirmation this time
			}
		}
		now := time.Now()
		for p, o := range owners {
			end, ok := ends.Lookup(topic, p)
			if !ok || end.Err != nil {
				o.idle.reset()
				continue
			}
			if a := applied[p]; a >= 0 {
				// Only for a partition still owned by o (as the idle gauge below): one
				// released while the broker was asked has had its gauges removed, and setting
				// them again would leave stale series behind for good.
				lag := max(0, end.Offset-a)
				w.mu.Lock()
				if w.owners[p] == o {
					w.lag[p] = lag
					w.metrics.lag(p, lag)
				}
				w.mu.Unlock()
			}
			if highs == nil {
				continue
			}
			high, ok1 := highs.Lookup(topic, p)
			start, ok2 := starts.Lookup(topic, p)
			a := applied[p]
			caughtUp := ok1 && ok2 && high.Err == nil && start.Err == nil && high.Offset == end.Offset && // no transaction open
				(a >= end.Offset || (a < 0 && start.Offset == end.Offset)) // all read, or nothing ever to read
			if caughtUp {
				o.idle.confirm(a, end.Offset, now)
			} else {
				o.idle.reset()
			}
			w.mu.Lock()
			if w.owners[p] == o {
				w.metrics.idle(p, caughtUp)
			}
			w.mu.Unlock()
		}
	}
}

// fail stops the worker with err.
func (w *Worker) fail(err error) { w.cancel(err) }

func (w *Worker) newOwner(p int32) (*owner, error) {
	key := checkpoint.Key{Spec: w.cfg.Spec.Name, Topic: w.cfg.Spec.Input.Topic, Partition: p}
	o := &owner{
		w: w, key: key, log: w.log.With("partition", p), fp: w.fp,
		in: make(chan []*kgo.Record, 2), ctl: make(chan control), done: make(chan struct{}),
		stat: PartitionStatus{Partition: p},
	}
	if w.cfg.Spec.Input.Format == spec.FormatPartials {
		o.proj, o.sources = partial.NewProjection(w.cfg.Spec.Key), partial.NewWatermarks()
		return o, nil
	}
	dec, err := record.NewDecoder(w.cfg.Spec)
	if err != nil {
		return nil, err
	}
	o.dec, o.rec = dec, dec.NewRecord()
	o.partitionedBy = w.partitionedBy
	return o, nil
}

func (w *Worker) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	w.log.Info("partitions assigned", "partitions", assigned[w.cfg.Spec.Input.Topic])
}

// outOfRange handles a fetch that fell off the log while the worker ran. Either retention
// deleted records before the worker read them (it lagged by more than the topic keeps), the
// same loss as a checkpoint behind the log start, which follows OnMissingOffset; or the log
// no longer reaches what the worker has applied (a truncated or recreated topic), from which
// no restart point avoids counting twice, so the worker stops. The partition fetches nothing
// until this sets its offset or stops the worker.
func (w *Worker) outOfRange(ctx context.Context, cl *kgo.Client, p int32) {
	topic := w.cfg.Spec.Input.Topic
	w.mu.Lock()
	o := w.owners[p]
	w.mu.Unlock()
	if o == nil {
		return // released meanwhile; its next owner restores from the checkpoint
	}
	o.mu.Lock()
	applied := o.stat.NextOffset
	o.mu.Unlock()
	start, end, err := w.logBounds(ctx, cl, p)
	if err != nil {
		w.fail(fmt.Errorf("worker: partition %d: fetch offset out of range, and its log bounds could not be listed: %w", p, err))
		return
	}
	switch {
	case applied < 0:
		// Nothing applied and no checkpoint: it was to start at the log start anyway, and
		// retention moved that start while it asked.
		w.log.Info("log start moved before the first fetch; starting at the new one", "partition", p, "log_start", start)
		cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {p: {Epoch: -1, Offset: start}}})
		return
	case applied >= start:
		w.fail(fmt.Errorf("worker: partition %d: %w: fetch offset out of range with records up to %d applied and the log at %d-%d: "+
			"the topic was truncated or recreated, and no restart point avoids counting records twice", p, ErrLogRewritten, applied, start, end))
		return
	}
	w.metrics.offsetLost(p)
	o.setStat(func(st *PartitionStatus) {
		st.OffsetLost = fmt.Sprintf("fell behind retention: applied up to %d, log starts at %d", applied, start)
	})
	w.log.Error("OFFSET LOST TO RETENTION WHILE RUNNING: the worker lagged by more than the topic keeps; records between its position and the log start are gone",
		"partition", p, "applied_offset", applied, "log_start", start, "missing_records_at_most", start-applied, "policy", w.cfg.OnMissingOffset)
	if w.cfg.OnMissingOffset == MissingOffsetStop {
		w.fail(fmt.Errorf("partition %d: %w (lagged behind retention: applied up to %d, log start %d)", p, ErrOffsetLost, applied, start))
		return
	}
	cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {p: {Epoch: -1, Offset: start}}})
}

// logBounds lists partition p's start and end offsets, asking again for a while when a
// broker is briefly without a leader for it.
func (w *Worker) logBounds(ctx context.Context, cl *kgo.Client, p int32) (start, end int64, err error) {
	topic := w.cfg.Spec.Input.Topic
	adm := kadm.NewClient(cl)
	for attempt := 1; ; attempt++ {
		start, end, err = func() (int64, int64, error) {
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			starts, err := adm.ListStartOffsets(lctx, topic)
			if err != nil {
				return 0, 0, err
			}
			ends, err := adm.ListEndOffsets(lctx, topic)
			if err != nil {
				return 0, 0, err
			}
			s, ok1 := starts.Lookup(topic, p)
			e, ok2 := ends.Lookup(topic, p)
			switch {
			case !ok1 || !ok2:
				return 0, 0, fmt.Errorf("partition %d not listed", p)
			case s.Err != nil || e.Err != nil:
				return 0, 0, cmp.Or(s.Err, e.Err)
			}
			return s.Offset, e.Offset, nil
		}()
		if err == nil || attempt == 5 || ctx.Err() != nil {
			return start, end, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

// adjustOffsets runs after assignment and before fetching: it restores each newly assigned
// partition from its checkpoint and returns the checkpoint's offset as where to start.
func (w *Worker) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	topic := w.cfg.Spec.Input.Topic
	parts := offsets[topic]
	if len(parts) == 0 {
		return offsets, nil
	}
	type result struct {
		p      int32
		o      *owner
		offset int64
		err    error
	}
	results := make(chan result, len(parts))
	for p := range parts {
		go func() {
			o, err := w.newOwner(p)
			if err != nil {
				results <- result{p: p, err: err}
				return
			}
			start := time.Now()
			off, err := o.restore(ctx)
			w.metrics.restored(p, time.Since(start))
			results <- result{p: p, o: o, offset: off, err: err}
		}()
	}
	restored := map[int32]result{}
	var firstErr error
	for range parts {
		r := <-results
		if r.err != nil {
			w.log.Error("restore failed", "partition", r.p, "err", r.err)
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		restored[r.p] = r
	}
	if firstErr != nil {
		for _, r := range restored {
			r.o.closeWriters()
		}
		w.fail(fmt.Errorf("worker: restore: %w", firstErr))
		return offsets, firstErr
	}
	// A checkpointed offset below the log start was lost to retention: say so loudly.
	starts, err := kadm.NewClient(w.cl).ListStartOffsets(ctx, topic)
	if err != nil {
		w.fail(fmt.Errorf("worker: list start offsets: %w", err))
		return offsets, err
	}
	out := map[int32]kgo.Offset{}
	for p, r := range restored {
		off := r.offset
		if s, ok := starts.Lookup(topic, p); ok && s.Err == nil && off >= 0 && off < s.Offset {
			w.metrics.offsetLost(p)
			r.o.setStat(func(st *PartitionStatus) {
				st.OffsetLost = fmt.Sprintf("checkpoint at %d, log starts at %d", off, s.Offset)
			})
			w.log.Error("CHECKPOINTED OFFSET LOST TO RETENTION: records between the checkpoint and the log start are gone",
				"partition", p, "checkpoint_offset", off, "log_start", s.Offset, "missing_records", s.Offset-off, "policy", w.cfg.OnMissingOffset)
			if w.cfg.OnMissingOffset == MissingOffsetStop {
				for _, r := range restored {
					r.o.closeWriters()
				}
				err := fmt.Errorf("partition %d: %w (checkpoint %d, log start %d)", p, ErrOffsetLost, off, s.Offset)
				w.fail(err)
				return offsets, err
			}
			off = s.Offset
			r.o.nextOffset = off
		}
		if off < 0 {
			out[p] = kgo.NewOffset().AtStart()
		} else {
			out[p] = kgo.NewOffset().At(off).WithEpoch(-1)
		}
	}
	w.mu.Lock()
	for p, r := range restored {
		w.owners[p] = r.o
		go r.o.run(w.runCtx)
	}
	w.mu.Unlock()

	offsets[topic] = out
	return offsets, nil
}

// revoked checkpoints and releases partitions the group moved elsewhere.
func (w *Worker) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	saved := w.release(ctx, revoked[w.cfg.Spec.Input.Topic], ctlStop)
	if len(saved) == 0 {
		return
	}
	// Mirror the final checkpoints into the group before the partitions leave: the mirror
	// commit each save issues is asynchronous, and on a drain it would reach the broker after
	// the member left the group and be refused, leaving the group's offsets behind the
	// checkpoints (and every lag reader of the group seeing lag that is not there).
	offsets := map[int32]kgo.EpochOffset{}
	for p, off := range saved {
		offsets[p] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	var commitErr error
	cl.CommitOffsetsSync(context.WithoutCancel(ctx), map[string]map[int32]kgo.EpochOffset{w.cfg.Spec.Input.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			commitErr = err
		})
	if commitErr != nil {
		w.log.Warn("mirroring the released partitions' checkpoints into the group failed; lag readers of the group may read high", "err", commitErr)
	}
}

// lost drops partitions whose ownership lapsed (session expiry): no checkpoint, since a newer
// owner may already have claimed them and would fence it anyway.
func (w *Worker) lost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	w.release(ctx, lost[w.cfg.Spec.Input.Topic], ctlAbandon)
}

// release stops the owners of parts (checkpointing them for ctlStop) and returns the offsets of
// the checkpoints they stand at.
func (w *Worker) release(ctx context.Context, parts []int32, kind controlKind) map[int32]int64 {
	var wg sync.WaitGroup
	var savedMu sync.Mutex
	saved := map[int32]int64{}
	for _, p := range parts {
		w.mu.Lock()
		o := w.owners[p]
		delete(w.owners, p)
		w.mu.Unlock()
		if o == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := o.request(context.WithoutCancel(ctx), kind)
			if err != nil {
				o.log.Error("release checkpoint failed; the next owner replays from the previous checkpoint", "err", err)
			}
			<-o.done
			if err == nil && kind == ctlStop && o.ckptOffset >= 0 {
				savedMu.Lock()
				saved[p] = o.ckptOffset // read after the owner's goroutine ended
				savedMu.Unlock()
			}
			w.mu.Lock()
			if w.owners[p] == nil { // not assigned back meanwhile
				delete(w.lag, p)
				w.metrics.released(p)
			}
			w.mu.Unlock()
		}()
	}
	wg.Wait()
	if len(parts) > 0 {
		w.log.Info("partitions released", "partitions", parts, "checkpointed", kind == ctlStop)
	}
	return saved
}

// mirrorOffset commits a checkpointed offset to the consumer group, only so that lag tools
// see it; the worker never reads it back.
func (w *Worker) mirrorOffset(p int32, offset int64) {
	cl := w.cl
	if cl == nil {
		return
	}
	cl.CommitOffsets(w.runCtx, map[string]map[int32]kgo.EpochOffset{
		w.cfg.Spec.Input.Topic: {p: {Epoch: -1, Offset: offset}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			w.log.Warn("mirror offset commit failed; lag metrics may read high until the next checkpoint", "partition", p, "offset", offset, "err", err)
		}
	})
}

// Checkpoint checkpoints every owned partition now and returns when all are durable.
func (w *Worker) Checkpoint(ctx context.Context) error {
	return w.each(ctx, ctlCheckpoint)
}

// FlushAll closes every open window of every owned partition and checkpoints: the end of a
// bounded input, where no later record will ever close them.
func (w *Worker) FlushAll(ctx context.Context) error {
	return w.each(ctx, ctlFlushAll)
}

func (w *Worker) each(ctx context.Context, kind controlKind) error {
	w.mu.Lock()
	owners := make([]*owner, 0, len(w.owners))
	for _, o := range w.owners {
		owners = append(owners, o)
	}
	w.mu.Unlock()
	errs := make(chan error, len(owners))
	for _, o := range owners {
		go func() { errs <- o.request(ctx, kind) }()
	}
	var all []error
	for range owners {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// Drain checkpoints every partition, leaves the group so the others take the partitions at
// once, and stops Run. It is what a spot interruption notice triggers.
func (w *Worker) Drain(ctx context.Context) error {
	w.mu.Lock()
	if w.draining {
		w.mu.Unlock()
		return nil
	}
	cl, cancel := w.cl, w.cancel
	if cancel == nil {
		w.mu.Unlock()
		return errors.New("drain: the worker is not running yet")
	}
	w.draining = true
	w.mu.Unlock()
	start := time.Now()
	w.log.Info("draining")
	// Leaving the group revokes every partition, and revocation checkpoints each one.
	if cl != nil {
		if err := cl.LeaveGroupContext(ctx); err != nil {
			w.mu.Lock()
			w.draining = false // a later Drain may try again; a normal exit is not a drain
			w.mu.Unlock()
			return fmt.Errorf("drain: leave group: %w", err)
		}
	}
	w.log.Info("drained", "seconds", time.Since(start).Seconds())
	cancel(errDrained)
	return nil
}

// Totals are counts over the worker's life: records applied, records dead-lettered, and time
// spent applying them.
type Totals struct {
	Records, DeadLettered, SinkErrors int64
	// IdleAdvances counts the watermark advances of idle partitions.
	IdleAdvances int64
	Busy         time.Duration
	// DeadLetteredByReason splits DeadLettered by the dead letters' reason.
	DeadLetteredByReason map[string]int64
}

// Totals returns the worker's running totals.
func (w *Worker) Totals() Totals {
	return Totals{Records: w.totalRecords.Load(), DeadLettered: w.totalDead.Load(), SinkErrors: w.totalSinkErrors.Load(), IdleAdvances: w.totalIdle.Load(),
		Busy: time.Duration(w.busyNanos.Load()), DeadLetteredByReason: w.deadLetters.totals()}
}

// KafkaOutputs turns a spec's kafka outputs into the outbox's outputs: final rows as JSON, or,
// for partial outputs, the mergeable states of the spec's smallest window, keyed by the
// output's key for a next level.
func KafkaOutputs(s *spec.Spec) ([]sink.KafkaOutput, error) {
	var outs []sink.KafkaOutput
	var layout *agg.Layout
	for _, o := range s.Outputs {
		if o.Type != spec.OutputKafka {
			continue
		}
		if !o.Partial {
			outs = append(outs, sink.KafkaOutput{Topic: o.Topic})
			continue
		}
		if layout == nil {
			var err error
			if layout, err = agg.LayoutOf(s); err != nil {
				return nil, err
			}
		}
		keyedBy := o.Key
		if len(keyedBy) == 0 {
			keyedBy = s.Key
		}
		smallest := s.Windows[0].Millis()
		for _, w := range s.Windows {
			smallest = min(smallest, w.Millis())
		}
		outs = append(outs, sink.KafkaOutput{Topic: o.Topic, Render: partial.Renderer(layout.Fingerprint(), keyedBy), WindowSize: smallest, Watermarks: true})
	}
	return outs, nil
}
