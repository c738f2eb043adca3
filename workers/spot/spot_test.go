package spot

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

func fakeIMDS(t *testing.T) (*testenv.IMDS, *imds.Client) {
	md := testenv.NewIMDS(t, map[string]string{"instance-id": "i-0123456789abcdef0"})
	return md, imds.New(imds.Options{Endpoint: md.URL, ClientEnableState: imds.ClientEnabled})
}

func TestInstanceIDAndNotice(t *testing.T) {
	fake, md := fakeIMDS(t)
	ctx := context.Background()
	id, err := InstanceID(ctx, md)
	if err != nil || id != "i-0123456789abcdef0" {
		t.Fatalf("InstanceID = %q, %v", id, err)
	}
	if n, err := PendingNotice(ctx, md); err != nil || n != nil {
		t.Fatalf("no notice yet: %+v, %v", n, err)
	}
	fake.Set("spot/instance-action", `{"action": "terminate", "time": "2026-11-26T12:02:00Z"}`)
	n, err := PendingNotice(ctx, md)
	if err != nil || n == nil || n.Action != "terminate" || !n.Time.Equal(time.Date(2026, 11, 26, 12, 2, 0, 0, time.UTC)) {
		t.Fatalf("notice = %+v, %v", n, err)
	}
}

func TestWatchDrainsOnceOnNotice(t *testing.T) {
	fake, md := fakeIMDS(t)
	var drains atomic.Int32
	done := make(chan struct{})
	go func() {
		Watch(context.Background(), md, 20*time.Millisecond, slog.Default(), func(ctx context.Context, n Notice) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("drain has no deadline")
			}
			drains.Add(1)
			return nil
		})
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	if drains.Load() != 0 {
		t.Fatal("drained without a notice")
	}
	fake.Set("spot/instance-action", `{"action": "stop", "time": "`+time.Now().Add(2*time.Minute).UTC().Format(time.RFC3339)+`"}`)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not drain after the notice")
	}
	if drains.Load() != 1 {
		t.Fatalf("drained %d times", drains.Load())
	}
}
