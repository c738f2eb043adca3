package indoorlocation_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	indoorlocation "github.com/liveagg/liveagg/examples/indoor-location"
	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
)

var update = flag.Bool("update", false, "rewrite schema.cql from the specs")

// TestSchemaMatchesSpecs keeps schema.cql what the workers create: the rollup tables of every
// spec with a Cassandra output, as the Cassandra sink's DDL makes them.
func TestSchemaMatchesSpecs(t *testing.T) {
	var b strings.Builder
	b.WriteString("-- The rollup tables of the indoor-location pipeline, as the workers create them\n")
	b.WriteString("-- (generated: go test ./examples/indoor-location -update).\n")
	for _, y := range indoorlocation.Specs() {
		s, err := spec.Parse(y)
		if err != nil {
			t.Fatal(err)
		}
		layout, err := agg.LayoutOf(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range s.Outputs {
			if o.Type != spec.OutputCassandra {
				continue
			}
			b.WriteString("\n-- " + s.Name + ": key " + strings.Join(s.Key, ", ") + "\n")
			for _, q := range sink.CassandraDDL(sink.CassandraConfig{Keyspace: o.Keyspace, Table: o.Table,
				Replication: map[string]string{"class": "SimpleStrategy", "replication_factor": "1"}}, s.Key, sink.Columns(layout)) {
				b.WriteString(q + ";\n")
			}
		}
	}
	if *update {
		if err := os.WriteFile("schema.cql", []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("schema.cql")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != b.String() {
		t.Fatalf("schema.cql is stale; run go test ./examples/indoor-location -update:\n%s", b.String())
	}
}

// TestLevelsAgree checks what a worker would otherwise find out at run time: every level reads
// what the level below writes, lists the same aggregations, and partitions fit keys.
func TestLevelsAgree(t *testing.T) {
	var specs []*spec.Spec
	for _, y := range indoorlocation.Specs() {
		s, err := spec.Parse(y)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	producers := map[string]struct {
		s       *spec.Spec
		keyedBy []string
	}{}
	for _, s := range specs {
		for _, o := range s.Outputs {
			if o.Partial {
				producers[o.Topic] = struct {
					s       *spec.Spec
					keyedBy []string
				}{s, o.Key}
			}
		}
	}
	for _, s := range specs {
		if s.Input.Format != spec.FormatPartials {
			continue
		}
		p, ok := producers[s.Input.Topic]
		if !ok {
			t.Errorf("%s reads %s, which no spec writes partials to", s.Name, s.Input.Topic)
			continue
		}
		lp, _ := agg.LayoutOf(p.s)
		ls, _ := agg.LayoutOf(s)
		if lp.Fingerprint() != ls.Fingerprint() {
			t.Errorf("%s and %s list different aggregations", p.s.Name, s.Name)
		}
		for _, k := range p.keyedBy {
			if !strings.Contains(" "+strings.Join(s.Key, " ")+" ", " "+k+" ") {
				t.Errorf("%s: partials are partitioned by %v, not within its key %v", s.Name, p.keyedBy, s.Key)
			}
		}
		for _, k := range s.Key {
			if !strings.Contains(" "+strings.Join(p.s.Key, " ")+" ", " "+k+" ") {
				t.Errorf("%s: key field %s is not in %s's key", s.Name, k, p.s.Name)
			}
		}
	}
}
