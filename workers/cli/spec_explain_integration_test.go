//go:build integration

package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestSpecExplainChecksTheTopic: with a worker configuration, spec explain reads the newest
// records of every partition of the input topic and refuses a spec partitioned by a field they
// lack, naming record and field; a spec that fits them passes, and a topic with nothing in it
// yet has nothing to refuse.
func TestSpecExplainChecksTheTopic(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 2*time.Minute)
	topic, empty := testenv.Name(t, "explain"), testenv.Name(t, "explain-empty")
	cl := testenv.KafkaTopic(t, ctx, topic, 2, nil)
	testenv.KafkaTopic(t, ctx, empty, 2, nil)
	// 30 records per partition: the sample reads the newest 20 of each.
	for i := range 60 {
		v := fmt.Appendf(nil, `{"service":"s%d","status":"2xx","ts":%d,"host":"h%d"}`, i%3, time.Now().UnixMilli(), i%4)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("worker.yaml", fmt.Sprintf("spec: unused.yaml\nkafka: {brokers: [%s]}\ncheckpoint: {location: 'file://%s'}\n", strings.Join(brokers, ","), dir))
	specFor := func(file, tp, partitioning string) string {
		return write(file, fmt.Sprintf("name: web\ninput: {topic: %s, time_field: ts, partitioned_by: [%s]}\nkey: [service, status]\nwindows: [1m]\naggregations: [{fn: count}]\noutputs: [{type: stdout}]\n", tp, partitioning))
	}
	for _, tc := range []struct {
		name        string
		spec        string
		code        int
		out, errOut string
	}{
		{"records that fit", specFor("host.yaml", topic, "host"), 0, "40 records fit the spec", ""},
		{"a partitioning field the records lack", specFor("device.yaml", topic, "device"), 1, "",
			`input.partitioned_by[0]: no record has the field "device", in 40 records`},
		{"an empty topic", specFor("empty.yaml", empty, "device"), 0, "no records to check", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, "spec", "explain", tc.spec, "--config", cfg)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errOut) {
				t.Fatalf("exit %d, want %d with %q and %q\nstdout: %s\nstderr: %s", code, tc.code, tc.out, tc.errOut, out, errOut)
			}
		})
	}
}
