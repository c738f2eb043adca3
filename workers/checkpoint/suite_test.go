package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// runSuite runs the behaviour every backend must have; file and S3 (integration) call it.
func runSuite(t *testing.T, open func(t *testing.T) *Store) {
	ctx := context.Background()
	key := Key{Spec: "spec-a", Topic: "raw", Partition: 3}

	t.Run("empty", func(t *testing.T) {
		s := open(t)
		l, err := s.Claim(ctx, key, "w1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Load(ctx); !errors.Is(err, ErrNoCheckpoint) {
			t.Fatalf("Load = %v, want ErrNoCheckpoint", err)
		}
		if l.Generation() != 1 {
			t.Fatalf("first claim generation %d, want 1", l.Generation())
		}
	})

	t.Run("failures count across owners until a checkpoint passes them", func(t *testing.T) {
		s := open(t)
		l, err := s.Claim(ctx, key, "w1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Save(ctx, Checkpoint{Offset: 10, State: []byte("s")}); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		for want := 1; want <= 3; want++ {
			f, err := l.RecordFailure(ctx, 17, "apply", boom)
			if err != nil || f.Count != want || f.Offset != 17 || f.Error != "boom" {
				t.Fatalf("failure %d: %+v, %v", want, f, err)
			}
			// The next owner sees it at claim.
			if l, err = s.Claim(ctx, key, fmt.Sprintf("w%d", want+1)); err != nil {
				t.Fatal(err)
			}
			if got := l.Manifest().Failure; got == nil || got.Count != want {
				t.Fatalf("claim after failure %d sees %+v", want, got)
			}
		}
		// A failure at another offset starts again at one.
		if f, err := l.RecordFailure(ctx, 18, "emit", boom); err != nil || f.Count != 1 {
			t.Fatalf("failure at a new offset: %+v, %v", f, err)
		}
		// A zombie cannot record one.
		old := l
		if l, err = s.Claim(ctx, key, "w9"); err != nil {
			t.Fatal(err)
		}
		if _, err := old.RecordFailure(ctx, 18, "emit", boom); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie RecordFailure = %v, want ErrFenced", err)
		}
		// A checkpoint at the failed record keeps it; one past it forgets it.
		if _, err := l.Save(ctx, Checkpoint{Offset: 18, State: []byte("s")}); err != nil || l.Manifest().Failure == nil {
			t.Fatalf("save at the failed offset: %v, failure %+v", err, l.Manifest().Failure)
		}
		if _, err := l.Save(ctx, Checkpoint{Offset: 19, State: []byte("s")}); err != nil || l.Manifest().Failure != nil {
			t.Fatalf("save past the failed offset: %v, failure %+v", err, l.Manifest().Failure)
		}
	})

	t.Run("save, load, keep previous, drop older", func(t *testing.T) {
		s := open(t)
		l, err := s.Claim(ctx, key, "w1")
		if err != nil {
			t.Fatal(err)
		}
		var entries []Entry
		for i := range 3 {
			e, err := l.Save(ctx, Checkpoint{Offset: int64(100 * (i + 1)), EmitSeq: uint64(i), State: []byte(fmt.Sprintf("state-%d", i))})
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
		cp, err := l.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Offset != 300 || cp.EmitSeq != 2 || string(cp.State) != "state-2" {
			t.Fatalf("Load = %+v", cp)
		}
		older, err := l.LoadOlder(ctx, 1)
		if err != nil || older.Offset != 200 {
			t.Fatalf("LoadOlder = %+v, %v; want offset 200", older, err)
		}
		if _, err := s.Fetch(ctx, entries[0]); err == nil {
			t.Fatal("the checkpoint before previous was not removed")
		}
		keys, err := s.Partitions(ctx, "spec-a", "")
		if err != nil || len(keys) != 1 || keys[0] != key {
			t.Fatalf("Partitions = %v, %v", keys, err)
		}
	})

	t.Run("zombie is fenced", func(t *testing.T) {
		s := open(t)
		old, err := s.Claim(ctx, key, "old")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.Save(ctx, Checkpoint{Offset: 10, State: []byte("old-10")}); err != nil {
			t.Fatal(err)
		}
		// The partition moves: a new owner claims it while the old one is still running.
		newer, err := s.Claim(ctx, key, "new")
		if err != nil {
			t.Fatal(err)
		}
		if newer.Generation() <= old.Generation() {
			t.Fatalf("new generation %d not above old %d", newer.Generation(), old.Generation())
		}
		if _, err := old.Save(ctx, Checkpoint{Offset: 20, State: []byte("old-20")}); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie save = %v, want ErrFenced", err)
		}
		cp, err := newer.Load(ctx)
		if err != nil || string(cp.State) != "old-10" {
			t.Fatalf("new owner loads %q, %v; want old-10", cp.State, err)
		}
		if _, err := newer.Save(ctx, Checkpoint{Offset: 30, State: []byte("new-30")}); err != nil {
			t.Fatal(err)
		}
		if _, err := old.Save(ctx, Checkpoint{Offset: 40, State: []byte("old-40")}); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie save after new save = %v, want ErrFenced", err)
		}
		m, err := s.Inspect(ctx, key)
		if err != nil || m.Current.Offset != 30 || m.Owner != "new" {
			t.Fatalf("manifest %+v, %v", m, err)
		}
	})

	t.Run("corrupt current falls back to previous", func(t *testing.T) {
		var fell []error
		s := open(t)
		s.onFall = func(_ Key, err error) { fell = append(fell, err) }
		l, err := s.Claim(ctx, key, "w1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Save(ctx, Checkpoint{Offset: 1, State: []byte("good")}); err != nil {
			t.Fatal(err)
		}
		e, err := l.Save(ctx, Checkpoint{Offset: 2, State: []byte("newer")})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.b.put(ctx, e.Object, []byte("NEWER")); err != nil { // same size, other bytes
			t.Fatal(err)
		}
		cp, err := l.Load(ctx)
		if err != nil || string(cp.State) != "good" {
			t.Fatalf("Load = %q, %v; want the previous checkpoint", cp.State, err)
		}
		if len(fell) != 1 || !errors.Is(fell[0], ErrCorrupt) {
			t.Fatalf("fallback hook got %v", fell)
		}
		if err := s.b.remove(ctx, l.Manifest().Previous.Object, -1); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Load(ctx); err == nil || errors.Is(err, ErrNoCheckpoint) {
			t.Fatalf("Load with both damaged = %v, want an error naming the damage", err)
		}
		// Objects missing or corrupt stay so: no restart can restore them, which the worker
		// tells from a store that is only away by ErrNoneRestores.
		_, err = l.Restore(ctx, States(func(states [][]byte) (int, error) { return len(states), nil }))
		if !errors.Is(err, ErrNoneRestores) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Restore with both damaged = %v, want ErrNoneRestores naming the damage", err)
		}
	})

	t.Run("concurrent claims leave exactly one owner", func(t *testing.T) {
		s := open(t)
		k := Key{Spec: "race", Topic: "raw", Partition: 0}
		var wg sync.WaitGroup
		leases := make([]*Lease, 6)
		for i := range leases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := s.Claim(ctx, k, fmt.Sprintf("w%d", i))
				if err != nil {
					t.Error(err)
					return
				}
				leases[i] = l
			}()
		}
		wg.Wait()
		ok := 0
		gens := map[int64]bool{}
		for _, l := range leases {
			if l == nil {
				continue
			}
			gens[l.Generation()] = true
			if _, err := l.Save(ctx, Checkpoint{Offset: 1, State: []byte(l.owner)}); err == nil {
				ok++
			} else if !errors.Is(err, ErrFenced) {
				t.Fatal(err)
			}
		}
		if ok != 1 || len(gens) != len(leases) {
			t.Fatalf("%d leases could save (want 1); generations %v", ok, gens)
		}
	})

	t.Run("large state", func(t *testing.T) {
		s := open(t)
		l, err := s.Claim(ctx, key, "w1")
		if err != nil {
			t.Fatal(err)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), (multipartMin+partSize+12345)/16)
		start := time.Now()
		if _, err := l.Save(ctx, Checkpoint{Offset: 5, State: big}); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %d MB in %v", len(big)>>20, time.Since(start))
		cp, err := l.Load(ctx)
		if err != nil || !bytes.Equal(cp.State, big) {
			t.Fatalf("large state round trip failed: %v", err)
		}
	})
}
