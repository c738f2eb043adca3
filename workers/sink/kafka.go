package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/partial"
	"github.com/liveagg/liveagg/workers/topics"
)

// Kafka is the transactional outbox of a spec: its Kafka outputs, its dead letters, and the
// progress marker that makes both exactly-once.
//
// Each input partition gets a producer whose transactional id is derived from the partition,
// so a new owner's producer fences the old one's (Kafka aborts the zombie's open transaction).
// Between two checkpoints everything the partition emits goes into one transaction, together
// with a marker {next window sequence, next input offset} written to partition p of the spec's
// progress topic; the transaction is committed before the checkpoint is saved. A new owner
// reads the last committed marker and, while its replay is still behind it, produces nothing:
// those windows and dead letters are already committed. Downstream consumers read with
// read_committed.
type Kafka struct {
	opts          []kgo.Opt
	outputs       []KafkaOutput
	deadLetter    string
	progressTopic string
	inputTopic    string
	// inputPartitions is the input topic's partition count, which watermark markers carry.
	inputPartitions int32
	txnTimeout      time.Duration
	metadataWait    time.Duration
	// limits is max.message.bytes of each topic the outbox writes, read by EnsureTopics.
	limits topicLimits
}

// KafkaOutput is one Kafka output of a spec.
type KafkaOutput struct {
	Topic string
	// Render appends row i of w as a record key and value. Nil renders the row as JSON keyed by
	// its series key.
	Render func(w *emit.Window, i int, key, value []byte) ([]byte, []byte)
	// WindowSize, if set, sends only windows of this size (ms): a partial output carries one
	// size, so a next level never merges the same records twice through two window sizes.
	WindowSize int64
	// Watermarks makes every commit also write a watermark marker (see partial.Marker) to each
	// partition of the topic, so the level reading it knows when this input partition has
	// emitted a window. For partial outputs.
	Watermarks bool
}

// KafkaOption configures the Kafka sink.
type KafkaOption func(*Kafka)

// WithTransactionTimeout sets the transaction timeout (default 60s; it must exceed the
// checkpoint interval, since a transaction stays open between checkpoints).
func WithTransactionTimeout(d time.Duration) KafkaOption { return func(k *Kafka) { k.txnTimeout = d } }

// WithMetadataWait bounds how long Open waits for a progress topic that is not in the
// brokers' metadata yet (default 30s).
func WithMetadataWait(d time.Duration) KafkaOption { return func(k *Kafka) { k.metadataWait = d } }

// NewKafka returns the outbox of a spec. clientOpts carry the brokers and their auth.
func NewKafka(clientOpts []kgo.Opt, outputs []KafkaOutput, deadLetterTopic, progressTopic string, opts ...KafkaOption) *Kafka {
	k := &Kafka{opts: clientOpts, outputs: outputs, deadLetter: deadLetterTopic, progressTopic: progressTopic, txnTimeout: time.Minute, metadataWait: 30 * time.Second}
	for _, o := range opts {
		o(k)
	}
	return k
}

// Name implements Sink.
func (k *Kafka) Name() string { return "kafka" }

// Close implements Sink.
func (k *Kafka) Close() error { return nil }

// EnsureTopics creates the progress topic (compacted, one partition per input partition) and
// the dead-letter topic if they are missing, makes the dead-letter topic take any record the
// input topic takes (ErrDeadLetterTooSmall when it exists smaller and cannot be raised), and
// reads the message limit of every topic the outbox writes.
func (k *Kafka) EnsureTopics(ctx context.Context, inputTopic string, inputPartitions int32) error {
	k.inputTopic, k.inputPartitions = inputTopic, inputPartitions
	k.limits = topicLimits{}
	cl, err := kgo.NewClient(k.opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	compact := "compact"
	for _, t := range []struct {
		name    string
		parts   int32
		configs map[string]*string
	}{
		{k.progressTopic, inputPartitions, map[string]*string{"cleanup.policy": &compact}},
	} {
		if t.name == "" {
			continue
		}
		if _, err := adm.CreateTopic(ctx, t.parts, -1, t.configs, t.name); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.name, err)
		}
	}
	if err := k.sizeDeadLetters(ctx, adm); err != nil {
		return err
	}
	return k.readLimits(ctx, adm)
}

