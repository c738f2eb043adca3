//go:build integration

package worker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestWorkerOverTLSWithSCRAM runs a worker against the local Kafka's listener that requires TLS
// (a certificate from a local CA) and SCRAM-SHA-512: it must connect with the configured CA and
// credentials and aggregate, and a worker with a wrong password must stop with a message that
// says authentication failed, not hang.
func TestWorkerOverTLSWithSCRAM(t *testing.T) {
	ctx := testenv.Context(t, 3*time.Minute)
	plain := testenv.KafkaBrokers(t)
	secure, ca := testenv.KafkaSASLSSL(t)
	name := testenv.Name(t, "auth")
	user, pass := name, "pw-"+name
	prod := newTopic(t, plain, name+"-raw", 2)
	adm := kadm.NewClient(prod)
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha512, Iterations: 8192, Password: pass}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Error(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spec := countSpec(t, dir, name, name+"-raw")
	config := func(file, password string) string {
		pw := writeFile(t, dir, file+".pw", "%s", password)
		return writeFile(t, dir, file, `
spec: %s
kafka:
  brokers: [%s]
  tls: {enabled: true, ca_file: %q}
  sasl: {mechanism: scram-sha-512, username: %q, password_file: %q}
checkpoint: {location: "file://%s", interval: 1s}
`, spec, strings.Join(secure, ","), ca, user, pw, filepath.Join(dir, "ckpt"))
	}

	var recs []*kgo.Record
	for i := range 600 {
		recs = append(recs, &kgo.Record{Topic: name + "-raw", Key: []byte(fmt.Sprint(i % 3)),
			Value: fmt.Appendf(nil, `{"k":"k%d","t":%d}`, i%3, 1767225600000+int64(i)*100)})
	}
	for p := range int32(2) {
		recs = append(recs, &kgo.Record{Topic: name + "-raw", Partition: p, Value: []byte(`{"k":"end","t":1767312000000}`)})
	}
	manual, err := kgo.NewClient(kgo.SeedBrokers(plain...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	for _, r := range recs {
		if r.Partition == 0 && r.Key != nil {
			r.Partition = int32(r.Key[0]-'0') % 2
		}
	}
	if err := manual.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The environment's LIVEAGG_KAFKA_BROKERS (the plaintext listener) would override the file.
	env := "LIVEAGG_KAFKA_BROKERS=" + strings.Join(secure, ",")
	w := startWorker(t, dir, config("good.yaml", pass), "secure", env)
	total := 0
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		total = 0
		paths, _ := filepath.Glob(filepath.Join(dir, "out", "*.jsonl"))
		for _, p := range paths {
			b, _ := os.ReadFile(p)
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var n int
				if i := strings.Index(line, `"count":`); i >= 0 && !strings.Contains(line, `"end"`) {
					fmt.Sscan(line[i+8:], &n)
					total += n
				}
			}
		}
		if total >= 600 {
			break
		}
		select {
		case <-w.Done:
			t.Fatalf("worker exited:\n%s", w.Log())
		default:
		}
	}
	if total != 600 {
		t.Fatalf("rollups over TLS+SCRAM count %d records, want 600:\n%s", total, w.Log())
	}

	bad := startWorker(t, dir, config("bad.yaml", "not-the-password"), "wrong-password", env)
	select {
	case <-bad.Done:
	case <-time.After(60 * time.Second):
		t.Fatalf("a worker with a wrong password kept running:\n%s", bad.Log())
	}
	t.Logf("wrong password: %s", strings.TrimSpace(bad.Log()))
	if log := strings.ToLower(bad.Log()); !strings.Contains(log, "sasl") && !strings.Contains(log, "authentication") {
		t.Fatalf("the wrong password's failure does not say authentication failed:\n%s", bad.Log())
	}
}
