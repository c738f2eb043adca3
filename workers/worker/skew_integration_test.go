//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	indoorlocation "github.com/liveagg/liveagg/examples/indoor-location"
	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/gen"
	"github.com/liveagg/liveagg/workers/worker"
)

// skewRun is one pipeline of the skew benchmark: its worker processes by spec, where they
// read, and what they cost.
type skewRun struct {
	b       *testing.B
	ctx     context.Context
	brokers []string
	dir     string
	token   string
	procs   []*skewProc
}

type skewProc struct {
	p       *testenv.Proc
	metrics int // metrics port (pprof when LIVEAGG_SKEW_PROFILE names a folder)
	spec    string
	machine int // the fleet member (instance) the process stands for
	admin   *admin.Client
	idleCPU float64 // CPU seconds used before the records arrived: joining, restoring, waiting
}

// BenchmarkMultilevelSkew measures why the multilevel pipeline exists. The same records, with
// orgs Zipf-distributed (s = 1.2 over 40 orgs: the top org carries 31 %), are aggregated into
// 1-minute rollups per (org, site, floor, zone) by 3 workers, twice:
//
//   - one level, reading a 12-partition topic keyed by org (what a groupBy re-key makes), so
//     the top org's partition carries a third of the stream;
//   - two levels, level 1 on the raw 12-partition topic keyed by device, level 2 merging its
//     partials from a 12-partition topic keyed by (org, site); each of the 3 fleet members runs
//     one level-1 and one level-2 worker.
//
// One partition is consumed by one owner, one core: a fleet's sustainable rate is bounded by
// its busiest partition however many cores it has. This 2-core machine cannot give 12
// partitions a core each, so the rates are computed from what each partition's owner spent per
// record (records per partition from the workers' status API, CPU time per worker from /proc): the
// partition-bound rate is records over the CPU seconds of the busiest partition (its records
// times its worker's CPU seconds per record). Wall-clock rates on this machine, where six
// workers and the broker share two cores, are reported too.
//
//	go test -tags integration -run XXX -bench MultilevelSkew -benchtime 1x ./workers/worker/
func BenchmarkMultilevelSkew(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	ctx := testenv.Context(b, 30*time.Minute)
	n := envInt("LIVEAGG_SKEW_RECORDS", 600_000)
	name := testenv.Name(b, "skew")
	dir := b.TempDir()
	token := writeFile(b, dir, "token", "bench-token-0123456789")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(500_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	raw, byOrg, partials := name+"-location-raw", name+"-by-org", name+"-location-partials"
	for _, t := range []string{raw, byOrg, partials} {
		if _, err := adm.CreateTopic(ctx, 12, 1, nil, t); err != nil {
			b.Fatal(err)
		}
	}
	// Three minutes of event time: a zone-minute on one raw partition holds about 14 records on
	// average and 170 for the top org. Denser streams (production ones are) favour two levels
	// more: level 2's work is per partial, and one partial stands for all of them.
	g := gen.New(gen.Config{Seed: 12, Orgs: 40, Zipf: 1.2, StepMs: 180_000 / float64(n)})
	orgCount := map[int]int{}
	type rec struct{ device, org, value []byte }
	recs := make([]rec, n)
	for i := range recs {
		e := g.Next()
		orgCount[e.Org]++
		recs[i] = rec{gen.Key(nil, e), fmt.Appendf(nil, "org-%04d", e.Org), gen.AppendJSON(nil, e)}
	}
	topShare := float64(orgCount[0]) / float64(n)
	if topShare < 0.30 {
		b.Fatalf("top org carries %.1f %% of records; the benchmark needs at least 30 %%", 100*topShare)
	}
	// produce writes the records to topic once every worker of the run owns its share of
	// partitions, so no worker starts with all of them.
	produce := func(topic string, byOrg bool) {
		batch := make([]*kgo.Record, 0, 50_000)
		for i, r := range recs {
			key := r.device
			if byOrg {
				key = r.org
			}
			batch = append(batch, &kgo.Record{Topic: topic, Key: key, Value: r.value})
			if len(batch) == cap(batch) || i == len(recs)-1 {
				if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}

	aggs := specSection(indoorlocation.Level1, "aggregations:")
	single := writeFile(b, dir, "single.yaml", `
name: %s-single
input: {topic: %s, time_field: ts}
key: [org, site, floor, zone]
windows: [1m]
allowed_lateness: 30s
%s
outputs: [{type: file, path: %q}]
`, name, byOrg, aggs, filepath.Join(dir, "out-single"))
	l1 := writeFile(b, dir, "l1.yaml", "%s", strings.NewReplacer("name: indoor-l1", "name: "+name+"-l1",
		"topic: location-raw", "topic: "+raw, "topic: location-partials", "topic: "+partials).Replace(string(indoorlocation.Level1)))
	// Backlog mode: level 1's partitions run far apart in event time, so level 2 waits for
	// all of them (the example's 5m is for real time).
	l2 := writeFile(b, dir, "l2.yaml", `
name: %s-l2
input: {topic: %s, format: partials}
key: [org, site, floor, zone]
windows: [1m]
allowed_lateness: 3h
%s
outputs: [{type: file, path: %q}]
`, name, partials, aggs, filepath.Join(dir, "out-two"))

	for b.Loop() {
		one := &skewRun{b: b, ctx: ctx, brokers: brokers, dir: dir, token: token}
		for m := range 3 {
			one.start(single, m)
		}
		one.balanced(single)
		one.markIdle()
		t0 := time.Now()
		one.profile(single, 4)
		produce(byOrg, true)
		hotShare := partitionShare(b, ctx, adm, byOrg, n)
		one.wait(byOrg, nil, single)
		oneWall := time.Since(t0)
		oneStats := one.measure()
		one.stop()

		two := &skewRun{b: b, ctx: ctx, brokers: brokers, dir: dir, token: token}
		for m := range 3 {
			two.start(l1, m)
			two.start(l2, m)
		}
		two.balanced(l1)
		two.balanced(l2)
		two.markIdle()
		t0 = time.Now()
		two.profile(l1, 4)
		produce(raw, false)
		two.wait(raw, nil, l1)
		// Level 1's partials become visible when its transaction commits, at a checkpoint.
		two.checkpoint(l1)
		ends := map[int32]int64{}
		readCommitted(b, ctx, brokers, partials, func(r *kgo.Record) { ends[r.Partition] = max(ends[r.Partition], r.Offset+1) })
		two.wait(partials, ends, l2)
		twoWall := time.Since(t0)
		twoStats := two.measure()
		two.stop()
		var partialBytes, partialRecs int64
		readCommitted(b, ctx, brokers, partials, func(r *kgo.Record) { partialRecs++; partialBytes += int64(len(r.Key) + len(r.Value)) })

		oneRate := float64(n) / oneStats.maxBusy
		twoRate := float64(n) / twoStats.maxBusy
		// The hottest partition of the one-level fleet, fed at the two-level fleet's rate:
		// it gets hotShare of the records and can apply 1/(its busy seconds per record).
		hotCapacity := float64(oneStats.hotRecords) / oneStats.maxBusy
		lagGrowth := twoRate*hotShare - hotCapacity
		b.ReportMetric(oneRate, "one-level-rec/s")
		b.ReportMetric(twoRate, "two-level-rec/s")
		b.ReportMetric(twoRate/oneRate, "two/one")
		b.ReportMetric(oneStats.maxMean, "one-level-max/mean-cpu")
		b.ReportMetric(twoStats.maxMean, "two-level-max/mean-cpu")
		b.ReportMetric(float64(partialBytes)/float64(n), "partial-B/raw-rec")
		fmt.Fprintf(os.Stderr, `records %d, top org %.1f %%, hottest org-keyed partition %.1f %%
one level:  partition-bound %.0f rec/s (busiest partition %.2f CPU-s), wall %.0f rec/s on this machine, CPU per worker %s (max/mean %.2f)
two levels: partition-bound %.0f rec/s (busiest partition %.2f CPU-s), wall %.0f rec/s on this machine, CPU per member %s (max/mean %.2f)
two/one: %.2fx; at the two-level rate the one-level hot partition's lag grows by %.0f records/s
intermediate topic: %d partials, %.1f bytes per raw record
`, n, 100*topShare, 100*hotShare,
			oneRate, oneStats.maxBusy, float64(n)/oneWall.Seconds(), oneStats.cpus, oneStats.maxMean,
			twoRate, twoStats.maxBusy, float64(n)/twoWall.Seconds(), twoStats.cpus, twoStats.maxMean,
			twoRate/oneRate, lagGrowth, partialRecs, float64(partialBytes)/float64(n))
	}
}

func (r *skewRun) start(specPath string, machine int) {
	port, mport := testenv.FreePort(r.b), testenv.FreePort(r.b)
	cfg := writeFile(r.b, r.dir, fmt.Sprintf("w-%d.yaml", port), `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 5s, records: 1000000}
admin: {listen: "127.0.0.1:%d", token_file: %q}
metrics: {listen: "127.0.0.1:%d", pprof: true}
`, specPath, strings.Join(r.brokers, ","), filepath.Join(r.dir, "ckpt"), port, r.token, mport)
	id := fmt.Sprintf("%s-m%d-%d", strings.TrimSuffix(filepath.Base(specPath), ".yaml"), machine, port)
	p := startWorker(r.b, r.dir, cfg, id)
	r.procs = append(r.procs, &skewProc{p: p, spec: specPath, machine: machine, metrics: mport,
		admin: admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", port), "bench-token-0123456789", nil)})
}

// balanced waits until the 12 partitions of specPath's topic are spread over its 3 processes.
func (r *skewRun) balanced(specPath string) {
	for {
		counts := []int{}
		for _, sp := range r.procs {
			if sp.spec != specPath {
				continue
			}
			var st worker.Status
			if err := sp.admin.Status(r.ctx, &st); err != nil {
				counts = append(counts, -1)
				continue
			}
			counts = append(counts, len(st.Partitions))
		}
		if len(counts) == 3 && counts[0] == 4 && counts[1] == 4 && counts[2] == 4 {
			return
		}
		if r.ctx.Err() != nil {
			r.b.Fatalf("%s: partitions never spread over the workers: %v", specPath, counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wait returns when the processes of specPath have applied every record of topic (up to ends,
// or the end offsets when nil), and how long that took from the first process's start.
func (r *skewRun) wait(topic string, ends map[int32]int64, specPath string) time.Duration {
	start := time.Now()
	if ends == nil {
		listed, err := kadm.NewClient(mustClient(r.b, r.brokers)).ListEndOffsets(r.ctx, topic)
		if err != nil {
			r.b.Fatal(err)
		}
		ends = map[int32]int64{}
		listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	}
	for {
		next := map[int32]int64{}
		for _, sp := range r.procs {
			if sp.spec != specPath {
				continue
			}
			var st worker.Status
			if err := sp.admin.Status(r.ctx, &st); err != nil {
				continue // not listening yet
			}
			for _, ps := range st.Partitions {
				next[ps.Partition] = ps.NextOffset
			}
		}
		done := true
		for p, e := range ends {
			if e > 0 && next[p] < e {
				done = false
			}
		}
		if done {
			return time.Since(start)
		}
		if r.ctx.Err() != nil {
			r.b.Fatalf("%s did not finish %s: at %v of %v", specPath, topic, next, ends)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// profile saves a CPU profile of the first process of specPath, taken over the next seconds,
// into LIVEAGG_SKEW_PROFILE when that names a folder.
func (r *skewRun) profile(specPath string, seconds int) {
	dir := os.Getenv("LIVEAGG_SKEW_PROFILE")
	if dir == "" {
		return
	}
	for _, sp := range r.procs {
		if sp.spec != specPath {
			continue
		}
		go func() {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", sp.metrics, seconds))
			if err != nil {
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(dir, strings.TrimSuffix(filepath.Base(specPath), ".yaml")+".pprof"))
			if err != nil {
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, resp.Body)
		}()
		return
	}
}

// markIdle records each process's CPU so far, so what is measured is the CPU the records cost.
func (r *skewRun) markIdle() {
	for _, sp := range r.procs {
		sp.idleCPU = procCPU(r.b, sp.p.Cmd.Process.Pid)
	}
}

func (r *skewRun) checkpoint(specPath string) {
	for _, sp := range r.procs {
		if sp.spec == specPath {
			if _, err := sp.admin.Checkpoint(r.ctx); err != nil {
				r.b.Fatal(err)
			}
		}
	}
}

type skewStats struct {
	maxBusy    float64 // CPU seconds the busiest partition's records cost
	hotRecords int64   // records of that partition
	maxMean    float64 // max/mean CPU seconds across fleet members
	cpus       string
}

// measure charges each partition its records times its worker's CPU seconds per record (CPU
// time, not wall time: six workers and a broker share two cores here, and wall time would
// count the waits), and sums CPU per fleet member. CPU spent before the records arrived
// (joining the group, restoring, waiting for the others) is not the records' and is left out.
func (r *skewRun) measure() skewStats {
	var s skewStats
	member := map[int]float64{}
	for _, sp := range r.procs {
		var st worker.Status
		if err := sp.admin.Status(r.ctx, &st); err != nil {
			r.b.Fatal(err)
		}
		cpu := procCPU(r.b, sp.p.Cmd.Process.Pid) - sp.idleCPU
		var records int64
		for _, ps := range st.Partitions {
			records += ps.Records
		}
		for _, ps := range st.Partitions {
			if load := cpu * float64(ps.Records) / float64(max(records, 1)); load > s.maxBusy {
				s.maxBusy, s.hotRecords = load, ps.Records
			}
		}
		member[sp.machine] += cpu
		fmt.Fprintf(os.Stderr, "  %s member %d: %.2f CPU-s, %d records, %.2f µs/record\n",
			filepath.Base(sp.spec), sp.machine, cpu, records, 1e6*cpu/float64(max(records, 1)))
	}
	var sum, mx float64
	var parts []string
	for m := range len(member) {
		sum += member[m]
		mx = max(mx, member[m])
		parts = append(parts, fmt.Sprintf("%.1fs", member[m]))
	}
	s.maxMean = mx / (sum / float64(len(member)))
	s.cpus = "[" + strings.Join(parts, " ") + "]"
	return s
}

func (r *skewRun) stop() {
	for _, sp := range r.procs {
		_ = sp.p.Cmd.Process.Kill()
		<-sp.p.Done
	}
}

// procCPU is a process's user plus system CPU seconds, from /proc.
func procCPU(tb testing.TB, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; USER_HZ is 100 on Linux
}

// partitionShare is the largest share of a topic's records on one partition.
func partitionShare(tb testing.TB, ctx context.Context, adm *kadm.Client, topic string, n int) float64 {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		tb.Fatal(err)
	}
	var mx int64
	ends.Each(func(o kadm.ListedOffset) { mx = max(mx, o.Offset) })
	return float64(mx) / float64(n)
}

// specSection returns the lines of a YAML spec from the line starting with key to the next
// top-level key.
func specSection(doc []byte, key string) string {
	lines := strings.Split(string(doc), "\n")
	var out []string
	in := false
	for _, l := range lines {
		if strings.HasPrefix(l, key) {
			in = true
		} else if in && l != "" && l[0] != ' ' && l[0] != '-' {
			break
		}
		if in {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func mustClient(tb testing.TB, brokers []string) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

func readCommitted(tb testing.TB, ctx context.Context, brokers []string, topic string, each func(*kgo.Record)) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.NumRecords() == 0 {
			return
		}
		fs.EachRecord(each)
	}
}
