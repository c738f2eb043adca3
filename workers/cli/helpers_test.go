package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestInputPartitionsWaitsForANewTopic: a worker started in the same apply as its input topic
// may ask before the topic shows; it waits for it, but not forever, and names a missing one.
func TestInputPartitionsWaitsForANewTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tests := []struct {
		name    string
		topic   string
		create  time.Duration // before asking (0), while waiting (> 0), or never (< 0)
		wait    time.Duration
		want    int32
		wantErr string
	}{
		{"exists", "t-exists", 0, time.Second, 3, ""},
		{"created while waiting", "t-later", 1200 * time.Millisecond, 10 * time.Second, 3, ""},
		{"never created", "t-never", -1, 1500 * time.Millisecond, 0, "input topic: topic t-never: not in the brokers' metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.create == 0 {
				if _, err := adm.CreateTopic(ctx, 3, 1, nil, tc.topic); err != nil {
					t.Fatal(err)
				}
			} else if tc.create > 0 {
				go func() {
					time.Sleep(tc.create)
					if _, err := adm.CreateTopic(ctx, 3, 1, nil, tc.topic); err != nil {
						t.Error(err)
					}
				}()
			}
			start := time.Now()
			got, err := inputPartitions(ctx, opts, tc.topic, tc.wait)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if took := time.Since(start); took < tc.wait {
					t.Errorf("gave up after %v, before waiting %v", took, tc.wait)
				}
			case err != nil:
				t.Fatal(err)
			case got != tc.want:
				t.Errorf("partitions = %d, want %d", got, tc.want)
			case time.Since(start) > tc.create+2*time.Second:
				t.Errorf("saw the topic %v after asking, %v after it was created", time.Since(start), time.Since(start)-tc.create)
			}
		})
	}
}
