//go:build integration

package worker_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/gen"
)

var liveaggBin string

// testTimeout bounds the kill loop; LIVEAGG_EOS_TIMEOUT overrides it.
var testTimeout = 12 * time.Minute

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "liveagg-bin")
	if err != nil {
		panic(err)
	}
	liveaggBin = filepath.Join(dir, "liveagg")
	args := []string{"build", "-o", liveaggBin}
	if os.Getenv("LIVEAGG_RACE") != "" {
		// Workers built with the race detector: any race exits them with status 66.
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "../cmd/liveagg")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build liveagg: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// refRow is one expected (series, window) rollup.
type refRow struct {
	count, sum, min, max, last float64
	lastT                      int64
	devices                    map[string]bool
	rssi                       []float64
}

type rowID struct {
	org, site, zone string
	size, start     int64
}

type event struct {
	Org     *string  `json:"org"`
	Site    *string  `json:"site"`
	Zone    *string  `json:"zone"`
	Device  *string  `json:"device"`
	TS      *int64   `json:"ts"`
	RSSI    *float64 `json:"rssi"`
	DwellMs *float64 `json:"dwell_ms"`
}

// reference recomputes the rollups from the produced records, partition by partition in offset
// order, with encoding/json and maps: independent of the engine's decoder, slots and sketches.
func reference(parts map[int32][][]byte, logTimes map[int32][]int64, sizes []int64, lateness int64) (rows map[rowID]*refRow, rejected int) {
	rows = map[rowID]*refRow{}
	for p, recs := range parts {
		wm, maxT := int64(math.MinInt64), int64(math.MinInt64)
		open := map[rowID]*refRow{}
		for i, raw := range recs {
			var e event
			if len(raw) > 65536 || json.Unmarshal(raw, &e) != nil || e.Org == nil || e.Site == nil || e.Zone == nil || e.Device == nil ||
				e.TS == nil || e.RSSI == nil || e.DwellMs == nil ||
				strings.ContainsRune(*e.Org+*e.Site+*e.Zone, '\x1f') || *e.TS > logTimes[p][i]+3600_000 {
				rejected++
				continue
			}
			t := *e.TS
			if t < wm {
				rejected++
				continue
			}
			for _, size := range sizes {
				id := rowID{*e.Org, *e.Site, *e.Zone, size, t - ((t%size)+size)%size}
				r := open[id]
				if r == nil {
					r = &refRow{min: math.Inf(1), max: math.Inf(-1), lastT: math.MinInt64, devices: map[string]bool{}}
					open[id] = r
				}
				r.count++
				r.sum += *e.DwellMs
				r.min, r.max = math.Min(r.min, *e.RSSI), math.Max(r.max, *e.RSSI)
				if t > r.lastT || (t == r.lastT && *e.RSSI > r.last) {
					r.lastT, r.last = t, *e.RSSI
				}
				r.devices[*e.Device] = true
				r.rssi = append(r.rssi, *e.RSSI)
			}
			if t > maxT {
				maxT = t
				wm = max(wm, t-lateness)
			}
		}
		// Only windows the partition's final watermark closed are emitted.
		for id, r := range open {
			if id.start+id.size <= wm {
				rows[id] = r
			}
		}
	}
	return rows, rejected
}

type fleet struct {
	t       testing.TB
	cfgPath string
	mu      sync.Mutex
	procs   map[int]*exec.Cmd
	exited  map[int]chan struct{}
	crashes []string
	logs    string
	kills   int
}

