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
	"github.com/liveagg/liveagg/workers/gen"
)

// revision is one revision of the spec under test, as the user writes it in Terraform.
type revision struct {
	key      []string // a prefix of org, site, zone
	windows  []string
	max      bool   // the max_rssi aggregation
	table    string // the Cassandra output's table
	s3Prefix string // the S3 output's prefix
	action   string // what the provider's plan must say for the change to this revision
}

func (r revision) sizes() []int64 {
	var out []int64
	for _, w := range r.windows {
		d, _ := time.ParseDuration(w)
		out = append(out, d.Milliseconds())
	}
	return out
}

// The revisions applied in turn: an added aggregation (migrated in place), a window change and
// a key change (each a new version from offsets).
var revisions = []revision{
	{key: []string{"org", "site", "zone"}, windows: []string{"1m"}, table: "rollup", s3Prefix: "rollups"},
	{key: []string{"org", "site", "zone"}, windows: []string{"1m"}, max: true, table: "rollup", s3Prefix: "rollups", action: "migrate in place"},
	{key: []string{"org", "site", "zone"}, windows: []string{"5m"}, max: true, table: "rollup", s3Prefix: "rollups", action: "new version from offsets"},
	{key: []string{"org", "site"}, windows: []string{"5m"}, max: true, table: "rollup_site", s3Prefix: "rollups-site", action: "new version from offsets"},
}

const (
	svLateness = 30_000
	svSkew     = 3600_000
)

// svRig is the pipeline under test: the registry, topics and tables, the Terraform root that
// manages the spec, three supervised worker processes and a producer.
type svRig struct {
	t                  *testing.T
	ctx                context.Context
	name, ks, bucket   string
	inTopic, outTopic  string
	brokers, cassHosts []string
	cl                 *kgo.Client
	adm                *kadm.Client
	s3c                *s3.Client
	tofu               *tofuRoot
	sup                *supervisor
	partitions         int32
}

// tofuRoot is a Terraform root with the provider built from this tree installed from a
// filesystem mirror, as a user without registry access would.
type tofuRoot struct {
	t   *testing.T
	dir string
	env []string
}

func newTofuRoot(t *testing.T, env ...string) *tofuRoot {
	dir := t.TempDir()
	plat := filepath.Join(dir, "mirror", "registry.opentofu.org/liveagg/liveagg/0.1.0/linux_amd64")
	testenv.Build(t, "../../provider", plat, "terraform-provider-liveagg_v0.1.0")
	rc := filepath.Join(dir, "cli.tfrc")
	writeFile(t, dir, "cli.tfrc", `provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.opentofu.org/liveagg/liveagg"]
  }
  direct {
    exclude = ["registry.opentofu.org/liveagg/liveagg"]
  }
}
`, filepath.Join(dir, "mirror"))
	return &tofuRoot{t: t, dir: dir, env: append(env, "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1")}
}

