package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSpecExplain(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const specFmt = "name: web\ninput: {topic: access, time_field: ts%s}\nkey: [service, status]\nwindows: [1m, 1h]\naggregations: [{fn: count}]\noutputs: [{type: cassandra, keyspace: m, table: web}]\n"
	byHost := write("host.yaml", strings.Replace(specFmt, "%s", ", partitioned_by: [host]", 1))
	byKey := write("key.yaml", strings.Replace(specFmt, "%s", ", partitioned_by: [service]", 1))
	unknown := write("unknown.yaml", strings.Replace(specFmt, "%s", "", 1))
	good := write("good.jsonl", `{"service":"a","status":"5xx","ts":1,"host":"h1"}`+"\n\n"+`{"service":"b","status":"2xx","ts":2,"host":"h2"}`+"\n")
	noHost := write("nohost.jsonl", `{"service":"a","status":"5xx","ts":1,"host":"h1"}`+"\n"+`{"service":"a","status":"5xx","ts":2}`+"\n")
	noKey := write("nokey.jsonl", `{"status":"5xx","ts":1,"host":"h1"}`+"\n")
	for _, tc := range []struct {
		name        string
		args        []string
		code        int
		out, errOut []string
	}{
		{"two stages by a finer field", []string{"spec", "explain", byHost}, 0,
			[]string{"runs in two stages", "partitioned by [host], not within its key", "web.repartition", "liveagg.web.stage2", "pre-aggregates each partition into 1m partials"}, nil},
		{"two stages, keying unknown", []string{"spec", "explain", unknown}, 0, []string{"runs in two stages", "not declared", "warning: input.idle_timeout is not set"}, nil},
		{"one stage", []string{"spec", "explain", byKey}, 0, []string{"runs in one stage", "declared partitioned by [service]", "consumer group liveagg.web"}, nil},
		{"a sample that fits", []string{"spec", "explain", byHost, "--sample", good}, 0, []string{"2 records fit the spec"}, nil},
		{"a sample without the partitioning field", []string{"spec", "explain", byHost, "--sample", noHost}, 1, nil,
			[]string{"nohost.jsonl:2: input.partitioned_by[0]: the record has no field \"host\""}},
		{"a sample without a key field", []string{"spec", "explain", byHost, "--sample", noKey}, 1, nil, []string{"nokey.jsonl:1:", "service"}},
		{"a missing sample", []string{"spec", "explain", byHost, "--sample", filepath.Join(dir, "none.jsonl")}, 2, nil, []string{"none.jsonl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, want := range tc.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, want := range tc.errOut {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
		})
	}
}
