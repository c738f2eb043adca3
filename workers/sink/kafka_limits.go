package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The outbox must never fail because of one record's size: a dead letter that does not fit its
// topic fails the whole transaction, the checkpoint with it, and every replay after it. So the
// dead-letter topic is made to take anything the input topic accepts, the producer's batch cap
// follows each topic's own limit, and a record that could still not fit is cut to fit (with
// its original size in a header) rather than produced and refused.

// Sizes of Kafka's message limit, in bytes.
const (
	// kafkaDefaultMaxMessage is max.message.bytes when neither topic nor broker sets it.
	kafkaDefaultMaxMessage = 1048588
	// deadLetterHeadroom is what a dead letter adds to its input record: the liveagg-*
	// headers (the detail is capped at maxDetail) and a batch's framing.
	deadLetterHeadroom = 64 << 10
	// recordOverhead bounds the framing of one record in its own batch: the batch header
	// (61 bytes) and the record's varints and attributes.
	recordOverhead = 128
	// maxDetail caps a dead letter's detail header.
	maxDetail = 1024
)

// topicLimits holds max.message.bytes of the topics the outbox writes, read once at start.
type topicLimits map[string]int32

// of is a topic's limit, or franz-go's conservative default for a topic not read: the same
// number the producer's batch cap uses, so a record checked here is never refused there.
func (l topicLimits) of(topic string) int32 {
	if v, ok := l[topic]; ok {
		return v
	}
	return producerDefaultBatch
}

// producerDefaultBatch is franz-go's default batch cap, a little under Kafka's default limit.
const producerDefaultBatch = 1000012

// fits says whether a record of these parts can be produced to its topic.
func (l topicLimits) fits(r *kgo.Record) bool {
	return recordSize(r) <= int(l.of(r.Topic))
}

func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value) + recordOverhead
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// maxMessageBytes reads the effective max.message.bytes of topics (their own, or the broker
// default they inherit).
func maxMessageBytes(ctx context.Context, adm *kadm.Client, topics ...string) (topicLimits, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe configs of %v: %w", topics, err)
	}
	out := topicLimits{}
	for _, rc := range rcs {
		if rc.Err != nil {
			return nil, fmt.Errorf("describe configs of %s: %w", rc.Name, rc.Err)
		}
		out[rc.Name] = kafkaDefaultMaxMessage
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			v, err := strconv.ParseInt(*c.Value, 10, 32)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("topic %s: max.message.bytes %q is not a size", rc.Name, *c.Value)
			}
			out[rc.Name] = int32(v)
		}
	}
	return out, nil
}

// ErrDeadLetterTooSmall is returned by EnsureTopics when the dead-letter topic exists with a
// smaller message limit than the input topic's and cannot be raised: a record the input takes
// could then not be dead-lettered. A restart does not fix it; an operator must raise the
// topic's max.message.bytes (or grant the worker AlterConfigs on it).
var ErrDeadLetterTooSmall = errors.New("dead-letter topic takes smaller records than the input topic")

// sizeDeadLetters makes the dead-letter topic take any record the input topic accepts, plus
// the dead letter's headers: it is created that way, and raised if it exists with less. It
// records the limit it set: a topic created a moment ago may not be described yet.
func (k *Kafka) sizeDeadLetters(ctx context.Context, adm *kadm.Client) (err error) {
	if k.deadLetter == "" {
		return nil
	}
	var set int64
	defer func() {
		if err == nil && set > 0 {
			k.limits[k.deadLetter] = int32(set)
		}
	}()
	want := int64(kafkaDefaultMaxMessage)
	if k.inputTopic != "" {
		in, err := maxMessageBytes(ctx, adm, k.inputTopic)
		if err != nil {
			return fmt.Errorf("input topic: %w", err)
		}
		want = int64(in.of(k.inputTopic))
	}
	want = min(want+deadLetterHeadroom, 1<<30)
	val := strconv.FormatInt(want, 10)
	_, err = adm.CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &val}, k.deadLetter)
	if err == nil {
		set = want
		return nil
	}
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", k.deadLetter, err)
	}
	// Another worker of the fleet created it a moment ago: the brokers may not describe it yet.
	have, err := k.describeNew(ctx, adm, k.deadLetter)
	if err != nil {
		return err
	}
	if int64(have.of(k.deadLetter)) >= want {
		set = int64(have.of(k.deadLetter))
		return nil
	}
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: &val}}, k.deadLetter)
	if err == nil {
		for _, r := range resps {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s takes %d bytes, %s up to %d; raising it was refused (%v): set max.message.bytes=%d on %s",
			ErrDeadLetterTooSmall, k.deadLetter, have.of(k.deadLetter), k.inputTopic, want-deadLetterHeadroom, err, want, k.deadLetter)
	}
	set = want
	return nil
}

// describeNew reads the limit of a topic that may have been created a moment ago, waiting up
// to the metadata wait for the brokers to describe it.
func (k *Kafka) describeNew(ctx context.Context, adm *kadm.Client, topic string) (topicLimits, error) {
	deadline := time.Now().Add(k.metadataWait)
	for {
		l, err := maxMessageBytes(ctx, adm, topic)
		if !errors.Is(err, kerr.UnknownTopicOrPartition) || time.Now().After(deadline) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readLimits records the message limit of every topic the outbox produces to, for the
// producer's per-topic batch cap and the checks before each record.
func (k *Kafka) readLimits(ctx context.Context, adm *kadm.Client) error {
	var names []string
	if k.progressTopic != "" {
		names = append(names, k.progressTopic)
	}
	for _, o := range k.outputs {
		names = append(names, o.Topic)
	}
	if len(names) == 0 {
		return nil
	}
	// Output topics may be created by someone else later (the provider, auto-creation): a
	// topic not there yet keeps the default limit.
	for _, n := range names {
		l, err := maxMessageBytes(ctx, adm, n)
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if err != nil {
			return err
		}
		k.limits[n] = l.of(n)
	}
	return nil
}

// truncateToFit cuts a dead letter's value so that it fits its topic, recording the original
// size. Only a record whose input batch was compressed below the input topic's limit can need
// it, since the dead-letter topic takes the input's limit plus the headers.
func truncateToFit(r *kgo.Record, limit int32) {
	orig := len(r.Value)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: "liveagg-truncated-from", Value: []byte(strconv.Itoa(orig))})
	room := int(limit) - (recordSize(r) - len(r.Value))
	r.Value = r.Value[:max(0, min(orig, room))]
}