func (d *tofuRoot) run(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(testenv.Tofu(d.t), append(args, "-no-color")...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("tofu %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// config is the Terraform root for revision r: the spec, and the zone-level rollup table
// (managed from its own copy of the zone-level spec, so it outlives the key change).
func (rg *svRig) config(r revision) string {
	maxAgg, tableMax := "", ""
	if r.max {
		maxAgg = `
  aggregation {
    fn    = "max"
    field = "rssi"
  }`
		tableMax = "\n  - {fn: max, field: rssi}"
	}
	return fmt.Sprintf(`
terraform {
  required_providers {
    liveagg = { source = "liveagg/liveagg" }
  }
}

resource "liveagg_aggregation_spec" "s" {
  name             = %[1]q
  key              = %[2]s
  windows          = %[3]s
  allowed_lateness = "30s"
  input {
    topic          = %[4]q
    time_field     = "ts"
    partitioned_by = ["org"]
  }
  aggregation {
    fn = "count"
  }
  aggregation {
    fn    = "sum"
    field = "dwell_ms"
  }
  aggregation {
    fn    = "min"
    field = "rssi"
  }%[5]s
  output {
    type     = "cassandra"
    keyspace = %[6]q
    table    = %[7]q
  }
  output {
    type  = "kafka"
    topic = %[8]q
  }
  output {
    type = "s3"
    url  = "s3://%[9]s/%[10]s"
  }
}

resource "liveagg_rollup_table" "zone" {
  keyspace = %[6]q
  table    = "rollup"
  spec     = <<-EOT
    name: %[1]s
    input: {topic: %[4]s, time_field: ts}
    key: [org, site, zone]
    windows: [1m]
    aggregations:
      - {fn: count}
      - {fn: sum, field: dwell_ms}
      - {fn: min, field: rssi}%[11]s
    outputs: [{type: cassandra, keyspace: %[6]s, table: rollup}]
  EOT
}

output "change" { value = liveagg_aggregation_spec.s.change }
output "spec_version" { value = liveagg_aggregation_spec.s.spec_version }
`, rg.name, quoted(r.key), quoted(r.windows), rg.inTopic, maxAgg, rg.ks, r.table, rg.outTopic, rg.bucket, r.s3Prefix,
		strings.ReplaceAll(tableMax, "\n", "\n    "))
}

// supervisor runs worker processes the way the spot-workers module's systemd unit does:
// restarted 2 s after any exit but 3 and 5, at once after a kill -9 by the test.
type supervisor struct {
	t       *testing.T
	cfgPath string
	logs    string
	mu      sync.Mutex
	procs   map[int]*exec.Cmd
	stopped bool
	exits   []string // unexpected exits
	wg      sync.WaitGroup
}

func (s *supervisor) run(i int) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			s.mu.Lock()
			if s.stopped {
				s.mu.Unlock()
				return
			}
			cmd := exec.Command(liveaggBin, "worker", "--config", s.cfgPath)
			cmd.Env = append(os.Environ(), "LIVEAGG_WORKER_ID=w"+strconv.Itoa(i))
			lf, err := os.OpenFile(filepath.Join(s.logs, fmt.Sprintf("w%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				s.mu.Unlock()
				s.t.Error(err)
				return
			}
			cmd.Stdout, cmd.Stderr = lf, lf
			if err := cmd.Start(); err != nil {
				s.mu.Unlock()
				s.t.Error(err)
				return
			}
			s.procs[i] = cmd
			s.mu.Unlock()
			_ = cmd.Wait()
			lf.Close()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case ws.Signaled():
				continue // killed by the test: restarted at once
			case ws.ExitStatus() == 0:
			case ws.ExitStatus() == 4 && strings.Contains(s.tail(i), "newer revision of the spec"):
				// A worker that had not seen the change yet met a newer revision's checkpoint:
				// it exits to be restarted on the new revision, by design.
			default:
				s.mu.Lock()
				s.exits = append(s.exits, fmt.Sprintf("w%d exited with status %d: %s", i, ws.ExitStatus(), s.tail(i)))
				s.mu.Unlock()
				if ws.ExitStatus() == 3 || ws.ExitStatus() == 5 {
					return // RestartPreventExitStatus
				}
			}
			time.Sleep(2 * time.Second) // RestartSec
		}
	}()
}

func (s *supervisor) tail(i int) string {
	b, _ := os.ReadFile(filepath.Join(s.logs, fmt.Sprintf("w%d.log", i)))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], "\n")
}

func (s *supervisor) kill9(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.procs[i]; c != nil && c.Process != nil {
		_ = c.Process.Signal(syscall.SIGKILL)
	}
}

