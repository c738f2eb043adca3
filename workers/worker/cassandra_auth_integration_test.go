//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/lambdas/spotinterrupt"
	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/worker"
)

// TestWorkerWithSecuredCassandra runs worker processes against the local Cassandra that
// requires TLS and a password, with the admin API served over TLS:
//
//   - a wrong password and an untrusted CA each stop the worker at start (exit status 4, so
//     its supervisor restarts it) with a message naming the cause, before it reads a record:
//     the group has no committed offset and no checkpoint exists;
//   - the right password and CA write every (key, minute) row exactly;
//   - the admin API answers the spot-interruption lambda's TLS client verifying the worker's
//     certificate against its CA and 127.0.0.1, and a client trusting another CA gets nothing;
//   - with MODIFY revoked mid-run (Cassandra answers Unauthorized, a Configuration error) the
//     worker holds: its status names the blocked sink, no row of the new minutes appears, no
//     checkpoint moves past them; once MODIFY is granted back, every row is exact.
func TestWorkerWithSecuredCassandra(t *testing.T) {
	ctx := testenv.Context(t, 5*time.Minute)
	plain := testenv.KafkaBrokers(t)
	secure, ca := testenv.CassandraSecure(t)
	name := testenv.Name(t, "cassauth")
	ks := strings.ReplaceAll(name, "-", "_")
	role, pass := ks, "pw-"+ks
	testenv.CassandraSecureRole(t, role, pass, "CREATE ON ALL KEYSPACES")
	cass := testenv.CassandraSecureAdmin(t)
	topic := name + "-raw"
	prod := newTopic(t, plain, topic, 2)

	dir := t.TempDir()
	stranger := testenv.NewTLS(t, dir, "stranger", "127.0.0.1")
	adminTLS := testenv.NewTLS(t, dir, "admin", "127.0.0.1")
	spec := writeFile(t, dir, "spec.yaml", `
name: %s
input: {topic: %s, time_field: t, partitioned_by: [k]}
key: [k]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: cassandra, keyspace: %s, table: rollup}]
`, name, topic, ks)
	token := writeFile(t, dir, "token", "tok-%s", ks)
	adminPort := testenv.FreePort(t)
	ckpt := filepath.Join(dir, "ckpt")
	config := func(file, password, caFile string) string {
		pw := writeFile(t, dir, file+".pw", "%s\n", password)
		return writeFile(t, dir, file, `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s}
sinks:
  cassandra:
    hosts: [%s]
    username: %s
    password_file: %s
    tls: {enabled: true, ca_file: %s}
    # Fewer writes in flight than a phase closes rows, so a refusing sink stops the reads.
    concurrency: 2
admin:
  listen: 127.0.0.1:%d
  token_file: %s
  tls: {cert_file: %s, key_file: %s}
`, spec, strings.Join(plain, ","), ckpt, strings.Join(secure, ","), role, pw, caFile, adminPort, token, adminTLS.Cert, adminTLS.Key)
	}
	// The services' environment points LIVEAGG_CASSANDRA_HOSTS at the plain Cassandra, and it
	// would override the file.
	env := "LIVEAGG_CASSANDRA_HOSTS=" + strings.Join(secure, ",")

	// 3 keys x 20 records a minute; each phase ends with a record per partition a minute past
	// its last, which closes its windows.
	const base = int64(1767225600000)
	phase := func(fromMin, toMin int) {
		t.Helper()
		var recs []*kgo.Record
		for m := fromMin; m < toMin; m++ {
			for i := range 60 {
				k := i % 3
				recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(k % 2), Key: fmt.Appendf(nil, "k%d", k),
					Value: fmt.Appendf(nil, `{"k":"k%d","t":%d}`, k, base+int64(m)*60_000+int64(i)*1000)})
			}
		}
		for p := range int32(2) {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte("end"), Value: fmt.Appendf(nil, `{"k":"end","t":%d}`, base+int64(toMin)*60_000)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	manual, err := kgo.NewClient(kgo.SeedBrokers(plain...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	prod = manual
	phase(0, 5)

	// Refused at start, with the cause in the log, and nothing read.
	for _, bad := range []struct{ id, password, ca, says string }{
		{"wrong-password", "not-the-password", ca, "authentication failed"},
		{"untrusted-ca", pass, stranger.CA, "not signed by a trusted CA"},
	} {
		w := startWorker(t, dir, config(bad.id+".yaml", bad.password, bad.ca), bad.id, env)
		select {
		case <-w.Done:
		case <-time.After(90 * time.Second):
			t.Fatalf("%s: the worker kept running:\n%s", bad.id, w.Log())
		}
		if code := w.Cmd.ProcessState.ExitCode(); code != 4 {
			t.Errorf("%s: exit status %d, want 4 (failed: restart)", bad.id, code)
		}
		if !strings.Contains(w.Log(), bad.says) {
			t.Fatalf("%s: the log does not say %q:\n%s", bad.id, bad.says, w.Log())
		}
		if strings.Contains(w.Log(), pass) || strings.Contains(w.Log(), "not-the-password") {
			t.Fatalf("%s: the log holds a password:\n%s", bad.id, w.Log())
		}
		t.Logf("%s: %s", bad.id, lastLine(w.Log()))
	}
	offsets, err := kadm.NewClient(manual).FetchOffsets(ctx, "liveagg."+name)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(offsets.Offsets()); n != 0 {
		t.Fatalf("refused workers committed offsets: %v", offsets.Offsets())
	}
	if entries, _ := os.ReadDir(ckpt); len(entries) != 0 {
		t.Fatalf("refused workers wrote checkpoints: %v", entries)
	}

	w := startWorker(t, dir, config("good.yaml", pass, ca), "good", env)
	waitRows := func(what string, minutes int) {
		t.Helper()
		var got map[string]int64
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			if got = countRows(t, ctx, cass, ks); exact(got, minutes) {
				return
			}
			if w.Exited() {
				t.Fatalf("worker exited:\n%s", w.Log())
			}
		}
		t.Fatalf("%s: rows %v, want k0..k2 x minutes 0..%d at 20 each:\n%s", what, got, minutes-1, w.Log())
	}
	waitRows("over TLS with a password", 5)

	// The lambda's side of admin TLS: its CA and the name it expects.
	url := fmt.Sprintf("https://127.0.0.1:%d", adminPort)
	adminClient := func(caFile string) *admin.Client {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := spotinterrupt.AdminTLS(pem, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return admin.NewClient(url, "tok-"+ks, &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second})
	}
	status := func() worker.Status {
		t.Helper()
		var st worker.Status
		if err := adminClient(adminTLS.CA).Status(ctx, &st); err != nil {
			t.Fatalf("admin status over TLS: %v", err)
		}
		return st
	}
	if st := status(); len(st.Partitions) != 2 {
		t.Fatalf("admin status over TLS: %d partitions, want 2: %+v", len(st.Partitions), st)
	}
	var st worker.Status
	if err := adminClient(stranger.CA).Status(ctx, &st); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("admin status trusting another CA: %v, want an unknown-authority refusal", err)
	}

	// Take MODIFY away: every write is refused as Unauthorized. The role created the keyspace
	// and the table, so it holds the permission on both.
	for _, q := range []string{"REVOKE MODIFY ON KEYSPACE %[1]s FROM %[2]s", "REVOKE MODIFY ON TABLE %[1]s.rollup FROM %[2]s"} {
		if err := cass.Query(fmt.Sprintf(q, ks, role)).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	phase(5, 10)
	blocked := func() *worker.SinkStatus {
		for _, s := range status().Sinks {
			if s.Blocked {
				return &s
			}
		}
		return nil
	}
	var sb *worker.SinkStatus
	for deadline := time.Now().Add(60 * time.Second); sb == nil; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no sink reports itself blocked with MODIFY revoked: %+v\n%s", status(), w.Log())
		}
		sb = blocked()
	}
	t.Logf("blocked: %s: %s", sb.Name, sb.LastError)
	if !strings.Contains(sb.LastError, "MODIFY") {
		t.Errorf("the blocked sink's error does not name the missing permission: %q", sb.LastError)
	}
	phase(10, 15)
	// Consumption stops once the writes in flight (2) are all refused: neither the offsets
	// read nor the checkpoints move, and the third phase waits in Kafka.
	progress := func() (next, ckpt int64) {
		for _, p := range status().Partitions {
			next += p.NextOffset
			ckpt += p.LastCheckpointOffset
		}
		return next, ckpt
	}
	time.Sleep(2 * time.Second)
	next0, ckpt0 := progress()
	time.Sleep(4 * time.Second)
	next1, ckpt1 := progress()
	if next1 != next0 || ckpt1 != ckpt0 {
		t.Fatalf("while the sink refused every write the worker read on (next offsets %d -> %d) or checkpointed (%d -> %d)", next0, next1, ckpt0, ckpt1)
	}
	if produced := int64(3 * (300 + 2)); next1 >= produced {
		t.Fatalf("the worker read all %d records with its sink refusing writes", produced)
	}
	t.Logf("holding at next offsets %d of %d, checkpointed up to %d", next1, 3*(300+2), ckpt1)
	if got := countRows(t, ctx, cass, ks); len(got) != 15 {
		t.Fatalf("rows appeared with MODIFY revoked: %d, want the 15 of minutes 0..4", len(got))
	}
	if w.Exited() {
		t.Fatalf("the worker exited instead of holding:\n%s", w.Log())
	}

	if err := cass.Query(fmt.Sprintf("GRANT MODIFY ON TABLE %s.rollup TO %s", ks, role)).Exec(); err != nil {
		t.Fatal(err)
	}
	waitRows("after MODIFY came back", 15)
	if sb := blocked(); sb != nil {
		t.Fatalf("sink still blocked after the grant: %+v", sb)
	}
}