func (f *fleet) start(i int) {
	f.t.Helper()
	cmd := exec.Command(liveaggBin, "worker", "--config", f.cfgPath)
	cmd.Env = append(os.Environ(), "LIVEAGG_WORKER_ID=w"+strconv.Itoa(i))
	lf, err := os.OpenFile(filepath.Join(f.logs, fmt.Sprintf("w%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		lf.Close()
		// A worker must only ever stop because the test stopped it: a kill (signal) or a
		// drain (exit 0). Anything else, a crash or a race report, fails the test.
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && !ws.Signaled() && ws.ExitStatus() != 0 {
			f.mu.Lock()
			f.crashes = append(f.crashes, fmt.Sprintf("w%d exited with status %d", i, ws.ExitStatus()))
			f.mu.Unlock()
		}
		close(done)
	}()
	f.mu.Lock()
	f.procs[i] = cmd
	if f.exited == nil {
		f.exited = map[int]chan struct{}{}
	}
	f.exited[i] = done
	f.mu.Unlock()
}

func (f *fleet) kill9(i int) {
	f.mu.Lock()
	cmd, done := f.procs[i], f.exited[i]
	f.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	f.kills++
}

// dumpStacks makes every worker print its goroutines (SIGQUIT) into its log, for a stall.
func (f *fleet) dumpStacks() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.procs {
		_ = c.Process.Signal(syscall.SIGQUIT)
	}
	time.Sleep(time.Second)
}

// term sends SIGTERM, which drains the worker, and waits for it to exit.
func (f *fleet) term(i int) {
	f.mu.Lock()
	cmd, done := f.procs[i], f.exited[i]
	f.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-done
}

// pause stops worker i without its knowledge (SIGSTOP), as a long GC pause or a network
// partition would: its session lapses and the group gives its partitions to the others.
func (f *fleet) pause(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.procs[i].Process.Signal(syscall.SIGSTOP)
}

// resume wakes a paused worker (SIGCONT): until it learns it lost its partitions it is a zombie.
func (f *fleet) resume(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.procs[i].Process.Signal(syscall.SIGCONT)
}

// fencedExit waits up to d for worker i to exit, and if it did with status 4 (a partition
// failed) because it was fenced, takes that exit off the crash list: a woken zombie is expected
// to find itself fenced and exit for systemd to restart it. It reports how the worker was fenced.
func (f *fleet) fencedExit(i int, d time.Duration) string {
	f.mu.Lock()
	done := f.exited[i]
	f.mu.Unlock()
	select {
	case <-done:
	case <-time.After(d):
		return ""
	}
	b, _ := os.ReadFile(filepath.Join(f.logs, fmt.Sprintf("w%d.log", i)))
	how := ""
	for _, m := range []string{"INVALID_PRODUCER_EPOCH", "PRODUCER_FENCED", "claimed by a newer owner", "partition fenced"} {
		if strings.Contains(string(b), m) {
			how = m
			break
		}
	}
	if how == "" {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashes = slices.DeleteFunc(f.crashes, func(c string) bool { return c == fmt.Sprintf("w%d exited with status 4", i) })
	return how
}

func (f *fleet) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.procs {
		_ = c.Process.Signal(syscall.SIGKILL)
	}
}

// scenario is one pipeline under test: its topics, bucket, keyspace, produced records and
// worker fleet. Tests drive it through produce, fleet changes and verify.
type scenario struct {
	t          *testing.T
	ctx        context.Context
	brokers    []string
	cassHosts  []string
	name, ks   string
	inTopic    string
	outTopic   string
	bucket     string
	partitions int32
	cl         *kgo.Client
	manual     *kgo.Client // produces to the partition a record names
	adm        *kadm.Client
	s3c        *s3.Client
	g          *gen.Generator
	fleet      *fleet
	start      time.Time
	// declared says the spec declares its input partitioned by its key (and records carry
	// the canonical key), so it runs in one stage; otherwise it runs in two.
	declared bool
	chains   *chainWatch
}

// chainWatch polls the partitions' checkpoint manifests while a scenario runs and remembers
// every incremental base they named, so that verify can show the chains were bounded: new
// bases were written and old ones retired.
type chainWatch struct {
	store *checkpoint.Store
	mu    sync.Mutex
	bases map[string]checkpoint.Entry
	stop  chan struct{}
	done  chan struct{}
}

func watchChains(ctx context.Context, store *checkpoint.Store) *chainWatch {
	cw := &chainWatch{store: store, bases: map[string]checkpoint.Entry{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(cw.done)
		for {
			keys, _ := store.Partitions(ctx, "", "")
			for _, k := range keys {
				m, err := store.Inspect(ctx, k)
				if err != nil {
					continue
				}
				cw.mu.Lock()
				for _, ch := range [][]checkpoint.Entry{m.Chain, m.PrevChain} {
					if len(ch) > 0 && ch[0].Kind == checkpoint.Base {
						cw.bases[ch[0].Object] = ch[0]
					}
				}
				cw.mu.Unlock()
			}
			select {
			case <-cw.stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return cw
}

// check stops the watch and requires more bases than partitions (new bases were written) and at
// least one of them deleted since (retired), every manifest still naming only readable links.
func (cw *chainWatch) check(t *testing.T, ctx context.Context, partitions int) {
	close(cw.stop)
	<-cw.done
	retired := 0
	for _, e := range cw.bases {
		if _, err := cw.store.Fetch(ctx, e); err != nil {
			retired++
		}
	}
	keys, err := cw.store.Partitions(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		m, err := cw.store.Inspect(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		cur, prev := m.Chains()
		for _, e := range slices.Concat(cur, prev) {
			if _, err := cw.store.Fetch(ctx, e); err != nil {
				t.Errorf("%s: the manifest names an unreadable link: %v", k, err)
			}
		}
	}
	t.Logf("incremental checkpoints: %d bases seen in manifests, %d retired since", len(cw.bases), retired)
	if len(cw.bases) <= partitions || retired == 0 {
		t.Errorf("%d bases over %d partitions, %d retired: the chains never started over, or nothing was retired", len(cw.bases), partitions, retired)
	}
}

func newScenario(t *testing.T, total int, declared bool) *scenario {
	sc := &scenario{
		t: t, ctx: testenv.Context(t, 25*time.Minute), brokers: testenv.KafkaBrokers(t), cassHosts: testenv.CassandraHosts(t),
		name: testenv.Name(t, "eos"), partitions: 4, start: time.Now(), declared: declared,
	}
	if v := os.Getenv("LIVEAGG_EOS_TIMEOUT"); v != "" {
		testTimeout, _ = time.ParseDuration(v)
	}
	awsEP := testenv.AWSEndpoint(t)
	sc.ks = strings.ReplaceAll(sc.name, "-", "_")
	sc.inTopic, sc.outTopic, sc.bucket = sc.name+"-raw", sc.name+"-out", sc.name
	var err error
	sc.cl, err = kgo.NewClient(kgo.SeedBrokers(sc.brokers...), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(200_000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.cl.Close)
	sc.manual, err = kgo.NewClient(kgo.SeedBrokers(sc.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.manual.Close)
	sc.adm = kadm.NewClient(sc.cl)
	for _, tp := range []string{sc.inTopic, sc.outTopic} {
		if _, err := sc.adm.CreateTopic(sc.ctx, sc.partitions, 1, nil, tp); err != nil {
			t.Fatal(err)
		}
	}
	sc.s3c = s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := sc.s3c.CreateBucket(sc.ctx, &s3.CreateBucketInput{Bucket: aws.String(sc.bucket)}); err != nil {
		t.Fatal(err)
	}
	// Two hours of event time over the whole run, whatever its size.
	sc.g = gen.New(gen.Config{Seed: 2026, Orgs: 20, SitesPerOrg: 4, StepMs: 7200_000 / float64(total),
		JitterMs: 5000, LateFraction: 0.01, LateByMs: 120_000, MalformedFraction: 0.005})

	dir := t.TempDir()
	specPath := filepath.Join(dir, "spec.yaml")
	partitioning := ""
	if declared {
		partitioning = ", partitioned_by: [org, site, zone]"
	}
	specDoc := fmt.Sprintf(`
name: %s
input: {topic: %s, time_field: ts, time_unit: ms, max_record_bytes: 65536%s}
key: [org, site, zone]
windows: [1m, 15m]
allowed_lateness: 30s
aggregations:
  - {fn: count}
  - {fn: sum, field: dwell_ms}
  - {fn: min, field: rssi}
  - {fn: max, field: rssi}
  - {fn: last, field: rssi}
  - {fn: distinct, field: device}
  - {fn: quantiles, field: rssi, quantiles: [0.5]}
outputs:
  - {type: cassandra, keyspace: %s, table: rollup}
  - {type: kafka, topic: %s}
  - {type: s3, url: "s3://%s/rollups"}
`, sc.name, sc.inTopic, partitioning, sc.ks, sc.outTopic, sc.bucket)
	if err := os.WriteFile(specPath, []byte(specDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "worker.yaml")
	cfg := fmt.Sprintf(`
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "s3://%s/checkpoints", interval: 2s, records: 12000, incremental: true, base_ratio: 0.3, max_deltas: 1}
sinks:
  cassandra: {hosts: [%s], timeout: 20s, concurrency: 64}
aws: {endpoint: %q}
`, specPath, strings.Join(sc.brokers, ","), sc.bucket, strings.Join(sc.cassHosts, ","), awsEP)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// Short chains (a new base after one delta, or deltas of 30 % of the base) and frequent
	// checkpoints, so that every run writes new bases and retires old ones under the kills and
	// rebalances.
	ckpts, err := checkpoint.Open("s3://"+sc.bucket+"/checkpoints", checkpoint.WithS3Client(sc.s3c))
	if err != nil {
		t.Fatal(err)
	}
	sc.chains = watchChains(sc.ctx, ckpts)
	sc.fleet = &fleet{t: t, cfgPath: cfgPath, procs: map[int]*exec.Cmd{}, logs: dir}
	t.Cleanup(sc.fleet.stopAll)
	logTailsOnFailure(t, dir, 8, 25)
	return sc
}

// produce writes n generated records keyed by series, so each (series, window) is computed by
// one partition (in one stage) or its partials are in one partition (in two).
func (sc *scenario) produce(n int) {
	sep := "|"
	if sc.declared {
		sep = "\x1f"
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var perr error
	for range n {
		e := sc.g.Next()
		r := &kgo.Record{Topic: sc.inTopic, Key: fmt.Appendf(nil, "org-%04d%ssite-%02d%szone-%03d", e.Org, sep, e.Site, sep, e.Zone),
			Value: gen.AppendJSON(nil, e)}
		wg.Add(1)
		sc.cl.Produce(sc.ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if perr != nil {
		sc.t.Fatal(perr)
	}
}

// produceBad writes bad records of every kind we can think of, into every partition, among
// good ones: each must end in the dead-letter topic, once.
func (sc *scenario) produceBad() {
	now := sc.g.NowMs()
	good := func(ts int64) string {
		return fmt.Sprintf(`{"org":"o","site":"s","zone":"z","device":"d","ts":%d,"rssi":-50,"dwell_ms":10}`, ts)
	}
	bad := []string{
		good(now)[:30], // truncated JSON
		`{"org":"o","site":"s","zone":"z","device":"d","ts":"yesterday","rssi":-50,"dwell_ms":10}`,              // time of the wrong type
		`{"site":"s","zone":"z","device":"d","ts":` + strconv.FormatInt(now, 10) + `,"rssi":-50,"dwell_ms":10}`, // missing key field
		strings.Replace(good(now), `"rssi":-50`, `"rssi":"loud"`, 1),                                            // value of the wrong type
		strings.Replace(good(now), `"dwell_ms":10`, `"dwell_ms":1e400`, 1),                                      // number out of range
		strings.Replace(good(now), `"org":"o"`, `"org":"o\u001fx"`, 1),                                          // key with the separator
		good(time.Now().Add(48 * time.Hour).UnixMilli()),                                                        // far future
		good(0), // far past: late
		`{"org":"` + strings.Repeat("x", 100<<10) + `"}`, // huge: over max_record_bytes
		"\xff\xfe not even utf-8",                        // garbage
		`[1,2,3]`,                                        // JSON, but not an object
		``,                                               // empty
	}
	for p := range sc.partitions {
		for _, b := range bad {
			r := &kgo.Record{Topic: sc.inTopic, Value: []byte(b), Partition: p}
			if err := sc.manual.ProduceSync(sc.ctx, r).FirstErr(); err != nil {
				sc.t.Fatal(err)
			}
		}
	}
}

// flush writes one far-future record per partition, which closes every window of the run.
func (sc *scenario) flush() {
	for p := range sc.partitions {
		val := fmt.Appendf(nil, `{"org":"flush","site":"flush","zone":"flush","device":"flush","ts":%d,"rssi":-1,"dwell_ms":0}`, sc.g.NowMs()+24*3600_000)
		r := &kgo.Record{Topic: sc.inTopic, Value: val, Partition: p}
		if sc.declared {
			r.Key = []byte("flush\x1fflush\x1fflush")
		}
		if err := sc.manual.ProduceSync(sc.ctx, r).FirstErr(); err != nil {
			sc.t.Fatal(err)
		}
	}
}

// reference reads the input back (for each record's partition and order) and recomputes.
func (sc *scenario) reference() (map[rowID]*refRow, int) {
	ends, err := sc.adm.ListEndOffsets(sc.ctx, sc.inTopic)
	if err == nil {
		err = ends.Error() // a partition's own error: its offset would read as 0 records
	}
	if err != nil {
		sc.t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(e kadm.ListedOffset) { total += e.Offset })
	rd, err := kgo.NewClient(kgo.SeedBrokers(sc.brokers...), kgo.ConsumeTopics(sc.inTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		sc.t.Fatal(err)
	}
	defer rd.Close()
	parts := map[int32][][]byte{}
	logTimes := map[int32][]int64{}
	for got := int64(0); got < total; {
		fs := rd.PollFetches(sc.ctx)
		if sc.ctx.Err() != nil {
			sc.t.Fatal("reading input back timed out")
		}
		fs.EachRecord(func(r *kgo.Record) {
			parts[r.Partition] = append(parts[r.Partition], r.Value)
			logTimes[r.Partition] = append(logTimes[r.Partition], r.Timestamp.UnixMilli())
			got++
		})
	}
	want, rejected := reference(parts, logTimes, []int64{60_000, 900_000}, 30_000)
	sc.t.Logf("reference: %d records, %d (series, window) rows, %d rejected", total, len(want), rejected)
	return want, rejected
}

// caughtUp reports whether the checkpoints (mirrored as group offsets) cover the whole input,
// and in two stages, then the whole repartition topic.
func (sc *scenario) caughtUp() bool {
	if !caughtUp(sc.ctx, sc.adm, "liveagg."+sc.name, sc.inTopic) {
		return false
	}
	return sc.declared || caughtUp(sc.ctx, sc.adm, "liveagg."+sc.name+".stage2", sc.name+".repartition")
}

// caughtUp reports whether group's committed offsets reach the end of every partition of topic.
func caughtUp(ctx context.Context, adm *kadm.Client, group, topic string) bool {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error() // a partition's own error: its offset would read as caught up
	}
	if err != nil {
		return false
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	done := true
	ends.Each(func(e kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, e.Partition)
		if !ok || c.At < e.Offset {
			done = false
		}
	})
	return done
}

func (sc *scenario) waitCaughtUp(what string) {
	for !sc.caughtUp() {
		if time.Since(sc.start) > testTimeout {
			sc.fleet.dumpStacks()
			sc.t.Fatalf("workers did not catch up: %s", what)
		}
		time.Sleep(500 * time.Millisecond)
	}
	sc.t.Logf("caught up (%s) at %v", what, time.Since(sc.start).Round(time.Millisecond))
}

func (sc *scenario) verify() {
	sc.fleet.mu.Lock()
	crashes := sc.fleet.crashes
	sc.fleet.mu.Unlock()
	if len(crashes) > 0 {
		sc.t.Errorf("workers stopped on their own: %v", crashes)
	}
	want, rejected := sc.reference()
	time.Sleep(2 * time.Second)
	checkCassandra(sc.t, sc.cassHosts, sc.ks, want)
	checkKafka(sc.t, sc.ctx, sc.brokers, sc.outTopic, sc.name+".dlq", want, rejected)
	checkS3(sc.t, sc.ctx, sc.s3c, sc.bucket, want)
	partitions := int(sc.partitions)
	if !sc.declared {
		partitions *= 2 // two stages, each with its checkpoints
	}
	sc.chains.check(sc.t, sc.ctx, partitions)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// TestExactlyOnceUnderKill9: a million records (Zipf-skewed orgs, late and malformed records),
// three workers, and a harness that kill -9s a random worker at random moments at least ten
// times, restarting it each time. Every (series, window) must be in Cassandra, S3 and the
// read_committed Kafka output exactly once and exactly right, and every bad record must be
// dead-lettered exactly once. The spec does not declare its input's partitioning, so it runs in
// two stages: the kills land in both, and in the repartition topic's transactions between them.
func TestExactlyOnceUnderKill9(t *testing.T) {
	n := envInt("LIVEAGG_EOS_RECORDS", 1_000_000)
	kills := envInt("LIVEAGG_EOS_KILLS", 10)
	sc := newScenario(t, n, false)
	sc.produce(n / 2)
	sc.produceBad()
	sc.produce(n - n/2)
	sc.flush()
	t.Logf("produced %d records in %v", n, time.Since(sc.start).Round(time.Millisecond))
	for i := range 3 {
		sc.fleet.start(i)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for sc.fleet.kills < kills || !sc.caughtUp() {
		if time.Since(sc.start) > testTimeout {
			sc.fleet.dumpStacks()
			t.Fatalf("workers did not catch up (%d kills)", sc.fleet.kills)
		}
		time.Sleep(time.Duration(1500+rng.IntN(3000)) * time.Millisecond)
		if sc.fleet.kills < kills {
			i := rng.IntN(3)
			sc.fleet.kill9(i)
			sc.fleet.start(i)
		}
	}
	t.Logf("caught up after %d kill -9s in %v", sc.fleet.kills, time.Since(sc.start).Round(time.Millisecond))
	sc.verify()
}

// TestRebalanceAndWholeFleetOutage: two workers start, a third joins mid-stream, one drains
// and leaves (SIGTERM), and then every worker is killed while producers keep writing; a fresh
// fleet (new processes, new ids, nothing local) restores from the checkpoint store and catches
// up. State moves with its partitions throughout, and the results are exact. The spec declares
// its input partitioned by its key, so it runs in one stage.
func TestRebalanceAndWholeFleetOutage(t *testing.T) {
	n := envInt("LIVEAGG_REBALANCE_RECORDS", 300_000)
	sc := newScenario(t, n, true)
	sc.produce(n / 3)
	sc.fleet.start(0)
	sc.fleet.start(1)
	time.Sleep(3 * time.Second)
	sc.produce(n / 3)
	sc.fleet.start(2) // joins mid-stream: cooperative-sticky moves some partitions to it
	time.Sleep(4 * time.Second)
	sc.fleet.term(0) // drains and leaves
	sc.waitCaughtUp("after join and leave")

	// Whole-fleet outage while the producers go on.
	sc.fleet.kill9(1)
	sc.fleet.kill9(2)
	sc.produce(n - 2*(n/3))
	sc.flush()
	time.Sleep(2 * time.Second)
	sc.fleet.start(5)
	sc.fleet.start(6)
	sc.waitCaughtUp("after the outage")
	sc.verify()
}

// TestZombieIsFenced: a worker is paused (SIGSTOP) past its session while the other takes its
// partitions, restores them and goes on checkpointing, starting new bases and retiring old
// chains; then it wakes (SIGCONT) believing it still owns them. Its checkpoints and output are
// fenced until it rejoins, and the results are exact.
func TestZombieIsFenced(t *testing.T) {
	n := envInt("LIVEAGG_ZOMBIE_RECORDS", 300_000)
	sc := newScenario(t, n, false)
	sc.produce(n / 2)
	sc.fleet.start(0)
	sc.fleet.start(1)
	time.Sleep(5 * time.Second)
	sc.fleet.pause(0)
	sc.produce(n / 4)
	time.Sleep(25 * time.Second) // the session (10s) lapses, worker 1 restores and checkpoints on
	sc.fleet.resume(0)
	sc.produce(n - n/2 - n/4)
	sc.flush()
	// The zombie finds itself fenced, by the Kafka outbox (its producer epoch is older than the
	// new owner's) or by the checkpoint store, and exits for systemd to restart it; or it
	// learns of the lost session first and drops its partitions. Either way it writes nothing.
	if how := sc.fleet.fencedExit(0, 40*time.Second); how != "" {
		t.Logf("the zombie was fenced (%s) and exited; restarting it as systemd would", how)
		sc.fleet.start(0)
	} else {
		t.Logf("the zombie dropped its partitions without being fenced")
	}
	sc.waitCaughtUp("after the zombie woke")
	sc.verify()
}

func compare(t *testing.T, where string, id rowID, got map[string]float64, w *refRow) {
	t.Helper()
	exact := map[string]float64{"count": w.count, "sum_dwell_ms": w.sum, "min_rssi": w.min, "max_rssi": w.max, "last_rssi": w.last}
	for k, v := range exact {
		if got[k] != v {
			t.Errorf("%s %v: %s = %v, want %v", where, id, k, got[k], v)
		}
	}
	if d, n := got["distinct_device"], float64(len(w.devices)); math.Abs(d-n) > math.Max(1, 0.02*n) {
		t.Errorf("%s %v: distinct = %v, want about %v", where, id, d, n)
	}
	sort.Float64s(w.rssi)
	r := 0.5 * float64(len(w.rssi)-1)
	lo, hi := w.rssi[int(math.Floor(r))], w.rssi[int(math.Ceil(r))]
	if q := got["quantiles_rssi_p50"]; q < lo-0.011*math.Abs(lo) || q > hi+0.011*math.Abs(hi) {
		t.Errorf("%s %v: p50 = %v, want within 1 %% of [%v, %v]", where, id, q, lo, hi)
	}
}

func checkCassandra(t *testing.T, hosts []string, ks string, want map[rowID]*refRow) {
	host, port, _ := strings.Cut(hosts[0], ":")
	c := gocql.NewCluster(host)
	c.Port, _ = strconv.Atoi(port)
	c.Timeout = 30 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	iter := s.Query(fmt.Sprintf(`SELECT org, site, zone, window_size, window_start, count, sum_dwell_ms, min_rssi, max_rssi, last_rssi, distinct_device, quantiles_rssi_p50 FROM %s.rollup`, ks)).PageSize(5000).Iter()
	var org, site, zone string
	var size int
	var startT time.Time
	var count, distinct int64
	var sum, mn, mx, last, p50 float64
	seen := map[rowID]bool{}
	for iter.Scan(&org, &site, &zone, &size, &startT, &count, &sum, &mn, &mx, &last, &distinct, &p50) {
		id := rowID{org, site, zone, int64(size) * 1000, startT.UnixMilli()}
		if org == "flush" {
			continue
		}
		w, ok := want[id]
		if !ok {
			t.Errorf("cassandra: unexpected row %v (count %d)", id, count)
			continue
		}
		seen[id] = true
		compare(t, "cassandra", id, map[string]float64{"count": float64(count), "sum_dwell_ms": sum, "min_rssi": mn, "max_rssi": mx,
			"last_rssi": last, "distinct_device": float64(distinct), "quantiles_rssi_p50": p50}, w)
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Errorf("cassandra has %d of %d expected rows", len(seen), len(want))
	}
	t.Logf("cassandra: %d rows checked", len(seen))
}

func parseRow(t *testing.T, line []byte) (rowID, map[string]float64) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("row %q: %v", line, err)
	}
	start, err := time.Parse(time.RFC3339, m["window_start"].(string))
	if err != nil {
		t.Fatal(err)
	}
	size, err := time.ParseDuration(m["window_size"].(string))
	if err != nil {
		t.Fatal(err)
	}
	id := rowID{m["org"].(string), m["site"].(string), m["zone"].(string), size.Milliseconds(), start.UnixMilli()}
	vals := map[string]float64{}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			vals[k] = f
		}
	}
	return id, vals
}

func checkKafka(t *testing.T, ctx context.Context, brokers []string, topic, dlq string, want map[rowID]*refRow, rejected int) {
	seen := map[rowID]int{}
	dead, flushRows := 0, 0
	readToEnd(t, ctx, brokers, []string{topic, dlq}, func(r *kgo.Record) {
		if r.Topic == dlq {
			dead++
			return
		}
		id, vals := parseRow(t, r.Value)
		if id.org == "flush" {
			flushRows++
			return
		}
		seen[id]++
		if w, ok := want[id]; ok && seen[id] == 1 {
			compare(t, "kafka", id, vals, w)
		}
	})
	dups, missing := 0, 0
	for id, c := range seen {
		if c > 1 {
			dups++
		}
		if _, ok := want[id]; !ok {
			t.Errorf("kafka: unexpected row %v", id)
		}
	}
	for id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	if dups != 0 || missing != 0 {
		t.Errorf("kafka (read_committed): %d rows duplicated, %d missing of %d", dups, missing, len(want))
	}
	if dead != rejected {
		t.Errorf("dead-letter topic has %d records, want %d (malformed + late, each once)", dead, rejected)
	}
	t.Logf("kafka: %d rows, %d dead letters checked", len(seen), dead)
}

func checkS3(t *testing.T, ctx context.Context, cl *s3.Client, bucket string, want map[rowID]*refRow) {
	seen := map[rowID]int{}
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("rollups/")})
	objects := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			objects++
			out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", *o.Key, err)
			}
			sc := bufio.NewScanner(zr)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				id, vals := parseRow(t, sc.Bytes())
				if id.org == "flush" {
					continue
				}
				seen[id]++
				if w, ok := want[id]; ok && seen[id] == 1 {
					compare(t, "s3", id, vals, w)
				}
			}
		}
	}
	dups, missing := 0, 0
	for _, c := range seen {
		if c > 1 {
			dups++
		}
	}
	for id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	if dups != 0 || missing != 0 || len(seen) != len(want) {
		t.Errorf("s3: %d rows duplicated, %d missing, %d seen of %d", dups, missing, len(seen), len(want))
	}
	t.Logf("s3: %d objects, %d rows checked", objects, len(seen))
}
