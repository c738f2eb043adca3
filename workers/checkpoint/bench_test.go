package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/state"
)

// The scalar spec of the engine's scale target, with one 15-minute window: 10M series make
// about a gigabyte of state.
const incSpec = `
name: inc
input: {topic: raw, time_field: ts}
key: [org, site, zone]
windows: [15m]
allowed_lateness: 30s
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: max, field: rssi}
  - {fn: avg, field: rssi}
  - {fn: last, field: rssi}
outputs: [{type: stdout}]
`

// BenchmarkIncremental10M compares, in one run, incremental checkpoints with full ones on 10M
// series (LIVEAGG_BENCH_SERIES changes it) where 2 % of the series are touched between two
// checkpoints: bytes and time (encode and save) of a delta against a full snapshot of the same
// state, and the restore (read and decode) of a base plus 20 deltas against one full snapshot.
// The store is a local folder (LIVEAGG_BENCH_DIR, default a temporary one), so the ratios are
// the engine's, not a network's. Run it alone: it holds about 5 GB.
//
//	go test -run XXX -bench Incremental10M -benchtime 1x ./workers/checkpoint/
func BenchmarkIncremental10M(b *testing.B) {
	series := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("LIVEAGG_BENCH_SERIES")); err == nil {
		series = v
	}
	dir := os.Getenv("LIVEAGG_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	s, err := spec.Parse([]byte(incSpec))
	if err != nil {
		b.Fatal(err)
	}
	dec, err := record.NewDecoder(s)
	if err != nil {
		b.Fatal(err)
	}
	layout, err := agg.NewLayout(s, dec)
	if err != nil {
		b.Fatal(err)
	}
	fp := state.Fingerprint(s, layout)
	st := state.New(s, layout, nil)
	r := dec.NewRecord()
	var raw []byte
	const t0 = 1767225600000
	apply := func(i int, ts int64) {
		raw = fmt.Appendf(raw[:0], `{"org":"org-%04d","site":"site-%02d","zone":"zone-%04d","ts":%d,"rssi":-%d,"dwell_ms":%d}`,
			i/10_000, (i/100)%100, i%10_000, ts, 30+i%60, i%30000)
		if err := dec.Decode(raw, 0, r); err != nil {
			b.Fatal(err)
		}
		st.Apply(r)
	}
	for i := range series {
		apply(i, t0+int64(i)*60_000/int64(series))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	touch := func(round int) {
		for range series / 50 {
			apply(rng.IntN(series), t0+60_000+int64(round)*1000+int64(rng.IntN(1000)))
		}
		if late := st.Stats().Late; late > 0 {
			b.Fatalf("%d touches late", late)
		}
	}
	ctx := context.Background()
	store, err := Open("file://" + dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d series, %.2f GB of state", st.Stats().Series, float64(st.Stats().Bytes)/1e9)

	for b.Loop() {
		l, err := store.Claim(ctx, Key{Spec: "inc", Topic: "raw", Partition: int32(rng.IntN(1 << 20))}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		// A full checkpoint of the state, as the worker takes one.
		runtime.GC()
		start := time.Now()
		full, err := st.AppendSnapshot(make([]byte, 0, st.Stats().Bytes), fp)
		if err != nil {
			b.Fatal(err)
		}
		fullEntry, err := l.Save(ctx, Checkpoint{Offset: 1, State: full})
		if err != nil {
			b.Fatal(err)
		}
		fullDur, fullBytes := time.Since(start), len(full)
		full = nil
		// A base, then 20 deltas of 2 % each.
		base, err := st.AppendBase(make([]byte, 0, fullBytes*11/10), fp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Save(ctx, Checkpoint{Offset: 2, State: base, Kind: Base}); err != nil {
			b.Fatal(err)
		}
		base = nil
		var deltaDur time.Duration
		var deltaBytes int
		buf := make([]byte, 0, fullBytes/20)
		for i := range 20 {
			touch(i)
			runtime.GC()
			start := time.Now()
			parent := st.ChainLink()
			if buf, err = st.AppendDelta(buf[:0], fp); err != nil {
				b.Fatal(err)
			}
			if _, err := l.Save(ctx, Checkpoint{Offset: int64(3 + i), State: buf, Kind: Delta, Parent: parent}); err != nil {
				b.Fatal(err)
			}
			deltaDur += time.Since(start)
			deltaBytes += len(buf)
		}
		// Restores: the full snapshot alone, and the base with its 20 deltas.
		runtime.GC()
		start = time.Now()
		cp, err := store.Fetch(ctx, fullEntry)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := state.Restore(s, layout, nil, cp.State); err != nil {
			b.Fatal(err)
		}
		restoreFull := time.Since(start)
		cp = Checkpoint{}
		runtime.GC()
		l2, err := store.Claim(ctx, l.key, "bench-restore")
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		res, err := l2.Restore(ctx, States(func(states [][]byte) (int, error) {
			_, n, err := state.RestoreChain(s, layout, nil, states)
			return n, err
		}))
		if err != nil || !res.Tip || res.Links != 21 {
			b.Fatal(res.Links, err, errors.Is(err, ErrCorrupt))
		}
		restoreChain := time.Since(start)

		avgDelta := float64(deltaBytes) / 20
		b.ReportMetric(float64(fullBytes)/1e9, "full-GB")
		b.ReportMetric(fullDur.Seconds(), "full-s")
		b.ReportMetric(avgDelta/1e6, "delta-MB")
		b.ReportMetric(deltaDur.Seconds()/20, "delta-s")
		b.ReportMetric(avgDelta/float64(fullBytes), "delta/full-bytes")
		b.ReportMetric(deltaDur.Seconds()/20/fullDur.Seconds(), "delta/full-time")
		b.ReportMetric(restoreFull.Seconds(), "restore-full-s")
		b.ReportMetric(restoreChain.Seconds(), "restore-base+20-s")
		b.ReportMetric(restoreChain.Seconds()/restoreFull.Seconds(), "restore-chain/full")
		b.ReportMetric(float64(res.BaseBytes+res.DeltaBytes)/float64(fullBytes), "chain/full-bytes")
	}
}
