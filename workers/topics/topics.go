// Package topics describes Kafka topics that may have been created a moment ago. A fleet, its
// topics and its specs come up in one terraform apply: a worker can ask about its input or
// progress topic, and the provider about a topic it has just created, before the brokers list
// it. Reading that as "does not exist" made workers exit and applies fail; Await asks again.
package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrNotListed is the error of a topic the brokers do not list (yet).
var ErrNotListed = errors.New("not in the brokers' metadata")

// Await describes topic, asking again for up to wait while the brokers do not list it, answer
// with an error that passes (no leader yet), or ready, if given, says it is not usable yet. An
// error that does not pass ends the wait at once. opts reach the brokers; the client Await
// makes from them caches metadata for 250 ms, not the default 5 s, so that asking again asks.
func Await(ctx context.Context, opts []kgo.Opt, topic string, wait time.Duration, ready func(kadm.TopicDetail) error) (kadm.TopicDetail, error) {
	cl, err := kgo.NewClient(append(slices.Clip(opts), kgo.MetadataMinAge(250*time.Millisecond))...)
	if err != nil {
		return kadm.TopicDetail{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(wait)
	for {
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return kadm.TopicDetail{}, fmt.Errorf("describe topic %s: %w", topic, err)
		}
		t, ok := td[topic]
		switch {
		case !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition):
			err = fmt.Errorf("topic %s: %w", topic, ErrNotListed)
		case t.Err != nil && !kerr.IsRetriable(t.Err):
			return t, fmt.Errorf("topic %s: %w", topic, t.Err)
		case t.Err != nil:
			err = fmt.Errorf("topic %s: %w", topic, t.Err)
		case ready != nil:
			err = ready(t)
		}
		if err == nil {
			return t, nil
		}
		if time.Now().After(deadline) {
			return t, err
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
