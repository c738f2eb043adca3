//go:build integration

package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	indoorlocation "github.com/liveagg/liveagg/examples/indoor-location"
	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/gen"
)

// mlSpec is one spec of the example pipeline as the test runs it.
type mlSpec struct {
	name, input, table string // table "" for level 1, which writes only partials
	key                []string
	group              string
}

// mlPipeline runs the example's five specs as worker processes against the real Kafka and
// Cassandra, under unique names.
type mlPipeline struct {
	t       *testing.T
	ctx     context.Context
	brokers []string
	cass    []string
	prefix  string
	ks      string
	dir     string
	ckpt    string
	specs   []mlSpec
	cfgs    []string
	procs   map[string]*testenv.Proc
	killed  map[*testenv.Proc]bool
	adm     *kadm.Client
	cl      *kgo.Client
}

// TestMultilevelExactUnderKill9 is the multilevel pipeline's exactness test: device-keyed raw
// records go through level 1 (two processes), partials through the zone, floor and site specs
// of level 2 and the org spec of level 3 (one process each), with kill -9 of level-1 and
// level-2/3 workers mid-stream. Every rollup of every spatial level (zone, floor, site, org) and
// every temporal level (1m, 15m, 1h) in Cassandra must equal a single pass over the raw
// records. Then level 1 is replayed from an older checkpoint: nothing downstream may change.
func TestMultilevelExactUnderKill9(t *testing.T) {
	total := envInt("LIVEAGG_ML_RECORDS", 200_000)
	ml := newMLPipeline(t)
	for i := range ml.specs {
		n := 1
		if i == 0 {
			n = 2
		}
		for j := range n {
			ml.start(i, j)
		}
	}
	// Two hours of event time over the run, so 1h windows close.
	g := gen.New(gen.Config{Seed: 61, Orgs: 12, SitesPerOrg: 3, StepMs: 7200_000 / float64(total),
		JitterMs: 3000, LateFraction: 0.005, LateByMs: 120_000, MalformedFraction: 0.002})
	rng := rand.New(rand.NewPCG(6, 1))
	chunks := 10
	var snapshot string
	for c := range chunks {
		ml.produce(g, total/chunks)
		switch c {
		case 2, 5, 8: // a level-1 worker
			ml.kill9(0, rng.IntN(2))
		case 3, 6, 9: // a level-2 or level-3 worker
			ml.kill9(1+rng.IntN(4), 0)
		case 4:
			// Keep a copy of level 1's checkpoints as they are now, to replay from later, once
			// every partition has one (an owner restarted by a kill may not have saved yet).
			ml.waitCheckpointed(0, 4)
			snapshot = filepath.Join(ml.dir, "l1-checkpoints-copy")
			if out, err := exec.Command("cp", "-r", filepath.Join(ml.ckpt, ml.specs[0].name), snapshot).CombinedOutput(); err != nil {
				t.Fatalf("copy checkpoints: %v %s", err, out)
			}

		}
	}
	ml.flush()
	ml.waitAll()
	want := ml.reference()
	ml.checkUnexpectedExits()
	ml.verify(want)
	partials := ml.topicRecords(ml.prefix + "-location-partials")
	orgPartials := ml.topicRecords(ml.prefix + "-location-partials-org")
	t.Logf("intermediate topics: %d partials, %d org partials", partials, orgPartials)

	// Replay level 1 from the older checkpoints: its outbox already committed everything the
	// replay emits, so the intermediate topic and the rollups must stay exactly as they are.
	final, err := ml.adm.FetchOffsets(ml.ctx, ml.specs[0].group)
	if err != nil {
		t.Fatal(err)
	}
	for j := range 2 {
		ml.stop(0, j)
	}
	if err := os.RemoveAll(filepath.Join(ml.ckpt, ml.specs[0].name)); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-r", snapshot, filepath.Join(ml.ckpt, ml.specs[0].name)).CombinedOutput(); err != nil {
		t.Fatalf("restore checkpoints: %v %s", err, out)
	}
	for j := range 2 {
		ml.start(0, j)
	}
	// The new owners must really have gone back: each restored partition says where from. How
	// soon they join the group and restore depends on the machine's load, so their logs are
	// watched for a generous minute rather than read once after a fixed pause.
	replayed := int64(0)
	for until := time.Now().Add(time.Minute); replayed == 0; time.Sleep(250 * time.Millisecond) {
		for j := range 2 {
			for _, m := range restoredRE.FindAllStringSubmatch(ml.procs[ml.id(0, j)].Log(), -1) {
				p, _ := strconv.Atoi(m[1])
				off, _ := strconv.ParseInt(m[2], 10, 64)
				off = max(off, 0) // -1: no checkpoint, the partition replays from its start
				if c, ok := final.Lookup(ml.prefix+"-location-raw", int32(p)); ok && off < c.At {
					replayed += c.At - off
				}
			}
		}
		if replayed == 0 && time.Now().After(until) {
			t.Fatal("level 1 did not restore older checkpoints within a minute: nothing to replay")
		}
	}
	ml.waitGroup(0, ml.prefix+"-location-raw", nil)
	time.Sleep(5 * time.Second)
	t.Logf("level 1 replayed %d records from older checkpoints", replayed)
	if got := ml.topicRecords(ml.prefix + "-location-partials"); got != partials {
		t.Fatalf("replaying level 1 from an older checkpoint changed the intermediate topic: %d partials, was %d", got, partials)
	}
	ml.verify(want)
	ml.checkUnexpectedExits()
}

