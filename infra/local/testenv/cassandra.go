package testenv

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// Environment variables of the secured Cassandra, set by `infra/local/services env`. They
// carry a TEST_ prefix so that a worker started by a test, which inherits the environment,
// never takes them for its own LIVEAGG_CASSANDRA_* settings.
const (
	EnvCassandraSecure   = "LIVEAGG_TEST_CASSANDRA_SECURE_HOSTS"
	EnvCassandraSecureCA = "LIVEAGG_TEST_CASSANDRA_CA_FILE"
)

// The secured Cassandra's default superuser, which Cassandra creates on first start. Tests log
// in as it only to create their own roles.
const (
	CassandraSuperuser         = "cassandra"
	CassandraSuperuserPassword = "cassandra"
)

// CassandraSecure returns the contact points of the local Cassandra that requires TLS and a
// password (infra/local/services' cassandra-secure), and the PEM file of the CA that signed
// its certificate, which names 127.0.0.1.
func CassandraSecure(t testing.TB) (hosts []string, caFile string) {
	t.Helper()
	hosts = strings.Split(lookup(t, EnvCassandraSecure), ",")
	reachable(t, "cassandra (TLS and password)", hosts[0])
	return hosts, lookup(t, EnvCassandraSecureCA)
}

// CassandraSecureAdmin returns a session on the secured Cassandra logged in as the superuser,
// over TLS verified against its CA; it is closed when the test ends.
func CassandraSecureAdmin(t testing.TB) *gocql.Session {
	t.Helper()
	hosts, ca := CassandraSecure(t)
	host, port := splitHostPort(t, hosts[0])
	c := gocql.NewCluster(host)
	c.Port = port
	c.Timeout, c.ConnectTimeout = 30*time.Second, 10*time.Second
	c.Consistency = gocql.One
	c.Authenticator = gocql.PasswordAuthenticator{Username: CassandraSuperuser, Password: CassandraSuperuserPassword}
	c.SslOpts = &gocql.SslOptions{CaPath: ca, EnableHostVerification: true}
	s, err := c.CreateSession()
	if err != nil {
		t.Fatalf("secured cassandra at %s as the superuser: %v", hosts[0], err)
	}
	t.Cleanup(s.Close)
	return s
}

// CassandraSecureRole creates a login role with a password on the secured Cassandra, runs each
// grant ("CREATE ON ALL KEYSPACES", "MODIFY ON KEYSPACE ks", ...) for it, and drops the role
// when the test ends. name must be a valid CQL identifier.
func CassandraSecureRole(t testing.TB, name, password string, grants ...string) {
	t.Helper()
	s := CassandraSecureAdmin(t)
	if err := s.Query(fmt.Sprintf("CREATE ROLE %s WITH PASSWORD = '%s' AND LOGIN = true", name, strings.ReplaceAll(password, "'", "''"))).Exec(); err != nil {
		t.Fatalf("create role %s: %v", name, err)
	}
	t.Cleanup(func() { _ = s.Query("DROP ROLE IF EXISTS " + name).Exec() })
	for _, g := range grants {
		if err := s.Query(fmt.Sprintf("GRANT %s TO %s", g, name)).Exec(); err != nil {
			t.Fatalf("grant %s to %s: %v", g, name, err)
		}
	}
}

func splitHostPort(t testing.TB, hostport string) (string, int) {
	t.Helper()
	host, p, ok := strings.Cut(hostport, ":")
	port, err := strconv.Atoi(p)
	if !ok || err != nil {
		t.Fatalf("%q is not host:port", hostport)
	}
	return host, port
}
