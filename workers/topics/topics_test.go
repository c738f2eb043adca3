package topics

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAwaitInProcess runs the cases on franz-go's in-process broker; topics_integration_test.go
// runs them on the real Kafka, where a new topic's metadata really lags.
func TestAwaitInProcess(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testAwait(t, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, "t")
}

// testAwait: a topic that exists is described at once; one created while Await waits is
// described soon after; one never created, or never ready, fails naming it once the wait is
// over, and not before.
func testAwait(t *testing.T, opts []kgo.Opt, prefix string) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	notYet := errors.New("not ready")
	tests := []struct {
		name    string
		create  time.Duration // before asking (0), while waiting (> 0), or never (< 0)
		wait    time.Duration
		ready   func(kadm.TopicDetail) error
		wantErr error
	}{
		// The cases that succeed have a generous wait: a loaded broker may take seconds to
		// list a topic, and what they check is how soon after its creation Await returns.
		{"exists", 0, 10 * time.Second, nil, nil},
		{"created while waiting", 1200 * time.Millisecond, 20 * time.Second, nil, nil},
		{"never created", -1, 1500 * time.Millisecond, nil, ErrNotListed},
		{"ready when its partitions are", 0, 10 * time.Second, func(d kadm.TopicDetail) error {
			if len(d.Partitions) != 3 {
				return fmt.Errorf("%d partitions: %w", len(d.Partitions), notYet)
			}
			return nil
		}, nil},
		{"never ready", 0, 1500 * time.Millisecond, func(kadm.TopicDetail) error { return notYet }, notYet},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			topic := fmt.Sprintf("%s-await-%d", prefix, i)
			// created receives when CreateTopic returned: the lag is measured from there, not
			// from a planned time a slow machine may overrun.
			created := make(chan time.Time, 1)
			create := func() error {
				_, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
				created <- time.Now()
				return err
			}
			switch {
			case tc.create == 0:
				if err := create(); err != nil {
					t.Fatal(err)
				}
			case tc.create > 0:
				go func() {
					time.Sleep(tc.create)
					if err := create(); err != nil {
						t.Error(err)
					}
				}()
			}
			start := time.Now()
			got, err := Await(ctx, opts, topic, tc.wait, tc.ready)
			took := time.Since(start)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if took < tc.wait {
					t.Errorf("gave up after %v, before waiting %v", took, tc.wait)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Topic != topic || len(got.Partitions) != 3 {
				t.Errorf("described %s with %d partitions, want %s with 3", got.Topic, len(got.Partitions), topic)
			}
			done := time.Now()
			select {
			case at := <-created:
				if lag := done.Sub(at); lag > 5*time.Second {
					t.Errorf("saw the topic %v after asking, %v after it was created", took, lag)
				}
			case <-ctx.Done():
				t.Fatal("CreateTopic did not return")
			}
		})
	}
}
