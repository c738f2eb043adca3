package state

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"

	"github.com/liveagg/liveagg/workers/gen"
)

// The indoor-location level-1 workload of the engine issue: key (org, site, zone), windows 1m
// and 15m, count, sum(dwell_ms), min/max(rssi), distinct(device), quantiles(rssi); ~180-byte
// JSON records; about a million live series; event time in order with 1 % late records.
const benchSpec = `
name: indoor-l1
input: {topic: raw, time_field: ts}
key: [org, site, zone]
windows: [1m, 15m]
allowed_lateness: 30s
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: max, field: rssi}
  - {fn: distinct, field: device}
  - {fn: quantiles, field: rssi}
outputs: [{type: stdout}]
`

// The count/sum/min/max/avg/last spec of the memory and scale targets.
const scalarSpec = `
name: scalar
input: {topic: raw, time_field: ts}
key: [org, site, zone]
windows: [1m, 15m]
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

// stream is a pre-generated ring of records in one buffer, replayed with shifted timestamps.
type stream struct {
	buf    []byte
	offs   []int // record i is buf[offs[i]:offs[i+1]]
	tsAt   []int // offset of record i's 13-digit timestamp in buf, -1 if it has none
	spanMs int64 // event time covered by one pass, a multiple of 15 minutes
}

func (s *stream) len() int         { return len(s.offs) - 1 }
func (s *stream) rec(i int) []byte { return s.buf[s.offs[i]:s.offs[i+1]] }
func (s *stream) bytes() int64     { return int64(len(s.buf)) }

// shift moves every timestamp one span later, so the next pass is in order after this one.
func (s *stream) shift() {
	for _, at := range s.tsAt {
		if at < 0 {
			continue
		}
		ts, err := strconv.ParseInt(string(s.buf[at:at+13]), 10, 64)
		if err != nil {
			panic(err)
		}
		strconv.AppendInt(s.buf[at:at], ts+s.spanMs, 10)
	}
}

var (
	benchOnce, zipfOnce     sync.Once
	benchStream, zipfStream *stream
)

// oneMillionSeries returns 4M records over 1000 orgs × 50 sites × 20 zones (1M series), chosen
// uniformly, 0.3 ms of event time apart: a 15-minute window sees 3M records and ~95 % of the
// series. Uniform keys are the worst case for caches: every lookup is a cache miss.
func oneMillionSeries() *stream {
	benchOnce.Do(func() {
		benchStream = makeStream(gen.Config{Seed: 99, Uniform: true, Orgs: 1000, SitesPerOrg: 50, FloorsPerSite: 4,
			ZonesPerFloor: 5, DevicesPerSite: 100, StepMs: 0.3, JitterMs: 2000, LateFraction: 0.01, LateByMs: 120_000})
	})
	return benchStream
}

// zipfSeries is the same key space with Zipf-distributed orgs (exponent 1.3), as multi-tenant
// traffic is: fewer series are live and hot ones stay in cache.
func zipfSeries() *stream {
	zipfOnce.Do(func() {
		zipfStream = makeStream(gen.Config{Seed: 99, Zipf: 1.3, Orgs: 1000, SitesPerOrg: 50, FloorsPerSite: 4,
			ZonesPerFloor: 5, DevicesPerSite: 100, StepMs: 0.3, JitterMs: 2000, LateFraction: 0.01, LateByMs: 120_000})
	})
	return zipfStream
}

func makeStream(c gen.Config) *stream {
	{
		const n = 4_000_000
		g := gen.New(c)
		s := &stream{buf: make([]byte, 0, n*190), offs: make([]int, 0, n+1), tsAt: make([]int, 0, n)}
		for range n {
			s.offs = append(s.offs, len(s.buf))
			e := g.Next()
			at := len(s.buf)
			s.buf = gen.AppendJSON(s.buf, e)
			s.tsAt = append(s.tsAt, at+indexTS(s.buf[at:]))
		}
		s.offs = append(s.offs, len(s.buf))
		span := int64(float64(n) * c.StepMs)
		s.spanMs = (span/900_000 + 1) * 900_000
		return s
	}
}

func indexTS(rec []byte) int {
	const k = `"ts":`
	for i := 0; i+len(k) < len(rec); i++ {
		if string(rec[i:i+len(k)]) == k {
			return i + len(k)
		}
	}
	return -1
}

// BenchmarkIngest measures decode + aggregate per record on one goroutine, in steady state
// (windows opening and closing, ~1M live series), against the naive baseline in the same run.
func BenchmarkIngest(b *testing.B) {
	for _, tc := range []struct {
		name  string
		s     func() *stream
		doc   string
		naive bool
	}{
		{"uniform1M", oneMillionSeries, benchSpec, true},
		{"zipf", zipfSeries, benchSpec, true},
		{"uniform1M-scalar", oneMillionSeries, scalarSpec, false},
	} {
		b.Run(tc.name, func(b *testing.B) { benchIngest(b, tc.s(), tc.doc, tc.naive) })
	}
}

func benchIngest(b *testing.B, s *stream, doc string, withNaive bool) {
	b.Run("engine", func(b *testing.B) { benchEngine(b, s, doc, false) })
	// The same with incremental checkpoints on: Apply marks the slots it changes for the next
	// delta (taken, off the clock, at every pass over the stream). Against "engine" above.
	b.Run("engine-incremental", func(b *testing.B) { benchEngine(b, s, doc, true) })
	if !withNaive {
		return
	}
	benchNaive(b, s)
}

func benchEngine(b *testing.B, s *stream, doc string, incremental bool) {
	{
		f := newFixture(b, doc)
		fp := Fingerprint(f.spec, f.layout)
		st := New(f.spec, f.layout, func(*Window) {})
		r := f.dec.NewRecord()
		i := 0
		next := func() {
			if i == s.len() {
				s.shift()
				i = 0
			}
			if err := f.dec.Decode(s.rec(i), 0, r); err == nil {
				st.Apply(r)
			}
			i++
		}
		for range 3_200_000 { // fill the 15-minute window before timing
			next()
		}
		var buf []byte
		if incremental {
			buf, _ = st.AppendBase(buf, fp)
		}
		b.ReportAllocs()
		b.SetBytes(s.bytes() / int64(s.len()))
		b.ResetTimer()
		for range b.N {
			if i == s.len() {
				b.StopTimer()
				s.shift()
				i = 0
				if incremental {
					var err error
					if buf, err = st.AppendDelta(buf[:0], fp); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			if err := f.dec.Decode(s.rec(i), 0, r); err == nil {
				st.Apply(r)
			}
			i++
		}
		b.StopTimer()
		b.ReportMetric(float64(st.Stats().Series), "live-series")
	}
}

func benchNaive(b *testing.B, s *stream) {
	b.Run("naive", func(b *testing.B) {
		nv := newNaive()
		i := 0
		for range 3_200_000 {
			if i == s.len() {
				s.shift()
				i = 0
			}
			nv.apply(s.rec(i))
			i++
		}
		b.ReportAllocs()
		b.SetBytes(s.bytes() / int64(s.len()))
		b.ResetTimer()
		for range b.N {
			if i == s.len() {
				b.StopTimer()
				s.shift()
				i = 0
				b.StartTimer()
			}
			nv.apply(s.rec(i))
			i++
		}
		b.StopTimer()
		b.ReportMetric(float64(len(nv.states)), "live-slots")
	})
}

// naive is the baseline a first implementation would write: encoding/json into a struct and a
// map from a formatted series-and-window key to a heap-allocated state, with the same sketch
// libraries and the same watermark and lateness rules.
type naive struct {
	states  map[string]*naiveState
	byEnd   map[int64][]string
	wm, max int64
}

type naiveState struct {
	count, sum, min, max float64
	hll                  *hyperloglog.Sketch
	dds                  *ddsketch.DDSketch
}

type naiveEvent struct {
	Org     string  `json:"org"`
	Site    string  `json:"site"`
	Zone    string  `json:"zone"`
	Device  string  `json:"device"`
	TS      int64   `json:"ts"`
	RSSI    float64 `json:"rssi"`
	DwellMs float64 `json:"dwell_ms"`
}

func newNaive() *naive {
	return &naive{states: map[string]*naiveState{}, byEnd: map[int64][]string{}, wm: math.MinInt64, max: math.MinInt64}
}

func (n *naive) apply(raw []byte) {
	var e naiveEvent
	if err := json.Unmarshal(raw, &e); err != nil || e.Org == "" {
		return
	}
	if e.TS < n.wm {
		return
	}
	series := e.Org + "|" + e.Site + "|" + e.Zone
	for _, size := range []int64{60_000, 900_000} {
		start := e.TS - e.TS%size
		k := series + "|" + strconv.FormatInt(size, 10) + "|" + strconv.FormatInt(start, 10)
		st := n.states[k]
		if st == nil {
			dds, _ := ddsketch.NewDefaultDDSketch(0.01)
			st = &naiveState{min: math.Inf(1), max: math.Inf(-1), hll: hyperloglog.New14(), dds: dds}
			n.states[k] = st
			n.byEnd[start+size] = append(n.byEnd[start+size], k)
		}
		st.count++
		st.sum += e.DwellMs
		st.min = math.Min(st.min, e.RSSI)
		st.max = math.Max(st.max, e.RSSI)
		st.hll.InsertHash(xxhash.Sum64String(e.Device))
		_ = st.dds.Add(e.RSSI)
	}
	if e.TS > n.max {
		n.max = e.TS
		n.wm = max(n.wm, e.TS-30_000)
		for end, keys := range n.byEnd {
			if end <= n.wm {
				for _, k := range keys {
					delete(n.states, k)
				}
				delete(n.byEnd, end)
			}
		}
	}
}

// filled returns a store holding the stream's first n records.
func filled(b *testing.B, doc string, n int) (*fixture, *Store) {
	s := oneMillionSeries()
	f := newFixture(b, doc)
	st := New(f.spec, f.layout, func(*Window) {})
	r := f.dec.NewRecord()
	for i := range n {
		if err := f.dec.Decode(s.rec(i), 0, r); err == nil {
			st.Apply(r)
		}
	}
	return f, st
}

// BenchmarkSnapshot measures encoding and restoring a snapshot of ~1M series of the full spec
// and of the scalar spec; MB/s is snapshot bytes per second.
func BenchmarkSnapshot(b *testing.B) {
	for _, tc := range []struct{ name, doc string }{{"full", benchSpec}, {"scalar", scalarSpec}} {
		f, st := filled(b, tc.doc, 2_900_000)
		fp := Fingerprint(f.spec, f.layout)
		snap, err := st.AppendSnapshot(nil, fp)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/encode", func(b *testing.B) {
			buf := make([]byte, 0, len(snap))
			b.SetBytes(int64(len(snap)))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = st.AppendSnapshot(buf[:0], fp); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.Stats().Slots), "slots")
		})
		b.Run(tc.name+"/restore", func(b *testing.B) {
			b.SetBytes(int64(len(snap)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Restore(f.spec, f.layout, nil, snap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkMemory reports the heap bytes per live (series, window) slot beyond the interned
// key bytes, measured as the heap the store holds, for the scalar spec (target: 64) and the
// full spec with its sketches.
func BenchmarkMemory(b *testing.B) {
	for _, tc := range []struct{ name, doc string }{{"scalar", scalarSpec}, {"full", benchSpec}} {
		b.Run(tc.name, func(b *testing.B) {
			oneMillionSeries()
			for b.Loop() {
				before := heapInUse()
				_, st := filled(b, tc.doc, 2_900_000)
				after := heapInUse()
				s := st.Stats()
				b.ReportMetric(float64(s.Slots), "slots")
				b.ReportMetric(float64(s.Series), "series")
				b.ReportMetric(float64(int64(after-before)-s.KeyBytes)/float64(s.Slots), "heap-B/slot-beyond-keys")
				b.ReportMetric(float64(after-before)/float64(s.Series), "heap-B/series")
				b.ReportMetric(float64(s.KeyBytes)/float64(s.Series), "key-B/series")
				runtime.KeepAlive(st)
			}
		})
	}
}

// BenchmarkScale10M fills 10M series × 2 windows of the scalar spec in one process and reports
// the heap in use (target: at most 2.5 GB). Run it alone: go test -run XXX -bench Scale10M.
func BenchmarkScale10M(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		f := newFixture(b, scalarSpec)
		st := New(f.spec, f.layout, func(*Window) {})
		r := f.dec.NewRecord()
		var raw []byte
		// 10M distinct series, every one in both windows (all in the first minute).
		for i := range 10_000_000 {
			raw = fmt.Appendf(raw[:0], `{"org":"org-%04d","site":"site-%02d","zone":"zone-%03d","ts":%d,"rssi":-%d,"dwell_ms":%d}`,
				i/10_000, (i/100)%100, i%100, 1767225600000+int64(i)*59_999/10_000_000, 30+i%60, i%30000)
			if err := f.dec.Decode(raw, 0, r); err != nil {
				b.Fatal(err)
			}
			st.Apply(r)
		}
		after := heapInUse()
		s := st.Stats()
		b.ReportMetric(float64(after-before)/1e9, "heap-GB")
		b.ReportMetric(float64(s.Slots), "slots")
		b.ReportMetric(float64(int64(after-before)-s.KeyBytes)/float64(s.Slots), "heap-B/slot-beyond-keys")
		runtime.KeepAlive(st)
	}
}
