//go:build integration

package sink_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/sink"
)

// TestCassandraSessionAuthAndTLS connects to the local Cassandra that requires TLS and a
// password with every combination an operator can get wrong, and checks that the right one
// connects and writes, and that each wrong one is refused with a message naming its cause
// (not the driver's "unable to discover protocol version" alone). The escape hatch
// insecure_skip_verify connects despite an untrusted CA, which is all it is for.
func TestCassandraSessionAuthAndTLS(t *testing.T) {
	ctx := testenv.Context(t, 3*time.Minute)
	hosts, ca := testenv.CassandraSecure(t)
	role := strings.ReplaceAll(testenv.Name(t, "sess"), "-", "_")
	testenv.CassandraSecureRole(t, role, "pw-"+role, "CREATE ON ALL KEYSPACES")
	stranger := testenv.NewTLS(t, t.TempDir(), "stranger", "127.0.0.1")

	good := sink.CassandraConn{Hosts: hosts, Username: role, Password: "pw-" + role, TLS: &sink.CassandraTLS{CAFile: ca}}
	with := func(f func(*sink.CassandraConn)) sink.CassandraConn {
		c := good
		tc := *good.TLS
		c.TLS = &tc
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		conn    sink.CassandraConn
		wantErr string // "" connects
	}{
		{"password and CA", good, ""},
		{"wrong password", with(func(c *sink.CassandraConn) { c.Password = "not-the-password" }), "authentication failed"},
		{"unknown user", with(func(c *sink.CassandraConn) { c.Username = "nobody_" + role }), "authentication failed"},
		{"no credentials", with(func(c *sink.CassandraConn) { c.Username, c.Password = "", "" }), "requires authentication"},
		{"untrusted CA", with(func(c *sink.CassandraConn) { c.TLS.CAFile = stranger.CA }), "not signed by a trusted CA"},
		{"system roots only", with(func(c *sink.CassandraConn) { c.TLS.CAFile = "" }), "not signed by a trusted CA"},
		{"wrong server name", with(func(c *sink.CassandraConn) { c.TLS.ServerName = "cassandra.example.internal" }), "does not name the host"},
		{"plain text to the TLS port", with(func(c *sink.CassandraConn) { c.TLS = nil }), "does it require TLS"},
		{"insecure_skip_verify accepts any CA", with(func(c *sink.CassandraConn) {
			c.TLS = &sink.CassandraTLS{InsecureSkipVerify: true}
		}), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sink.NewCassandraSessionWith(ctx, tc.conn, sink.WithTimeouts(5*time.Second, 5*time.Second))
			if tc.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatalf("connected; want an error containing %q", tc.wantErr)
				}
				t.Logf("refused: %v", err)
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not say %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "pw-"+role) || strings.Contains(err.Error(), "not-the-password") {
					t.Fatalf("error quotes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var v string
			if err := s.Query("SELECT release_version FROM system.local").WithContext(ctx).Scan(&v); err != nil {
				t.Fatal(err)
			}
		})
	}

	// The right credentials create a keyspace (the role owns it from then on) and write.
	s, err := sink.NewCassandraSessionWith(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []string{
		"CREATE KEYSPACE " + role + " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
		"CREATE TABLE " + role + ".t (k text PRIMARY KEY, n bigint)",
		"INSERT INTO " + role + ".t (k, n) VALUES ('a', 7)",
	} {
		if err := s.Query(q).WithContext(ctx).Exec(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var n int64
	if err := testenv.CassandraSecureAdmin(t).Query("SELECT n FROM " + role + ".t WHERE k = 'a'").Scan(&n); err != nil || n != 7 {
		t.Fatalf("row written over TLS with a password reads back %d (%v), want 7", n, err)
	}

	// A session that dies with the context it was made under does not linger.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sink.NewCassandraSessionWith(cctx, good); !errors.Is(err, context.Canceled) {
		t.Fatalf("session under a cancelled context: %v, want context.Canceled", err)
	}
}
