package spot

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// fakeIMDS speaks IMDSv2: a session token from PUT /latest/api/token, required on every GET.
// The real metadata service only exists on an instance, so this is the honest stand-in.
func fakeIMDS(t *testing.T, notice *atomic.Value) *imds.Client {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "" {
			http.Error(w, "missing ttl", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
		_, _ = w.Write([]byte("tok"))
	})
	check := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "tok" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /latest/meta-data/instance-id", func(w http.ResponseWriter, r *http.Request) {
		if check(w, r) {
			_, _ = w.Write([]byte("i-0123456789abcdef0"))
		}
	})
	mux.HandleFunc("GET /latest/meta-data/spot/instance-action", func(w http.ResponseWriter, r *http.Request) {
		if !check(w, r) {
			return
		}
		if n, _ := notice.Load().(string); n != "" {
			_, _ = w.Write([]byte(n))
			return
		}
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return imds.New(imds.Options{Endpoint: srv.URL, ClientEnableState: imds.ClientEnabled})
}

func TestInstanceIDAndNotice(t *testing.T) {
	var notice atomic.Value
	md := fakeIMDS(t, &notice)
	ctx := context.Background()
	id, err := InstanceID(ctx, md)
	if err != nil || id != "i-0123456789abcdef0" {
		t.Fatalf("InstanceID = %q, %v", id, err)
	}
	if n, err := PendingNotice(ctx, md); err != nil || n != nil {
		t.Fatalf("no notice yet: %+v, %v", n, err)
	}
	notice.Store(`{"action": "terminate", "time": "2026-11-26T12:02:00Z"}`)
	n, err := PendingNotice(ctx, md)
	if err != nil || n == nil || n.Action != "terminate" || !n.Time.Equal(time.Date(2026, 11, 26, 12, 2, 0, 0, time.UTC)) {
		t.Fatalf("notice = %+v, %v", n, err)
	}
}

func TestWatchDrainsOnceOnNotice(t *testing.T) {
	var notice atomic.Value
	md := fakeIMDS(t, &notice)
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
	notice.Store(`{"action": "stop", "time": "` + time.Now().Add(2*time.Minute).UTC().Format(time.RFC3339) + `"}`)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not drain after the notice")
	}
	if drains.Load() != 1 {
		t.Fatalf("drained %d times", drains.Load())
	}
}
