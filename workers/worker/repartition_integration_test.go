//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/gen"
)

// TestAnyKeyingGivesExactRollups: one spec, keyed by (org, site, zone), over three topics that
// producers key differently: by the spec's key (declared: one stage), by device, a finer field
// that is not in the key (declared: two stages), and round-robin with no key at all (not
// declared: two stages). In each, workers are killed (-9) mid-stream and a third joins, and the
// rollups in Cassandra must equal a single pass over the records, row for row.
func TestAnyKeyingGivesExactRollups(t *testing.T) {
	n := envInt("LIVEAGG_REPARTITION_RECORDS", 60_000)
	canonical := func(e gen.Event) []byte {
		return fmt.Appendf(nil, "org-%04d\x1fsite-%02d\x1fzone-%03d", e.Org, e.Site, e.Zone)
	}
	for _, tc := range []struct {
		name, partitioning string
		key                func(gen.Event) []byte // nil: round-robin
		flushKey           []byte
		stages             int
	}{
		{"keyed by the key", ", partitioned_by: [org, site, zone]", canonical, []byte("flush\x1fflush\x1fflush"), 1},
		{"keyed by device", ", partitioned_by: [device]", func(e gen.Event) []byte { return fmt.Appendf(nil, "dev-%08d", e.Device) }, []byte("flush"), 2},
		{"round robin", "", nil, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRepartitionRun(t, tc.partitioning, tc.stages)
			rt.produce(n/2, tc.key)
			rt.fleet.start(0)
			rt.fleet.start(1)
			time.Sleep(4 * time.Second)
			rt.fleet.kill9(0) // mid-stream, with partials and windows in flight
			rt.fleet.start(0)
			rt.produce(n-n/2, tc.key)
			rt.fleet.start(2) // a rebalance: cooperative-sticky moves partitions of both stages to it
			time.Sleep(4 * time.Second)
			rt.fleet.kill9(1)
			rt.fleet.start(1)
			rt.flush(tc.flushKey)
			rt.waitCaughtUp()
			rt.verify()
		})
	}
}

// repartitionRun is one spec over one topic, with a fleet of worker processes.
type repartitionRun struct {
	t                *testing.T
	ctx              context.Context
	name, ks, topic  string
	brokers, cass    []string
	stages           int
	cl, rr, manual   *kgo.Client
	adm              *kadm.Client
	g                *gen.Generator
	fleet            *fleet
	records          [][]byte // everything produced, in order: the single pass's input
	started, timeout time.Time
}

func newRepartitionRun(t *testing.T, partitioning string, stages int) *repartitionRun {
	rt := &repartitionRun{t: t, ctx: testenv.Context(t, 10*time.Minute), brokers: testenv.KafkaBrokers(t), cass: testenv.CassandraHosts(t),
		name: testenv.Name(t, "rp"), stages: stages, started: time.Now()}
	rt.timeout = rt.started.Add(8 * time.Minute)
	rt.ks = strings.ReplaceAll(rt.name, "-", "_")
	rt.topic = rt.name + "-raw"
	var err error
	for _, c := range []struct {
		cl   **kgo.Client
		opts []kgo.Opt
	}{
		{&rt.cl, []kgo.Opt{kgo.ProducerLinger(5 * time.Millisecond)}},
		{&rt.rr, []kgo.Opt{kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}},
		{&rt.manual, []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}},
	} {
		if *c.cl, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(rt.brokers...)}, c.opts...)...); err != nil {
			t.Fatal(err)
		}
		t.Cleanup((*c.cl).Close)
	}
	rt.adm = kadm.NewClient(rt.cl)
	if _, err := rt.adm.CreateTopic(rt.ctx, 4, 1, nil, rt.topic); err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(rt.ctx, &s3.CreateBucketInput{Bucket: aws.String(rt.name)}); err != nil {
		t.Fatal(err)
	}
	// No late records and jitter well inside the lateness: a record's lateness cannot depend
	// on which partition it went to, so a single pass is the exact reference.
	rt.g = gen.New(gen.Config{Seed: 16, Orgs: 12, SitesPerOrg: 3, StepMs: 40, JitterMs: 2000})
	dir := t.TempDir()
	specPath := writeFile(t, dir, "spec.yaml", `
name: %s
input: {topic: %s, time_field: ts%s}
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
`, rt.name, rt.topic, partitioning, rt.ks)
	cfgPath := writeFile(t, dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "s3://%s/checkpoints", interval: 2s}
