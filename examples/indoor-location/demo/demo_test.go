package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type recorder struct {
	snaps  int
	events []string
	last   Snapshot   // the latest progress shown
	crashs []Snapshot // the progress when each crash was reported
}

func (r *recorder) Update(s Snapshot) { r.snaps++; r.last = s }
func (r *recorder) Event(msg string) {
	r.events = append(r.events, msg)
	if strings.Contains(msg, "CRASH") {
		r.crashs = append(r.crashs, r.last)
	}
}

// TestDemoVerifiesAndRepeats runs the demo headless twice with the same seed, each run with its
// half-way crash and restore: both must verify, and the sorted rollup files must be the same
// bytes however the crash fell.
func TestDemoVerifiesAndRepeats(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var files [2][]byte
	for i := range 2 {
		out := t.TempDir()
		rec := &recorder{}
		// Different rates move the crash to a different place in the stream.
		res, err := Run(ctx, Options{Records: 60_000, Rate: []int{-1, 40_000}[i], Out: out, Seed: 7}, rec)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() {
			t.Fatalf("run %d not verified: %d lost, %d duplicated, %d wrong, %d unexpected: %v; dead letters %v, want %v",
				i, res.Lost, res.Duplicated, res.Wrong, res.Unexpected, res.Differences, res.DeadLetters, res.ExpectedDead)
		}
		if res.Windows == 0 || res.Records != 60_000 || res.DeadLetters["late"] == 0 || res.DeadLetters["malformed"] == 0 {
			t.Fatalf("run %d: %d windows from %d records, dead letters %v: the run did not exercise what it should", i, res.Windows, res.Records, res.DeadLetters)
		}
		if len(res.Crashes) != 2 || !strings.Contains(strings.Join(rec.events, "\n"), "CRASH") {
			t.Fatalf("run %d: no crash and restore happened; events %q", i, rec.events)
		}
		if rec.snaps == 0 {
			t.Fatalf("run %d: no progress reported", i)
		}
		var all []byte
		rows := 0
		for _, name := range []string{"indoor-l2-zone", "indoor-l2-floor", "indoor-l2-site", "indoor-l3-org"} {
			data, err := os.ReadFile(filepath.Join(out, name+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if res.PerSpec[name] == 0 {
				t.Fatalf("run %d: no verified rollups of %s", i, name)
			}
			rows += bytes.Count(data, []byte("\n"))
			all = append(all, data...)
		}
		if rows != res.Windows {
			t.Fatalf("run %d: sorted files hold %d rows, want %d", i, rows, res.Windows)
		}
		if res.Partials == 0 || res.PartialBytes == 0 {
			t.Fatalf("run %d: no partials counted", i)
		}
		files[i] = all
		var buf bytes.Buffer
		WriteSummary(&buf, res)
		if !strings.Contains(buf.String(), "verified: ") || !strings.Contains(buf.String(), " 0 lost, 0 duplicated") {
			t.Fatalf("summary lacks the verification line:\n%s", buf.String())
		}
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("the same seed and size gave different rollup files")
	}
}

// TestDemoTimedRun checks the --duration mode ends on time and verifies, at a set rate and as
// fast as possible, with its crashes half- and three-quarters-way through the time.
func TestDemoTimedRun(t *testing.T) {
	for _, rate := range []int{10_000, -1} {
		t.Run(fmt.Sprint("rate ", rate), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			rec := &recorder{}
			res, err := Run(ctx, Options{Duration: 3 * time.Second, Rate: rate, Out: t.TempDir()}, rec)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Fatalf("not verified: %v", res.Differences)
			}
			// At most the rate allows (with a little slack for the last tick); at least a
			// fraction of it, since a loaded machine slows the producer but must not stop it.
			if rate > 0 && (res.Records < 3_000 || res.Records > 35_000) {
				t.Fatalf("3 s at 10,000/s produced %d records", res.Records)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("a 3 s run took %v", d)
			}
			if len(rec.crashs) != 2 || rec.crashs[0].TimeDone < 0.4 {
				t.Fatalf("crashes at %+v: want two, the first about half-way through the time", rec.crashs)
			}
		})
	}
}
