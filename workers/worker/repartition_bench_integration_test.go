//go:build integration

package worker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	indoorlocation "github.com/liveagg/liveagg/examples/indoor-location"
	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/gen"
)

// BenchmarkRepartitionSkew measures what running a spec in two stages by itself costs, on the
// skew benchmark's records (orgs Zipf-distributed, the top org a third of the stream) and the
// same spec: 1-minute rollups per (org, site, floor, zone), 3 workers on 12-partition topics.
// The spec runs three ways:
//
//   - keyed: over a topic keyed by the spec's key, declared (partitioned_by: the key): one
//     stage, the cheapest a user can have;
//   - auto: over a round-robin topic (no key, as log shippers write), not declared: the worker
//     runs it in two stages through its repartition topic;
//   - by org: over a topic keyed by org, declared: one stage, and the top org's partition
//     carries a third of the stream.
//
// It reports the CPU per raw record of auto against keyed (the price of not knowing the keying)
// and the partition-bound rate of auto against by-org (what repartitioning buys over a skewed
// keying), each as a ratio within the same round, medians over the rounds. CPU is measured as
// in BenchmarkMultilevelSkew: workers frozen while records are produced, then taking turns
// alone; auto's second stage is charged for everything its processes do from its first
// stage's commit on.
//
//	go test -tags integration -run XXX -bench RepartitionSkew -benchtime 1x ./workers/worker/
func BenchmarkRepartitionSkew(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	ctx := testenv.Context(b, 30*time.Minute)
	n := envInt("LIVEAGG_SKEW_RECORDS", 600_000)
	rounds := envInt("LIVEAGG_SKEW_ROUNDS", 3)
	base := testenv.Name(b, "rpskew")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(500_000),
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(64<<10, false, true, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	g := gen.New(gen.Config{Seed: 12, Orgs: 40, Zipf: 1.2, StepMs: 180_000 / float64(n)})
	type rec struct{ key, org, value []byte }
	recs := make([]rec, n)
	for i := range recs {
		e := g.Next()
		recs[i] = rec{
			key:   fmt.Appendf(nil, "org-%04d\x1fsite-%02d\x1f%d\x1fzone-%03d", e.Org, e.Site, e.Floor, e.Zone),
			org:   fmt.Appendf(nil, "org-%04d", e.Org),
			value: gen.AppendJSON(nil, e),
		}
	}
	// produce writes the records keyed by the spec's key, by org, or with no key at all (spread
	// evenly over the partitions, batch by batch, as a log shipper's producer does).
	produce := func(topic, keying string) {
		batch := make([]*kgo.Record, 0, 50_000)
		for i, r := range recs {
			kr := &kgo.Record{Topic: topic, Value: r.value}
			switch keying {
			case "key":
				kr.Key = r.key
			case "org":
				kr.Key = r.org
			}
			batch = append(batch, kr)
			if len(batch) == cap(batch) || i == len(recs)-1 {
				if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	for b.Loop() {
		type round struct{ keyedCPU, autoCPU, autoRate, orgRate float64 }
		var res []round
		for i := range rounds {
			name := fmt.Sprintf("%s-r%d", base, i)
			dir := filepath.Join(b.TempDir(), name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			keyedT, rrT, orgT := name+"-keyed", name+"-rr", name+"-by-org"
			for _, t := range []string{keyedT, rrT, orgT} {
				if _, err := adm.CreateTopic(ctx, 12, 1, nil, t); err != nil {
					b.Fatal(err)
				}
			}
			b.Cleanup(func() { deleteTopics(b, brokers, name) })
			aggs := specSection(indoorlocation.Level1, "aggregations:")
			specFor := func(file, topic, partitioning string) string {
				return writeFile(b, dir, file+".yaml", `
name: %s-%s
input: {topic: %s, time_field: ts%s}
key: [org, site, floor, zone]
windows: [1m]
allowed_lateness: 30s
%s
outputs: [{type: file, path: %q}]
`, name, file, topic, partitioning, aggs, filepath.Join(dir, "out-"+file))
			}
			keyed := specFor("keyed", keyedT, ", partitioned_by: [org, site, floor, zone]")
			auto := specFor("auto", rrT, "")
			byOrg := specFor("org", orgT, ", partitioned_by: [org]")
			run := &skewRun{b: b, ctx: ctx, brokers: brokers, dir: dir, token: writeFile(b, dir, "token", "bench-token-0123456789"), profile: i == 0}
			for m := range 3 {
				run.start(keyed, m)
				run.start(auto, m)
				run.start(byOrg, m)
			}
			run.balanced(keyed)
			run.balanced(auto, 1, 2)
			run.balanced(byOrg)
			run.freeze()
			produce(keyedT, "key")
			produce(rrT, "none")
			produce(orgT, "org")
			keyedEnds, rrEnds, orgEnds := run.endOffsets(keyedT), run.endOffsets(rrT), run.endOffsets(orgT)
			for i := range 3 { // turns side by side: this machine's speed drifts over seconds
				run.turn(run.of(keyed)[i], keyedEnds, 0)
				run.turn(run.of(auto)[i], rrEnds, 1)
				run.turn(run.of(byOrg)[i], orgEnds, 0)
			}
			// The first stage's partials become visible when its transaction commits, at a
			// checkpoint; from then on everything auto's processes do is the second stage's.
			before := map[*skewProc]float64{}
			for _, sp := range run.of(auto) {
				before[sp] = procCPU(b, sp.p.Cmd.Process.Pid)
			}
			run.thaw(auto)
			run.checkpoint(auto)
			run.freeze()
			for _, sp := range run.of(auto) {
				sp.busyCPU[2] += procCPU(b, sp.p.Cmd.Process.Pid) - before[sp]
			}
			repartitionEnds := map[int32]int64{}
			readCommitted(b, ctx, brokers, name+"-auto.repartition", func(r *kgo.Record) {
				repartitionEnds[r.Partition] = max(repartitionEnds[r.Partition], r.Offset+1)
			})
			for _, sp := range run.of(auto) {
				run.turn(sp, repartitionEnds, 2)
			}
			for _, path := range []string{keyed, auto, byOrg} {
				run.thaw(path) // the status API answers only a running process
			}
			stats := map[string]skewStats{}
			for spec, path := range map[string]string{"keyed": keyed, "auto": auto, "org": byOrg} {
				sub := &skewRun{b: b, ctx: ctx, procs: run.of(path)}
				stats[spec] = sub.measure()
			}
			run.stop()
			r := round{
				keyedCPU: stats["keyed"].total / float64(n), autoCPU: stats["auto"].total / float64(n),
				autoRate: float64(n) / stats["auto"].maxBusy, orgRate: float64(n) / stats["org"].maxBusy,
			}
			res = append(res, r)
			fmt.Fprintf(os.Stderr, "round %d: CPU per record keyed %.2f µs, auto (two stages) %.2f µs: %.2fx; partition-bound auto %.0f rec/s, by org %.0f rec/s: %.2fx\n",
				i+1, 1e6*r.keyedCPU, 1e6*r.autoCPU, r.autoCPU/r.keyedCPU, r.autoRate, r.orgRate, r.autoRate/r.orgRate)
		}
		med := func(f func(round) float64) float64 {
			v := make([]float64, len(res))
			for i, r := range res {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		cpuRatio := med(func(r round) float64 { return r.autoCPU / r.keyedCPU })
		rateRatio := med(func(r round) float64 { return r.autoRate / r.orgRate })
		b.ReportMetric(cpuRatio, "auto/keyed-cpu")
		b.ReportMetric(rateRatio, "auto/by-org-rate")
		var cpus, rates []string
		for _, r := range res {
			cpus = append(cpus, fmt.Sprintf("%.2f", r.autoCPU/r.keyedCPU))
			rates = append(rates, fmt.Sprintf("%.2f", r.autoRate/r.orgRate))
		}
		fmt.Fprintf(os.Stderr, "records %d, %d rounds (medians): auto/keyed CPU per record %.2fx (rounds %s); auto/by-org partition-bound rate %.2fx (rounds %s)\n",
			n, rounds, cpuRatio, strings.Join(cpus, ", "), rateRatio, strings.Join(rates, ", "))
	}
}