func (s *supervisor) stop() {
	s.mu.Lock()
	s.stopped = true
	for _, c := range s.procs {
		if c.Process != nil {
			_ = c.Process.Signal(syscall.SIGKILL)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func newSVRig(t *testing.T) *svRig {
	rg := &svRig{t: t, ctx: testenv.Context(t, 20*time.Minute), brokers: testenv.KafkaBrokers(t), cassHosts: testenv.CassandraHosts(t),
		name: testenv.Name(t, "specver"), partitions: 4}
	rg.ks = strings.ReplaceAll(rg.name, "-", "_")
	rg.inTopic, rg.outTopic, rg.bucket = rg.name+"-raw", rg.name+"-out", rg.name
	var err error
	rg.cl, err = kgo.NewClient(kgo.SeedBrokers(rg.brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rg.cl.Close)
	rg.adm = kadm.NewClient(rg.cl)
	for _, tp := range []string{rg.inTopic, rg.outTopic} {
		if _, err := rg.adm.CreateTopic(rg.ctx, rg.partitions, 1, nil, tp); err != nil {
			t.Fatal(err)
		}
	}
	rg.s3c = s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := rg.s3c.CreateBucket(rg.ctx, &s3.CreateBucketInput{Bucket: aws.String(rg.bucket)}); err != nil {
		t.Fatal(err)
	}
	rg.tofu = newTofuRoot(t, "LIVEAGG_KAFKA_BROKERS="+strings.Join(rg.brokers, ","),
		"LIVEAGG_CASSANDRA_HOSTS="+strings.Join(rg.cassHosts, ","),
		"LIVEAGG_AWS_ENDPOINT="+testenv.AWSEndpoint(t), "AWS_REGION="+testenv.Region,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"LIVEAGG_SPEC_REGISTRY=s3://"+rg.bucket+"/specs")
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "worker.yaml", `
spec: s3://%s/specs/%s.yaml
spec_poll_interval: 300ms
kafka: {brokers: [%s]}
checkpoint: {location: "s3://%s/checkpoints", interval: 1s}
sinks:
  cassandra: {hosts: [%s], timeout: 20s}
aws: {endpoint: %q}
`, rg.bucket, rg.name, strings.Join(rg.brokers, ","), rg.bucket, strings.Join(rg.cassHosts, ","), testenv.AWSEndpoint(t))
	rg.sup = &supervisor{t: t, cfgPath: cfgPath, logs: dir, procs: map[int]*exec.Cmd{}}
	t.Cleanup(rg.sup.stop)
	logTailsOnFailure(t, dir, 3, 30)
	return rg
}

// apply applies revision r through tofu after checking that its plan says what the workers
// will do.
func (rg *svRig) apply(v int) {
	r := revisions[v]
	if err := os.WriteFile(filepath.Join(rg.tofu.dir, "main.tf"), []byte(rg.config(r)), 0o600); err != nil {
		rg.t.Fatal(err)
	}
	if v == 0 {
		rg.tofu.run("init", "-input=false")
	} else {
		plan := rg.tofu.run("plan", "-input=false")
		if !strings.Contains(plan, "spec change: "+r.action) {
			rg.t.Fatalf("the plan for revision %d does not say %q:\n%s", v+1, r.action, plan)
		}
		rg.t.Logf("plan for revision %d:\n%s\n%s", v+1, excerpt(plan, "  # liveagg_aggregation_spec.s", "\n\n"),
			excerpt(plan, "Warning: spec change: ", "╵"))
	}
	out := rg.tofu.run("apply", "-auto-approve", "-input=false")
	if !strings.Contains(out, fmt.Sprintf("spec_version = %d", v+1)) {
		rg.t.Fatalf("apply of revision %d did not store spec version %d:\n%s", v+1, v+1, out)
	}
}

// excerpt is the part of s from the first from up to the next to.
func excerpt(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j > 0 {
		s = s[:j]
	}
	return s
}

// producer writes generated records, keyed by org as partitioned_by says, until stopped.
func (rg *svRig) producer(g *gen.Generator) (stop func()) {
	ctx, cancel := context.WithCancel(rg.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var recs []*kgo.Record
			for range 400 {
				e := g.Next()
				recs = append(recs, &kgo.Record{Topic: rg.inTopic, Key: fmt.Appendf(nil, "org-%04d", e.Org), Value: gen.AppendJSON(nil, e)})
			}
			if err := rg.cl.ProduceSync(rg.ctx, recs...).FirstErr(); err != nil && rg.ctx.Err() == nil {
				rg.t.Error(err)
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (rg *svRig) caughtUp() bool {
	ends, err := rg.adm.ListEndOffsets(rg.ctx, rg.inTopic)
	if err == nil {
		err = ends.Error() // a partition's own error: its offset would read as caught up
	}
	if err != nil {
		return false
	}
	committed, err := rg.adm.FetchOffsets(rg.ctx, "liveagg."+rg.name)
	if err != nil {
		return false
	}
	done := true
	ends.Each(func(e kadm.ListedOffset) {
		c, ok := committed.Lookup(rg.inTopic, e.Partition)
		if !ok || c.At < e.Offset {
			done = false
		}
	})
	return done
}

// TestSpecChangesThroughTheProvider: with records flowing and three workers, a spec is changed
// three times through the provider, as a user would: an aggregation added (migrated in place),
// the window changed and the key changed (each a new version from offsets), with a worker
// killed -9 during every switch. Every window of every output must then equal one pass over
// the records under the documented rule, computed here with maps from the switch offsets the
// workers logged. Last, a worker started on an older revision than the checkpoints halts with
// status 5 and says what to do, rather than looping.
func TestSpecChangesThroughTheProvider(t *testing.T) {
	rg := newSVRig(t)
	rg.apply(0)
	g := gen.New(gen.Config{Seed: 17, Orgs: 12, SitesPerOrg: 3, FloorsPerSite: 1, ZonesPerFloor: 3, DevicesPerSite: 20,
		StepMs: 50, JitterMs: 5000, LateFraction: 0.01, LateByMs: 120_000, MalformedFraction: 0.005})
	stopProducing := rg.producer(g)
	for i := range 3 {
		rg.sup.run(i)
	}
	seed := uint64(envInt("LIVEAGG_SPECVER_SEED", 23)) // which worker is killed, and when
	rng := rand.New(rand.NewPCG(seed, seed))
	time.Sleep(8 * time.Second)
	for v := 1; v < len(revisions); v++ {
		rg.apply(v)
		// Kill a worker in the middle of the switch twice: while the workers drain (they see
		// the change within 300 ms), and while they take over (they restart 2 s after exiting).
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		first := rng.IntN(3)
		rg.sup.kill9(first)
		time.Sleep(time.Duration(1500+rng.IntN(2500)) * time.Millisecond)
		second := rng.IntN(3)
		rg.sup.kill9(second)
		t.Logf("revision %d applied; killed w%d, then w%d during the switch", v+1, first, second)
		time.Sleep(10 * time.Second)
	}
	stopProducing()
	// One far-future record per partition closes every window.
	flush, err := kgo.NewClient(kgo.SeedBrokers(rg.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer flush.Close()
	for p := range rg.partitions {
		val := fmt.Appendf(nil, `{"org":"flush","site":"flush","zone":"flush","device":"flush","ts":%d,"rssi":-1,"dwell_ms":0}`, g.NowMs()+24*3600_000)
		if err := flush.ProduceSync(rg.ctx, &kgo.Record{Topic: rg.inTopic, Partition: p, Key: []byte("flush"), Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !rg.caughtUp() {
		if time.Now().After(deadline) {
			t.Fatal("workers did not catch up")
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // the last checkpoint's sinks
	rg.sup.stop()
	if len(rg.sup.exits) > 0 {
		t.Errorf("workers stopped on their own: %v", rg.sup.exits)
	}

	switches := rg.switches()
	want := rg.reference(switches)
	rg.checkCassandra(want)
	rg.checkS3(want)
	rg.checkKafka(want)

	// A worker started by mistake on the first revision's spec, a file the registry no longer
	// holds, against the fourth revision's checkpoints: it must halt once with status 5 and say
	// what to do, not loop.
	dir := t.TempDir()
	y, err := rg.s3c.GetObject(rg.ctx, &s3.GetObjectInput{Bucket: aws.String(rg.bucket), Key: aws.String("specs/" + rg.name + ".yaml")})
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := io.ReadAll(y.Body)
	y.Body.Close()
	old := strings.Replace(string(cur), "version: 4", "version: 1", 1)
	specPath := filepath.Join(dir, "old.yaml")
	if err := os.WriteFile(specPath, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(rg.sup.cfgPath)
	cfgPath := writeFile(t, dir, "worker.yaml", "%s", strings.Replace(string(cfg), fmt.Sprintf("s3://%s/specs/%s.yaml", rg.bucket, rg.name), specPath, 1))
	w := startWorker(t, dir, cfgPath, "stale")
	select {
	case <-w.Done:
	case <-time.After(60 * time.Second):
		t.Fatal("a worker on an older revision than its checkpoints did not stop")
	}
	if code := w.Cmd.ProcessState.ExitCode(); code != 5 || !strings.Contains(w.Log(), "went back to an older revision") {
		t.Fatalf("exit %d, want 5 (halted) with what to do:\n%s", code, w.Log())
	}
}

// svSwitch is a partition's switch from one revision to the next, as the worker that carried
// it out logged it.
type svSwitch struct {
	partition int32
	offset    int64
	from, to  int // spec versions
	action    string
	at        time.Time
}

// switches reads the switches the workers logged; for a partition switched more than once to
// the same revision (a kill before the new revision's first checkpoint), the last one counts.
func (rg *svRig) switches() map[int32][]svSwitch {
	last := map[[2]int]svSwitch{}
	lines := 0
	defer func() { rg.t.Logf("%d switches logged, %d of them repeated after a kill", lines, lines-len(last)) }()
	for i := range 3 {
		b, err := os.ReadFile(filepath.Join(rg.sup.logs, fmt.Sprintf("w%d.log", i)))
		if err != nil {
			rg.t.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if !bytes.Contains(line, []byte("SPEC CHANGED")) {
				continue
			}
			var m struct {
				Time      time.Time `json:"time"`
				Partition int32     `json:"partition"`
				From      int       `json:"from_version"`
				To        int       `json:"to_version"`
				Action    string    `json:"action"`
				Offset    int64     `json:"checkpoint_offset"`
			}
			if err := json.Unmarshal(line, &m); err != nil {
				rg.t.Fatalf("log line %s: %v", line, err)
			}
			lines++
			k := [2]int{int(m.Partition), m.To}
			if prev, ok := last[k]; ok && prev.offset != m.Offset {
				rg.t.Logf("partition %d switched to version %d twice, from offsets %d and %d", m.Partition, m.To, prev.offset, m.Offset)
			}
			if prev, ok := last[k]; !ok || m.Time.After(prev.at) {
				last[k] = svSwitch{partition: m.Partition, offset: m.Offset, from: m.From, to: m.To, action: m.Action, at: m.Time}
			}
		}
	}
	out := map[int32][]svSwitch{}
	for _, s := range last {
		out[s.partition] = append(out[s.partition], s)
	}
	for p, ss := range out {
		sort.Slice(ss, func(i, j int) bool { return ss[i].to < ss[j].to })
		for _, s := range ss {
			rg.t.Logf("partition %d: version %d -> %d (%s) at offset %d", p, s.from, s.to, s.action, s.offset)
			if s.action != revisions[s.to-1].action {
				rg.t.Errorf("partition %d switched to version %d by %q, the plan said %q", p, s.to, s.action, revisions[s.to-1].action)
			}
		}
	}
	if len(out) != int(rg.partitions) {
		rg.t.Errorf("%d partitions logged switches, want %d", len(out), rg.partitions)
	}
	return out
}

// svRow is one expected output row.
type svRow struct {
	count, sum, min, max float64
	hasMax               bool // written by a revision with max_rssi
	version              int
}

type svID struct {
	org, site, zone string // zone "" for the site-level key
	size, start     int64
}

// reference replays the input, partition by partition in offset order, under the documented
// rule: each revision applies records as one pass would until its switch offset; a migration in
// place keeps every open window and starts max_rssi empty in them; a new version from offsets
// drops the old version's open windows, starts its windows at the rebuild start (the latest
// boundary of its sizes at or before the start of the old version's windows holding the
// watermark), applies every record from the partition's start with an event time from there on,
// and does not write again a window of the old shape that had closed at the switch.
func (rg *svRig) reference(switches map[int32][]svSwitch) map[svID]*svRow {
	parts, logTimes := rg.readInput()
	out := map[svID]*svRow{}
	for p, recs := range parts {
		sim := &svSim{out: out, rev: 1}
		sim.reset(math.MinInt64)
		sw := switches[p]
		for i := 0; i <= len(recs); i++ {
			for len(sw) > 0 && sw[0].offset == int64(i) {
				sim.switchTo(sw[0].to, recs[:i], logTimes[p][:i])
				sw = sw[1:]
			}
			if i < len(recs) {
				sim.apply(recs[i], logTimes[p][i], true)
			}
		}
		if len(sw) > 0 {
			rg.t.Fatalf("partition %d: switch at offset %d beyond its %d records", p, sw[0].offset, len(recs))
		}
	}
	rg.t.Logf("reference: %d rows", len(out))
	return out
}

type svAcc struct{ count, sum, min, max float64 }

type svSim struct {
	out      map[svID]*svRow
	rev      int // 1-based
	wm, maxT int64
	open     map[svID]*svAcc
	suppress func(svID) bool
}

func (s *svSim) reset(wm int64) {
	s.wm, s.maxT, s.open = wm, math.MinInt64, map[svID]*svAcc{}
}

func (s *svSim) revision() revision { return revisions[s.rev-1] }

// apply is one record under the current revision; live says whether a late record counts as
// late (it is dead-lettered) or is passed over (a rebuild).
func (s *svSim) apply(raw []byte, logTime int64, live bool) {
	var e event
	if len(raw) > 1<<20 || json.Unmarshal(raw, &e) != nil || e.Org == nil || e.Site == nil || e.Zone == nil ||
		e.TS == nil || e.RSSI == nil || e.DwellMs == nil || *e.TS > logTime+svSkew {
		return
	}
	t := *e.TS
	if t < s.wm {
		return
	}
	r := s.revision()
	for _, size := range r.sizes() {
		id := svID{org: *e.Org, site: *e.Site, size: size, start: t - ((t%size)+size)%size}
		if len(r.key) == 3 {
			id.zone = *e.Zone
		}
		a := s.open[id]
		if a == nil {
			a = &svAcc{min: math.Inf(1), max: math.Inf(-1)}
			s.open[id] = a
		}
		a.count++
		a.sum += *e.DwellMs
		a.min, a.max = math.Min(a.min, *e.RSSI), math.Max(a.max, *e.RSSI)
	}
	wt := min(t, logTime)
	if wt > s.maxT {
		s.maxT = wt
		if wm := wt - svLateness; wm > s.wm {
			s.wm = wm
			for id, a := range s.open {
				if id.start+id.size <= s.wm {
					delete(s.open, id)
					if s.suppress == nil || !s.suppress(id) {
						s.out[id] = &svRow{count: a.count, sum: a.sum, min: a.min, max: a.max, hasMax: r.max, version: s.rev}
					}
				}
			}
		}
	}
}

func (s *svSim) switchTo(to int, before [][]byte, logTimes []int64) {
	old := s.revision()
	s.rev = to
	next := s.revision()
	if revisions[to-1].action == "migrate in place" {
		for _, a := range s.open {
			a.max = math.Inf(-1) // an added aggregation holds the records after the switch
		}
		return
	}
	w := s.wm
	from := int64(math.MinInt64)
	if w != math.MinInt64 {
		from = w
		for _, size := range old.sizes() {
			from = min(from, w-((w%size)+size)%size)
		}
		l := int64(1)
		for _, size := range next.sizes() {
			l = lcmInt(l, size)
		}
		from -= ((from % l) + l) % l
	}
	s.reset(from)
	s.suppress = nil
	if slices.Equal(old.key, next.key) {
		oldSizes := old.sizes()
		s.suppress = func(id svID) bool { return slices.Contains(oldSizes, id.size) && id.start+id.size <= w }
	}
	for i, raw := range before {
		s.apply(raw, logTimes[i], false)
	}
}

func lcmInt(a, b int64) int64 {
	g, x := a, b
	for x != 0 {
		g, x = x, g%x
	}
	return a / g * b
}

func (rg *svRig) readInput() (map[int32][][]byte, map[int32][]int64) {
	ends, err := rg.adm.ListEndOffsets(rg.ctx, rg.inTopic)
	if err == nil {
		err = ends.Error() // a partition's own error: its offset would read as 0 records
	}
	if err != nil {
		rg.t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(e kadm.ListedOffset) { total += e.Offset })
	rd, err := kgo.NewClient(kgo.SeedBrokers(rg.brokers...), kgo.ConsumeTopics(rg.inTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		rg.t.Fatal(err)
	}
	defer rd.Close()
	parts, logTimes := map[int32][][]byte{}, map[int32][]int64{}
	for got := int64(0); got < total; {
		fs := rd.PollFetches(rg.ctx)
		if rg.ctx.Err() != nil {
			rg.t.Fatal("reading the input back timed out")
		}
		fs.EachRecord(func(r *kgo.Record) {
			parts[r.Partition] = append(parts[r.Partition], r.Value)
			logTimes[r.Partition] = append(logTimes[r.Partition], r.Timestamp.UnixMilli())
			got++
		})
	}
	rg.t.Logf("input: %d records", total)
	return parts, logTimes
}

func (rg *svRig) compare(where string, id svID, count, sum, mn float64, mx *float64, w *svRow) {
	rg.t.Helper()
	if count != w.count || sum != w.sum || mn != w.min {
		rg.t.Errorf("%s %+v: count %v sum %v min %v, want %v %v %v (version %d)", where, id, count, sum, mn, w.count, w.sum, w.min, w.version)
	}
	switch {
	case w.hasMax && (mx == nil || *mx != w.max && !(math.IsInf(w.max, -1) && math.IsInf(*mx, -1))):
		got := "absent"
		if mx != nil {
			got = fmt.Sprint(*mx)
		}
		rg.t.Errorf("%s %+v: max %s, want %v (version %d)", where, id, got, w.max, w.version)
	case !w.hasMax && mx != nil:
		rg.t.Errorf("%s %+v: max %v from a version without max_rssi", where, id, *mx)
	}
}

func (rg *svRig) checkCassandra(want map[svID]*svRow) {
	host, port, _ := strings.Cut(rg.cassHosts[0], ":")
	c := gocql.NewCluster(host)
	c.Port, _ = strconv.Atoi(port)
	c.Timeout = 30 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		rg.t.Fatal(err)
	}
	defer s.Close()
	seen := map[svID]bool{}
	for _, q := range []struct {
		table string
		zone  bool
	}{{"rollup", true}, {"rollup_site", false}} {
		cols := "org, site, window_size, window_start, count, sum_dwell_ms, min_rssi, max_rssi"
		if q.zone {
			cols = "org, site, zone, window_size, window_start, count, sum_dwell_ms, min_rssi, max_rssi"
		}
		iter := s.Query(fmt.Sprintf(`SELECT %s FROM %s.%s`, cols, rg.ks, q.table)).PageSize(5000).Iter()
		for {
			var id svID
			var size int
			var start time.Time
			var count int64
			var sum, mn float64
			var mx *float64
			dst := []any{&id.org, &id.site, &size, &start, &count, &sum, &mn, &mx}
			if q.zone {
				dst = []any{&id.org, &id.site, &id.zone, &size, &start, &count, &sum, &mn, &mx}
			}
			if !iter.Scan(dst...) {
				break
			}
			if id.org == "flush" {
				continue
			}
			id.size, id.start = int64(size)*1000, start.UnixMilli()
			w, ok := want[id]
			if !ok {
				rg.t.Errorf("cassandra %s: unexpected row %+v (count %d)", q.table, id, count)
				continue
			}
			seen[id] = true
			rg.compare("cassandra "+q.table, id, float64(count), sum, mn, mx, w)
		}
		if err := iter.Close(); err != nil {
			rg.t.Fatal(err)
		}
	}
	if len(seen) != len(want) {
		rg.t.Errorf("cassandra has %d of %d expected rows", len(seen), len(want))
	}
	rg.t.Logf("cassandra: %d rows checked", len(seen))
}

// parseSVRow reads a JSON output row: its id and its values (max nil when absent or null).
func (rg *svRig) parseSVRow(line []byte) (svID, float64, float64, float64, *float64) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		rg.t.Fatalf("row %q: %v", line, err)
	}
	start, err := time.Parse(time.RFC3339, m["window_start"].(string))
	if err != nil {
		rg.t.Fatal(err)
	}
	size, err := time.ParseDuration(m["window_size"].(string))
	if err != nil {
		rg.t.Fatal(err)
	}
	id := svID{org: m["org"].(string), site: m["site"].(string), size: size.Milliseconds(), start: start.UnixMilli()}
	if z, ok := m["zone"].(string); ok {
		id.zone = z
	}
	num := func(k string) float64 {
		if f, ok := m[k].(float64); ok {
			return f
		}
		return math.NaN()
	}
	var mx *float64
	if v, ok := m["max_rssi"]; ok {
		f := math.Inf(-1) // JSON has no -Inf: a max of no record is written null
		if x, ok := v.(float64); ok {
			f = x
		}
		mx = &f
	}
	return id, num("count"), num("sum_dwell_ms"), num("min_rssi"), mx
}

func (rg *svRig) checkS3(want map[svID]*svRow) {
	seen := map[svID]int{}
	for _, prefix := range []string{"rollups/", "rollups-site/"} {
		p := s3.NewListObjectsV2Paginator(rg.s3c, &s3.ListObjectsV2Input{Bucket: aws.String(rg.bucket), Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(rg.ctx)
			if err != nil {
				rg.t.Fatal(err)
			}
			for _, o := range page.Contents {
				out, err := rg.s3c.GetObject(rg.ctx, &s3.GetObjectInput{Bucket: aws.String(rg.bucket), Key: o.Key})
				if err != nil {
					rg.t.Fatal(err)
				}
				body, err := io.ReadAll(out.Body)
				out.Body.Close()
				if err != nil {
					rg.t.Fatal(err)
				}
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					rg.t.Fatalf("%s: %v", *o.Key, err)
				}
				sc := bufio.NewScanner(zr)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					id, count, sum, mn, mx := rg.parseSVRow(sc.Bytes())
					if id.org == "flush" {
						continue
					}
					seen[id]++
					w, ok := want[id]
					if !ok {
						rg.t.Errorf("s3: unexpected row %+v", id)
						continue
					}
					rg.compare("s3", id, count, sum, mn, mx, w)
				}
			}
		}
	}
	for id, n := range seen {
		if n > 1 {
			rg.t.Errorf("s3: row %+v written %d times", id, n)
		}
	}
	if len(seen) != len(want) {
		rg.t.Errorf("s3 has %d of %d expected rows", len(seen), len(want))
	}
	rg.t.Logf("s3: %d rows checked", len(seen))
}

func (rg *svRig) checkKafka(want map[svID]*svRow) {
	seen := map[svID]int{}
	readToEnd(rg.t, rg.ctx, rg.brokers, []string{rg.outTopic}, func(r *kgo.Record) {
		id, count, sum, mn, mx := rg.parseSVRow(r.Value)
		if id.org == "flush" {
			return
		}
		seen[id]++
		w, ok := want[id]
		if !ok {
			rg.t.Errorf("kafka: unexpected row %+v", id)
			return
		}
		rg.compare("kafka", id, count, sum, mn, mx, w)
	})
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	if dups > 0 || len(seen) != len(want) {
		rg.t.Errorf("kafka (read_committed): %d rows duplicated, %d of %d expected rows", dups, len(seen), len(want))
	}
	rg.t.Logf("kafka: %d rows checked", len(seen))
}