// countRows reads the rollup as the superuser: key@minute -> count, the end markers left out.
func countRows(t *testing.T, ctx context.Context, s *gocql.Session, ks string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	iter := s.Query(fmt.Sprintf("SELECT k, window_start, count FROM %s.rollup", ks)).WithContext(ctx).Iter()
	var k string
	var start time.Time
	var n int64
	for iter.Scan(&k, &start, &n) {
		if k != "end" {
			got[fmt.Sprintf("%s@%d", k, (start.UnixMilli()-1767225600000)/60_000)] = n
		}
	}
	if err := iter.Close(); err != nil {
		// The table may not exist yet while the worker starts.
		if strings.Contains(err.Error(), "unconfigured table") || strings.Contains(err.Error(), "does not exist") {
			return got
		}
		t.Fatal(err)
	}
	return got
}

// exact says whether rows hold k0..k2 for minutes 0..minutes-1 at 20 each, and nothing else.
func exact(rows map[string]int64, minutes int) bool {
	if len(rows) != 3*minutes {
		return false
	}
	for m := range minutes {
		for k := range 3 {
			if rows[fmt.Sprintf("k%d@%d", k, m)] != 20 {
				return false
			}
		}
	}
	return true
}

// lastLine is a process log's last line, for a test log.
func lastLine(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	return lines[len(lines)-1]
}