// Marker is the committed progress of one input partition's outbox.
type Marker struct {
	// Seq is the next window sequence to produce; windows below it are committed.
	Seq uint64 `json:"seq"`
	// Offset is the next input offset; dead letters of records below it are committed.
	Offset int64 `json:"offset"`
	// Watermark is the last watermark announced to the readers of partial outputs (Unix ms;
	// 0 for none): a replay announces nothing it did not pass.
	Watermark int64 `json:"watermark,omitempty"`
}

// Open implements Sink: it fences any earlier producer of the partition and reads the last
// committed marker.
func (k *Kafka) Open(ctx context.Context, p PartitionKey, _ string) (Writer, error) {
	txnID := fmt.Sprintf("liveagg.%s.%s.%d", p.Spec, p.Topic, p.Partition)
	cl, err := kgo.NewClient(append(slices.Clip(k.opts),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(k.txnTimeout),
		kgo.RecordPartitioner(outboxPartitioner{manual: map[string]bool{k.progressTopic: true, k.deadLetter: true}, markers: k.markerTopics()}),
		kgo.ProducerBatchMaxBytesFn(k.batchCap),
	)...)
	if err != nil {
		return nil, err
	}
	// Initialising the producer id bumps the epoch of the transactional id: the previous
	// owner's producer is fenced and its open transaction aborted before we read the marker.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka outbox %s: init producer: %w", txnID, err)
	}
	w := &kafkaWriter{k: k, cl: cl, p: p, progressPart: -1}
	if k.progressTopic != "" {
		if err := w.readMarker(ctx); err != nil {
			cl.Close()
			return nil, err
		}
	}
	if err := w.markerPartitions(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return w, nil
}

// markerTopics is the set of output topics that get watermark markers.
func (k *Kafka) markerTopics() map[string]bool {
	m := map[string]bool{}
	for _, o := range k.outputs {
		if o.Watermarks {
			m[o.Topic] = true
		}
	}
	return m
}