sinks:
  cassandra: {hosts: [%s], timeout: 20s}
aws: {endpoint: %q}
`, specPath, strings.Join(rt.brokers, ","), rt.name, strings.Join(rt.cass, ","), testenv.AWSEndpoint(t))
	rt.fleet = &fleet{t: t, cfgPath: cfgPath, procs: map[int]*exec.Cmd{}, logs: dir}
	t.Cleanup(rt.fleet.stopAll)
	logTailsOnFailure(t, dir, 3, 20)
	return rt
}

// produce writes n generated records, keyed by key (round-robin for nil).
func (rt *repartitionRun) produce(n int, key func(gen.Event) []byte) {
	cl := rt.cl
	if key == nil {
		cl = rt.rr
	}
	for range n {
		e := rt.g.Next()
		r := &kgo.Record{Topic: rt.topic, Value: gen.AppendJSON(nil, e)}
		if key != nil {
			r.Key = key(e)
		}
		rt.records = append(rt.records, r.Value)
		cl.Produce(rt.ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				rt.t.Error(err)
			}
		})
	}
	if err := cl.Flush(rt.ctx); err != nil {
		rt.t.Fatal(err)
	}
}

// flush writes a far-future record to every partition, which closes every window of the run.
func (rt *repartitionRun) flush(key []byte) {
	val := fmt.Appendf(nil, `{"org":"flush","site":"flush","zone":"flush","device":"flush","ts":%d,"rssi":-1,"dwell_ms":0}`, rt.g.NowMs()+24*3600_000)
	for p := range int32(4) {
		if err := rt.manual.ProduceSync(rt.ctx, &kgo.Record{Topic: rt.topic, Partition: p, Key: key, Value: val}).FirstErr(); err != nil {
			rt.t.Fatal(err)
		}
		rt.records = append(rt.records, val)
	}
}

func (rt *repartitionRun) waitCaughtUp() {
	for {
		done := caughtUp(rt.ctx, rt.adm, "liveagg."+rt.name, rt.topic)
		if done && rt.stages == 2 {
			done = caughtUp(rt.ctx, rt.adm, "liveagg."+rt.name+".stage2", rt.name+".repartition")
		}
		if done {
			rt.t.Logf("caught up in %v", time.Since(rt.started).Round(time.Millisecond))
			return
		}
		if time.Now().After(rt.timeout) {
			rt.fleet.dumpStacks()
			rt.t.Fatal("workers did not catch up")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// verify compares Cassandra with a single pass over every record in production order, and
// checks that the stages the spec needed are the ones that ran.
func (rt *repartitionRun) verify() {
	rt.fleet.mu.Lock()
	crashes := rt.fleet.crashes
	rt.fleet.mu.Unlock()
	if len(crashes) > 0 {
		rt.t.Errorf("workers stopped on their own: %v", crashes)
	}
	logTimes := make([]int64, len(rt.records))
	for i := range logTimes {
		logTimes[i] = math.MaxInt64 / 2 // no record is ahead of its log time here
	}
	want, rejected := reference(map[int32][][]byte{0: rt.records}, map[int32][]int64{0: logTimes}, []int64{60_000, 900_000}, 30_000)
	if rejected != 0 {
		rt.t.Fatalf("the reference rejected %d records: the generator must write none late", rejected)
	}
	checkCassandra(rt.t, rt.cass, rt.ks, want)
	topics, err := rt.adm.ListTopics(rt.ctx, rt.name+".repartition")
	if err != nil {
		rt.t.Fatal(err)
	}
	if has := topics.Has(rt.name + ".repartition"); has != (rt.stages == 2) {
		rt.t.Errorf("repartition topic exists: %v, want it for a two-stage run only (stages %d)", has, rt.stages)
	}
}