func newMLPipeline(t *testing.T) *mlPipeline {
	ml := &mlPipeline{t: t, ctx: testenv.Context(t, 20*time.Minute), brokers: testenv.KafkaBrokers(t), cass: testenv.CassandraHosts(t),
		prefix: testenv.Name(t, "ml"), dir: t.TempDir(), procs: map[string]*testenv.Proc{}, killed: map[*testenv.Proc]bool{}}
	ml.ks = strings.ReplaceAll(ml.prefix, "-", "_")
	ml.ckpt = filepath.Join(ml.dir, "checkpoints")
	var err error
	ml.cl, err = kgo.NewClient(kgo.SeedBrokers(ml.brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ml.cl.Close)
	ml.adm = kadm.NewClient(ml.cl)
	for _, tp := range []struct {
		name  string
		parts int32
	}{{"-location-raw", 4}, {"-location-partials", 4}, {"-location-partials-org", 2}} {
		if _, err := ml.adm.CreateTopic(ml.ctx, tp.parts, 1, nil, ml.prefix+tp.name); err != nil {
			t.Fatal(err)
		}
	}
	tables := []string{"", "rollup_zone", "rollup_floor", "rollup_site", "rollup_org"}
	for i, y := range indoorlocation.Specs() {
		doc := string(y)
		doc = strings.ReplaceAll(doc, "name: indoor-", "name: "+ml.prefix+"-")
		doc = strings.ReplaceAll(doc, "topic: location-", "topic: "+ml.prefix+"-location-")
		doc = strings.ReplaceAll(doc, "keyspace: indoor", "keyspace: "+ml.ks)
		// Event time runs about a thousand times faster than the clock here, so a level-1
		// partition whose worker was killed falls hours of event time behind the others for
		// the seconds its restart takes; the example's 5m assumes real time.
		doc = strings.ReplaceAll(doc, "allowed_lateness: 5m", "allowed_lateness: 3h")
		var name, input string
		var key []string
		specPath := writeFile(t, ml.dir, fmt.Sprintf("spec%d.yaml", i), "%s", doc)
		out, err := exec.Command(liveaggBin, "spec", "validate", specPath).CombinedOutput()
		if err != nil {
			t.Fatalf("spec %d: %v %s", i, err, out)
		}
		for _, line := range strings.Split(doc, "\n") {
			if v, ok := strings.CutPrefix(line, "name: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "key: "); ok {
				key = strings.Split(strings.Trim(v, "[]"), ", ")
			}
			if v, ok := strings.CutPrefix(line, "  topic: "); ok && input == "" {
				input = v
			}
		}
		ml.specs = append(ml.specs, mlSpec{name: name, input: input, table: tables[i], key: key, group: "liveagg." + name})
		ml.cfgs = append(ml.cfgs, writeFile(t, ml.dir, fmt.Sprintf("worker%d.yaml", i), `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 2s, records: 100000}
sinks:
  cassandra: {hosts: [%s], timeout: 20s, concurrency: 64}
`, specPath, strings.Join(ml.brokers, ","), ml.ckpt, strings.Join(ml.cass, ",")))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for id, p := range ml.procs {
				lines := strings.Split(p.Log(), "\n")
				t.Logf("%s log tail:\n%s", id, strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		}
	})
	return ml
}

// waitCheckpointed waits until every partition of a spec has a checkpoint.
func (ml *mlPipeline) waitCheckpointed(level, partitions int) {
	ml.t.Helper()
	store, err := checkpoint.Open("file://" + ml.ckpt)
	if err != nil {
		ml.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		done := 0
		for p := range int32(partitions) {
			m, err := store.Inspect(ml.ctx, checkpoint.Key{Spec: ml.specs[level].name, Topic: ml.specs[level].input, Partition: p})
			if err == nil && m.Current != nil {
				done++
			}
		}
		if done == partitions {
			return
		}
		if time.Now().After(deadline) {
			ml.t.Fatalf("%s: %d of %d partitions checkpointed after 30 s", ml.specs[level].name, done, partitions)
		}
	}
}

func (ml *mlPipeline) id(level, j int) string { return fmt.Sprintf("s%d-w%d", level, j) }

func (ml *mlPipeline) start(level, j int) {
	id := ml.id(level, j)
	ml.procs[id] = startWorker(ml.t, ml.dir, ml.cfgs[level], fmt.Sprintf("%s-%d", id, time.Now().UnixNano()))
}

func (ml *mlPipeline) stop(level, j int) {
	p := ml.procs[ml.id(level, j)]
	ml.killed[p] = true
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.Done:
	case <-time.After(30 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.Done
	}
}

// kill9 kills a worker with SIGKILL and starts a new process in its place.
func (ml *mlPipeline) kill9(level, j int) {
	p := ml.procs[ml.id(level, j)]
	ml.killed[p] = true
	_ = p.Cmd.Process.Kill()
	<-p.Done
	ml.t.Logf("kill -9 %s (%s)", ml.id(level, j), ml.specs[level].name)
	time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
	ml.start(level, j)
}

func (ml *mlPipeline) checkUnexpectedExits() {
	for id, p := range ml.procs {
		select {
		case <-p.Done:
			if !ml.killed[p] {
				ml.t.Errorf("worker %s exited on its own", id)
			}
		default:
		}
	}
}

// produce writes n generated records keyed by device, as a raw topic is.
func (ml *mlPipeline) produce(g *gen.Generator, n int) {
	recs := make([]*kgo.Record, 0, n)
	for range n {
		e := g.Next()
		recs = append(recs, &kgo.Record{Topic: ml.prefix + "-location-raw", Key: gen.Key(nil, e), Value: gen.AppendJSON(nil, e)})
	}
	if err := ml.cl.ProduceSync(ml.ctx, recs...).FirstErr(); err != nil {
		ml.t.Fatal(err)
	}
}

// flush ends the bounded input with three waves of records of flush-* orgs on every raw
// partition, hours apart in event time. A partial of a window is emitted when a later record
// closes the window, so each wave closes the windows of the one before, one level further up:
// wave 1 closes level 1's data windows, wave 2 makes level 1 emit wave 1's partials, which
// close level 2's data windows, and wave 3 makes level 2 emit wave 1's org partials, which
// close level 3's. Between waves the test waits until every partial of the earlier windows is
// committed, so at each level a later wave can never overtake data and make it late.
func (ml *mlPipeline) flush() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(ml.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		ml.t.Fatal(err)
	}
	defer cl.Close()
	now := time.Now().UnixMilli()
	for wave, ts := range []int64{now - 10*3600_000, now - 5*3600_000, now} {
		var recs []*kgo.Record
		for p := range int32(4) {
			for o := range 8 {
				for s := range 8 {
					recs = append(recs, &kgo.Record{Topic: ml.prefix + "-location-raw", Partition: p, Value: fmt.Appendf(nil,
						`{"org":"flush-%d","site":"s-%d","floor":0,"zone":"z","device":"d","ts":%d,"rssi":-1,"dwell_ms":0}`, o, s, ts)})
				}
			}
		}
		if err := cl.ProduceSync(ml.ctx, recs...).FirstErr(); err != nil {
			ml.t.Fatal(err)
		}
		ml.waitGroup(0, ml.prefix+"-location-raw", nil)
		if wave == 1 {
			ends := ml.dataEnds(ml.prefix + "-location-partials")
			for level := 1; level <= 3; level++ {
				ml.waitGroup(level, ml.prefix+"-location-partials", ends)
			}
		}
	}
}