// markerPartitions reads the partition count of each topic that gets watermark markers: a
// marker goes to every partition. A topic is waited for like the progress topic (the worker or
// the provider may have created it a moment ago); partitions added to it later get markers from
// the next owner that opens.
func (w *kafkaWriter) markerPartitions(ctx context.Context) error {
	if len(w.k.markerTopics()) > 0 {
		// A marker says how many sources the reader must hear from: the input's partition
		// count, from EnsureTopics, or read now for a caller that did not run it.
		w.sources = w.k.inputPartitions
		if w.sources == 0 {
			t, err := topics.Await(ctx, w.k.opts, w.p.Topic, w.k.metadataWait, nil)
			if err != nil {
				return fmt.Errorf("kafka outbox: input topic: %w", err)
			}
			w.sources = int32(len(t.Partitions))
		}
	}
	for topic := range w.k.markerTopics() {
		t, err := topics.Await(ctx, w.k.opts, topic, w.k.metadataWait, func(t kadm.TopicDetail) error {
			if len(t.Partitions) == 0 {
				return fmt.Errorf("topic %s has no partitions", topic)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("kafka outbox: partials topic: %w", err)
		}
		if w.markerParts == nil {
			w.markerParts = map[string]int32{}
		}
		w.markerParts[topic] = int32(len(t.Partitions))
	}
	return nil
}

type kafkaWriter struct {
	k            *Kafka
	cl           *kgo.Client
	p            PartitionKey
	committed    Marker // as of the last commit (or read at open)
	next         Marker // what the next commit will record
	progressPart int32
	inTxn        bool
	dirty        bool
	// markerParts is the partition count of each topic that gets watermark markers, and
	// sources the input's, which every marker carries.
	markerParts map[string]int32
	sources     int32
	// rejected holds output rows too large for their topic, for the owner to dead-letter
	// (and count) with the checkpoint's other rejections.
	rejected   []Rejection
	mu         sync.Mutex
	produceErr error
}

// readMarker reads the progress partition of this input partition to its end. Control records
// are kept so the read knows it reached the last stable offset even when the log ends with a
// transaction marker.
func (w *kafkaWriter) readMarker(ctx context.Context) error {
	end, err := w.progressEnd(ctx)
	if err != nil {
		return err
	}
	if end.Offset == 0 {
		return nil
	}
	rd, err := kgo.NewClient(append(slices.Clip(w.k.opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.k.progressTopic: {w.progressPart: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return err
	}
	defer rd.Close()
	want := string(markerKey(w.p))
	for {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("kafka outbox: read marker: %w", err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("kafka outbox: read marker: %w", ferr)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() && string(r.Key) == want {
				var m Marker
				if json.Unmarshal(r.Value, &m) == nil {
					w.committed = m
				}
			}
			if r.Offset >= end.Offset-1 {
				done = true
			}
		})
		if done {
			w.next = w.committed
			return nil
		}
	}
}

// progressEnd finds this input partition's progress partition and where it ends. A progress
// topic created a moment ago, by this worker or another of the fleet starting with it, can be
// missing from the brokers' metadata for a while, or lack a leader: it is waited for. The
// partition count must be the topic's own, since the marker's partition is derived from it,
// and a wrong one would look for committed progress in the wrong place and produce committed
// output again.
func (w *kafkaWriter) progressEnd(ctx context.Context) (kadm.ListedOffset, error) {
	topic := w.k.progressTopic
	adm := kadm.NewClient(w.cl)
	var end kadm.ListedOffset
	_, err := topics.Await(ctx, w.k.opts, topic, w.k.metadataWait, func(t kadm.TopicDetail) error {
		if len(t.Partitions) == 0 {
			return fmt.Errorf("progress topic %s has no partitions", topic)
		}
		w.progressPart = w.p.Partition % int32(len(t.Partitions))
		// Only this partition's leader matters (another may be down with its broker); a
		// replica being unavailable is not a missing leader.
		if pd, ok := t.Partitions[w.progressPart]; !ok || pd.Leader < 0 || (pd.Err != nil && !errors.Is(pd.Err, kerr.ReplicaNotAvailable)) {
			return fmt.Errorf("progress partition %s/%d has no leader (%v)", topic, w.progressPart, pd.Err)
		}
		ends, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("list %s offsets: %w", topic, err)
		}
		var ok bool
		if end, ok = ends.Lookup(topic, w.progressPart); !ok {
			return fmt.Errorf("end offset of %s/%d: %w", topic, w.progressPart, topics.ErrNotListed)
		}
		if end.Err != nil {
			return fmt.Errorf("end offset of %s/%d: %w", topic, w.progressPart, end.Err)
		}
		return nil
	})
	if err != nil {
		return end, fmt.Errorf("kafka outbox: %w", err)
	}
	return end, nil
}

func markerKey(p PartitionKey) []byte {
	return []byte(p.Spec + "/" + p.Topic + "/" + strconv.Itoa(int(p.Partition)))
}

// Committed is the marker read at open: the replay position below which output is committed.
func (w *kafkaWriter) Committed() Marker { return w.committed }

func (w *kafkaWriter) begin() error {
	if w.inTxn {
		return nil
	}
	if err := w.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka outbox: begin transaction: %w", err)
	}
	w.inTxn = true
	return nil
}

func (w *kafkaWriter) produce(ctx context.Context, r *kgo.Record) {
	w.dirty = true
	w.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
		if err != nil {
			w.mu.Lock()
			if w.produceErr == nil {
				w.produceErr = err
			}
			w.mu.Unlock()
		}
	})
}

// Write implements Writer: windows already committed by an earlier owner are skipped.
func (w *kafkaWriter) Write(ctx context.Context, win *emit.Window) error {
	if win.Seq < w.committed.Seq || len(w.k.outputs) == 0 {
		return nil
	}
	if err := w.begin(); err != nil {
		return err
	}
	for _, out := range w.k.outputs {
		if out.WindowSize != 0 && out.WindowSize != win.Size {
			continue
		}
		for i := range win.Rows {
			var key, val []byte
			if out.Render != nil {
				key, val = out.Render(win, i, nil, nil)
			} else {
				key = []byte(rowKey(win, i))
				val = win.AppendJSON(nil, i)
			}
			r := &kgo.Record{Topic: out.Topic, Key: key, Value: val, Partition: -1}
			if !w.k.limits.fits(r) && w.k.deadLetter != "" {
				// A row its topic cannot take would fail the whole transaction on every
				// replay: it goes to the dead letters instead, once.
				w.rejected = append(w.rejected, Rejection{Sink: w.k.Name() + ":" + out.Topic, Window: win, Row: i, Value: val,
					Err: fmt.Errorf("%w: row of %d bytes, topic %s takes %d", kerr.MessageTooLarge, recordSize(r), out.Topic, w.k.limits.of(out.Topic))})
				continue
			}
			w.produce(ctx, r)
		}
	}
	return nil
}

