package specsrc

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const specV1 = `
name: t
input: {topic: raw, time_field: ts}
key: [org]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: stdout}]
`

func TestWatchReportsValidChangesOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(path, []byte(specV1), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sp, tag, err := src.Load(ctx)
	if err != nil || sp.Name != "t" {
		t.Fatalf("Load = %v, %v", sp, err)
	}
	type result struct {
		name string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		sp, err := src.Watch(ctx, tag, 20*time.Millisecond, slog.Default())
		r := result{err: err}
		if sp != nil {
			r.name = sp.Name
		}
		done <- r
	}()
	// An invalid edit is ignored...
	if err := os.WriteFile(path, []byte(strings.Replace(specV1, "{fn: count}", "{fn: sum}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("watch returned on an invalid spec: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	// ...a valid one is reported.
	if err := os.WriteFile(path, []byte(strings.Replace(specV1, "[1m]", "[1m, 5m]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if !errors.Is(r.err, ErrChanged) || r.name != "t" {
		t.Fatalf("watch = %+v, want ErrChanged", r)
	}
}

func TestOpenRejectsBadS3Locations(t *testing.T) {
	for _, loc := range []string{"s3://bucket", "s3:///key", "s3://bucket/key"} {
		if _, err := Open(loc, nil); err == nil {
			t.Errorf("Open(%q) without a usable client succeeded", loc)
		}
	}
}