// waitAll waits for each level in turn to have checkpointed everything the level below
// committed.
func (ml *mlPipeline) waitAll() {
	ml.waitGroup(0, ml.prefix+"-location-raw", nil)
	ends := ml.dataEnds(ml.prefix + "-location-partials")
	for level := 1; level <= 3; level++ {
		ml.waitGroup(level, ml.prefix+"-location-partials", ends)
	}
	ml.waitGroup(4, ml.prefix+"-location-partials-org", ml.dataEnds(ml.prefix+"-location-partials-org"))
}

// waitGroup waits until a spec's committed offsets (the mirror of its checkpoints) reach ends,
// or the topic's end offsets when ends is nil (a topic without transactions).
func (ml *mlPipeline) waitGroup(level int, topic string, ends map[int32]int64) {
	start := time.Now()
	for {
		target := ends
		if target == nil {
			listed, err := ml.adm.ListEndOffsets(ml.ctx, topic)
			if err == nil {
				err = listed.Error() // a partition's own error: its offset would read as caught up
			}
			if err != nil {
				ml.t.Fatal(err)
			}
			target = map[int32]int64{}
			listed.Each(func(o kadm.ListedOffset) { target[o.Partition] = o.Offset })
		}
		committed, err := ml.adm.FetchOffsets(ml.ctx, ml.specs[level].group)
		done := err == nil
		for p, end := range target {
			if c, ok := committed.Lookup(topic, p); end > 0 && (!ok || c.At < end) {
				done = false
			}
		}
		if done {
			ml.t.Logf("%s caught up with %s in %v", ml.specs[level].name, topic, time.Since(start).Round(time.Millisecond))
			return
		}
		if ml.ctx.Err() != nil || time.Since(start) > 5*time.Minute {
			ml.t.Fatalf("%s did not catch up with %s: committed %v, ends %v", ml.specs[level].name, topic, committed, target)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// dataEnds reads a transactional topic to its end and returns, per partition, the offset after
// its last committed record: where a consumer that applied everything stands.
func (ml *mlPipeline) dataEnds(topic string) map[int32]int64 {
	ends := map[int32]int64{}
	ml.readTopic(topic, func(r *kgo.Record) { ends[r.Partition] = max(ends[r.Partition], r.Offset+1) })
	return ends
}

func (ml *mlPipeline) topicRecords(topic string) int {
	n := 0
	ml.readTopic(topic, func(*kgo.Record) { n++ })
	return n
}

// readTopic reads a topic read_committed up to its end when called.
func (ml *mlPipeline) readTopic(topic string, each func(*kgo.Record)) {
	readToEnd(ml.t, ml.ctx, ml.brokers, []string{topic}, each)
}

var restoredRE = regexp.MustCompile(`"msg":"partition restored".*"partition":(\d+),"generation":\d+,"offset":(-?\d+)`)

type mlRow struct {
	table, key  string
	size, start int64
}

type mlEvent struct {
	Org, Site, Zone, Device *string
	Floor                   *json.Number
	TS                      *int64   `json:"ts"`
	RSSI                    *float64 `json:"rssi"`
	DwellMs                 *float64 `json:"dwell_ms"`
}

// reference reads the raw topic back, partition by partition in offset order, and computes
// every rollup of every spec in one pass with encoding/json and maps, applying level 1's
// lateness per raw partition.
func (ml *mlPipeline) reference() map[mlRow]*refRow {
	rows := map[mlRow]*refRow{}
	type pstate struct{ wm, maxT int64 }
	parts := map[int32]*pstate{}
	sizes := []int64{60_000, 900_000, 3600_000}
	rejected := 0
	ml.readTopic(ml.prefix+"-location-raw", func(r *kgo.Record) {
		ps := parts[r.Partition]
		if ps == nil {
			ps = &pstate{wm: math.MinInt64, maxT: math.MinInt64}
			parts[r.Partition] = ps
		}
		var e mlEvent
		if json.Unmarshal(r.Value, &e) != nil || e.Org == nil || e.Site == nil || e.Floor == nil || e.Zone == nil ||
			e.Device == nil || e.TS == nil || e.RSSI == nil || e.DwellMs == nil || *e.TS > r.Timestamp.UnixMilli()+3600_000 {
			rejected++
			return
		}
		t := *e.TS
		if t < ps.wm {
			rejected++
			return
		}
		if t > ps.maxT {
			ps.maxT = t
			ps.wm = max(ps.wm, t-30_000)
		}
		if strings.HasPrefix(*e.Org, "flush") {
			return
		}
		fields := map[string]string{"org": *e.Org, "site": *e.Site, "floor": e.Floor.String(), "zone": *e.Zone}
		for _, s := range ml.specs[1:] {
			vals := make([]string, len(s.key))
			for i, k := range s.key {
				vals[i] = fields[k]
			}
			for _, size := range sizes {
				id := mlRow{s.table, strings.Join(vals, "/"), size, t - ((t%size)+size)%size}
				row := rows[id]
				if row == nil {
					row = &refRow{min: math.Inf(1), max: math.Inf(-1), devices: map[string]bool{}}
					rows[id] = row
				}
				row.count++
				row.sum += *e.DwellMs
				row.min, row.max = math.Min(row.min, *e.RSSI), math.Max(row.max, *e.RSSI)
				row.devices[*e.Device] = true
				row.rssi = append(row.rssi, *e.RSSI)
			}
		}
	})
	ml.t.Logf("reference: %d rollups over 4 specs and 3 window sizes, %d raw records rejected", len(rows), rejected)
	return rows
}

// verify reads every rollup table and compares it with the reference.
func (ml *mlPipeline) verify(want map[mlRow]*refRow) {
	ml.t.Helper()
	host, port, _ := strings.Cut(ml.cass[0], ":")
	c := gocql.NewCluster(host)
	c.Port, _ = strconv.Atoi(port)
	c.Timeout = 30 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		ml.t.Fatal(err)
	}
	defer s.Close()
	seen := 0
	bad := 0
	for _, sp := range ml.specs[1:] {
		cols := strings.Join(sp.key, ", ")
		iter := s.Query(fmt.Sprintf(`SELECT %s, window_size, window_start, count, sum_dwell_ms, min_rssi, max_rssi, distinct_device, quantiles_rssi_p50 FROM %s.%s`,
			cols, ml.ks, sp.table)).PageSize(5000).Iter()
		for {
			keyVals := make([]string, len(sp.key))
			var size int
			var startT time.Time
			var count, distinct int64
			var sum, mn, mx, p50 float64
			dest := []any{}
			for i := range keyVals {
				dest = append(dest, &keyVals[i])
			}
			dest = append(dest, &size, &startT, &count, &sum, &mn, &mx, &distinct, &p50)
			if !iter.Scan(dest...) {
				break
			}
			if strings.HasPrefix(keyVals[0], "flush") {
				continue
			}
			id := mlRow{sp.table, strings.Join(keyVals, "/"), int64(size) * 1000, startT.UnixMilli()}
			w, ok := want[id]
			if !ok {
				ml.t.Errorf("%s: unexpected row %v (count %d)", sp.table, id, count)
				bad++
				continue
			}
			seen++
			if float64(count) != w.count || sum != w.sum || mn != w.min || mx != w.max {
				bad++
				if bad < 10 {
					ml.t.Errorf("%v: count/sum/min/max %d/%v/%v/%v, want %v/%v/%v/%v", id, count, sum, mn, mx, w.count, w.sum, w.min, w.max)
				}
			}
			if n := float64(len(w.devices)); math.Abs(float64(distinct)-n) > math.Max(1, 0.03*n) {
				bad++
				ml.t.Errorf("%v: distinct %d, want about %v", id, distinct, n)
			}
			sort.Float64s(w.rssi)
			r := 0.5 * float64(len(w.rssi)-1)
			lo, hi := w.rssi[int(math.Floor(r))], w.rssi[int(math.Ceil(r))]
			if p50 < lo-0.011*math.Abs(lo) || p50 > hi+0.011*math.Abs(hi) {
				bad++
				ml.t.Errorf("%v: p50 %v, want within 1 %% of [%v, %v]", id, p50, lo, hi)
			}
		}
		if err := iter.Close(); err != nil {
			ml.t.Fatal(err)
		}
	}
	if seen != len(want) || bad > 0 {
		ml.t.Fatalf("cassandra holds %d of %d expected rollups, %d wrong", seen, len(want), bad)
	}
	ml.t.Logf("cassandra: all %d rollups exact (zone, floor, site, org x 1m, 15m, 1h)", seen)
}