// DeadLetter routes a bad input record, with the reason in headers, unless an earlier owner's
// committed transaction already holds it.
func (w *kafkaWriter) DeadLetter(ctx context.Context, in *kgo.Record, reason, detail string) error {
	if w.k.deadLetter == "" || in.Offset < w.committed.Offset {
		return nil
	}
	if err := w.begin(); err != nil {
		return err
	}
	// The dead letter is stamped when it is written, not with the input's time: a replay of
	// old records would otherwise write dead letters that time-based retention deletes at once.
	// The input's time is kept in a header.
	w.produceDeadLetter(ctx, &kgo.Record{
		Topic: w.k.deadLetter, Key: in.Key, Value: in.Value, Partition: 0,
		Headers: []kgo.RecordHeader{
			{Key: "liveagg-timestamp", Value: []byte(strconv.FormatInt(in.Timestamp.UnixMilli(), 10))},
			{Key: "liveagg-reason", Value: []byte(reason)},
			{Key: "liveagg-detail", Value: []byte(capDetail(detail))},
			{Key: "liveagg-source", Value: []byte(fmt.Sprintf("%s/%d@%d", in.Topic, in.Partition, in.Offset))},
		},
	})
	return nil
}

// RejectedRow is the dead-letter reason of an output row a sink refused for good.
const RejectedRow = "sink_rejected"

// DeadLetterRow routes an output row that a sink refused for good (rej.Err says why) to the
// dead-letter topic: the row as JSON, keyed by its series, with the sink and the window in
// headers. A window an earlier owner's transaction committed is skipped, as windows are.
func (w *kafkaWriter) DeadLetterRow(ctx context.Context, rej Rejection) error {
	win := rej.Window
	if w.k.deadLetter == "" || win.Seq < w.committed.Seq {
		return nil
	}
	if err := w.begin(); err != nil {
		return err
	}
	w.produceDeadLetter(ctx, rowDeadLetter(w.k.deadLetter, rej))
	return nil
}

func rowDeadLetter(topic string, rej Rejection) *kgo.Record {
	win := rej.Window
	value := rej.Value
	if value == nil {
		value = win.AppendJSON(nil, rej.Row)
	}
	return &kgo.Record{
		Topic: topic, Key: []byte(rowKey(win, rej.Row)), Value: value, Partition: 0,
		Headers: []kgo.RecordHeader{
			{Key: "liveagg-reason", Value: []byte(RejectedRow)},
			{Key: "liveagg-detail", Value: []byte(capDetail(rej.Err.Error()))},
			{Key: "liveagg-sink", Value: []byte(rej.Sink)},
			{Key: "liveagg-source", Value: []byte(fmt.Sprintf("%s/%d window %d+%d seq %d", win.Topic, win.Partition, win.Start, win.Size, win.Seq))},
		},
	}
}

// produceDeadLetter produces a dead letter that always fits its topic.
func (w *kafkaWriter) produceDeadLetter(ctx context.Context, r *kgo.Record) {
	if !w.k.limits.fits(r) {
		truncateToFit(r, w.k.limits.of(r.Topic))
	}
	w.produce(ctx, r)
}

func capDetail(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	return s[:maxDetail] + "..."
}

// batchCap is the producer's batch limit for a topic: the topic's own max.message.bytes when
// EnsureTopics read it, else franz-go's conservative default.
func (k *Kafka) batchCap(topic string) int32 {
	return k.limits.of(topic)
}

// TakeRejections implements Rejecter: the output rows too large for their topic.
func (w *kafkaWriter) TakeRejections() []Rejection {
	r := w.rejected
	w.rejected = nil
	return r
}

