package admin

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
)

type fakeWorker struct{ checkpoints, drains int }

func (f *fakeWorker) Status() map[string]int { return map[string]int{"checkpoints": f.checkpoints} }
func (f *fakeWorker) Checkpoint(context.Context) error {
	f.checkpoints++
	return nil
}
func (f *fakeWorker) Drain(context.Context) error {
	f.drains++
	if f.drains > 1 {
		return errors.New("already drained")
	}
	return nil
}

func TestAPI(t *testing.T) {
	w := &fakeWorker{}
	srv := httptest.NewServer(Handler[map[string]int](w, "s3cret", nil))
	defer srv.Close()
	ctx := context.Background()

	for _, tok := range []string{"", "wrong", "s3cre", "s3cret2"} {
		if _, err := NewClient(srv.URL, tok, nil).Checkpoint(ctx); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: %v, want ErrUnauthorized", tok, err)
		}
	}
	if w.checkpoints != 0 {
		t.Fatal("an unauthorised request reached the worker")
	}
	c := NewClient(srv.URL, "s3cret", nil)
	if r, err := c.Checkpoint(ctx); err != nil || !r.Done {
		t.Fatalf("checkpoint = %+v, %v", r, err)
	}
	var st map[string]int
	if err := c.Status(ctx, &st); err != nil || st["checkpoints"] != 1 {
		t.Fatalf("status = %v, %v", st, err)
	}
	if r, err := c.Drain(ctx); err != nil || !r.Done {
		t.Fatalf("drain = %+v, %v", r, err)
	}
	if _, err := c.Drain(ctx); err == nil {
		t.Fatal("a failing drain reported success")
	}
}

func TestEmptyTokenRefusesEverything(t *testing.T) {
	srv := httptest.NewServer(Handler[map[string]int](&fakeWorker{}, "", nil))
	defer srv.Close()
	if _, err := NewClient(srv.URL, "", nil).Checkpoint(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("empty configured token: %v, want ErrUnauthorized", err)
	}
}