// Position sets what the next commit's marker records.
func (w *kafkaWriter) Position(nextSeq uint64, nextOffset int64) {
	w.next.Seq, w.next.Offset = max(nextSeq, w.committed.Seq), max(nextOffset, w.committed.Offset)
}

// Watermark sets the watermark the next commit announces to the readers of partial outputs:
// every window ending at or before wm has been written. It only moves forward, and a replay
// behind what an earlier owner announced announces nothing.
func (w *kafkaWriter) Watermark(wm int64) {
	if len(w.markerParts) > 0 {
		w.next.Watermark = max(w.next.Watermark, wm)
	}
}

// Flush implements Writer: it writes the marker and commits the transaction.
func (w *kafkaWriter) Flush(ctx context.Context) (string, error) {
	announce := len(w.markerParts) > 0 && w.next.Watermark > w.committed.Watermark
	if w.k.progressTopic == "" || (!w.dirty && w.next == w.committed) {
		return "", nil
	}
	if err := w.begin(); err != nil {
		return "", err
	}
	if announce {
		// After the windows it covers: a reader sees them before the marker.
		val := partial.AppendMarker(nil, partial.Marker{Group: w.p.Spec + "/" + w.p.Topic, Source: w.p.Partition,
			Sources: max(w.sources, w.p.Partition+1), Watermark: w.next.Watermark})
		for topic, n := range w.markerParts {
			for part := range n {
				w.produce(ctx, &kgo.Record{Topic: topic, Partition: part, Key: markerRecordKey, Value: val})
			}
		}
	}
	val, _ := json.Marshal(w.next)
	w.produce(ctx, &kgo.Record{Topic: w.k.progressTopic, Partition: w.progressPart, Key: markerKey(w.p), Value: val})
	if err := w.cl.Flush(ctx); err != nil {
		return "", w.abort(ctx, fmt.Errorf("kafka outbox: flush: %w", err))
	}
	w.mu.Lock()
	perr := w.produceErr
	w.mu.Unlock()
	if perr != nil {
		return "", w.abort(ctx, fmt.Errorf("kafka outbox: produce: %w", perr))
	}
	if err := w.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		w.inTxn = false
		return "", fmt.Errorf("kafka outbox: commit: %w", err)
	}
	w.inTxn, w.dirty = false, false
	w.committed = w.next
	return fmt.Sprintf("seq=%d", w.committed.Seq), nil
}

func (w *kafkaWriter) abort(ctx context.Context, cause error) error {
	_ = w.cl.AbortBufferedRecords(ctx)
	if w.inTxn {
		_ = w.cl.EndTransaction(ctx, kgo.TryAbort)
	}
	w.inTxn = false
	return cause
}

// Close implements Writer: an open transaction is aborted.
func (w *kafkaWriter) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if w.inTxn {
		_ = w.abort(ctx, nil)
	}
	w.cl.Close()
	return nil
}

func rowKey(w *emit.Window, i int) string { return strings.Join(w.Rows[i].Key, "|") }

// outboxPartitioner places progress markers and dead letters on the partition the record names,
// and output rows by a hash of their key (Kafka's murmur2, as the Java client does), so one
// series always lands on one partition of an output topic. Watermark markers, which go to
// every partition of a partials topic, name theirs too.
type outboxPartitioner struct{ manual, markers map[string]bool }

func (o outboxPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if o.manual[topic] {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	keyed := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	if o.markers[topic] {
		return markerPartitioner{keyed}
	}
	return keyed
}

// markerRecordKey keys watermark markers, which a reader tells from partials by their value.
var markerRecordKey = []byte("liveagg-watermark")

// markerPartitioner sends watermark markers to the partition they name and partials by key.
type markerPartitioner struct{ kgo.TopicPartitioner }

func (m markerPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return partial.IsMarker(r.Value) || m.TopicPartitioner.RequiresConsistency(r)
}

func (m markerPartitioner) Partition(r *kgo.Record, n int) int {
	if partial.IsMarker(r.Value) {
		return int(r.Partition)
	}
	return m.TopicPartitioner.Partition(r, n)
}
