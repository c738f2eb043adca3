package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sigv4-auth-cassandra-gocql-driver-plugin/sigv4"
	"github.com/gocql/gocql"
)

// CassandraConn says how to reach and log in to a Cassandra cluster (or Amazon Keyspaces). The
// worker's config and the Terraform provider both build one, so they connect the same way.
type CassandraConn struct {
	// Hosts are contact points, host or host:port; a host without a port gets Port.
	Hosts []string
	// Port is the native port of hosts given without one (default 9042, or 9142 with
	// Keyspaces, its TLS port).
	Port int
	// Username and Password log in with Cassandra's password authentication (also Amazon
	// Keyspaces' service-specific credentials).
	Username string
	Password string
	// SigV4 logs in to Amazon Keyspaces with AWS credentials instead of a password.
	SigV4 *CassandraSigV4
	// TLS encrypts every connection; nil connects in plain text.
	TLS *CassandraTLS
}

// CassandraSigV4 signs Amazon Keyspaces' authentication challenge with AWS credentials, which
// are retrieved (and refreshed by the provider's cache) on every new connection.
type CassandraSigV4 struct {
	Region      string
	Credentials aws.CredentialsProvider
}

// CassandraTLS configures encryption to the cluster. The server's certificate is verified
// against CAFile (or the system roots) and its name against ServerName, or against the
// address each connection dials when ServerName is empty.
type CassandraTLS struct {
	CAFile string
	// CertFile and KeyFile are a client certificate, for clusters that require one.
	CertFile string
	KeyFile  string
	// ServerName is the name every node's certificate must carry. Set it when nodes are
	// reached by addresses their certificates do not name: Amazon Keyspaces hands out peer
	// IP addresses behind one certificate for cassandra.<region>.amazonaws.com.
	ServerName string
	// InsecureSkipVerify accepts any certificate: the traffic is encrypted but the server is
	// not authenticated, so anyone on the path can read it. For a throwaway test cluster only.
	InsecureSkipVerify bool
}

// SessionOption adjusts a session beyond where and how it connects.
type SessionOption func(*sessionOptions)

type sessionOptions struct {
	timeout        time.Duration
	connectTimeout time.Duration
	consistency    gocql.Consistency
	translator     gocql.AddressTranslator
}

// WithTimeouts bounds each query and each connection attempt (default 10s each).
func WithTimeouts(query, connect time.Duration) SessionOption {
	return func(o *sessionOptions) { o.timeout, o.connectTimeout = query, connect }
}

// WithConsistency sets the session's consistency (default LOCAL_QUORUM, which is also the only
// level Amazon Keyspaces accepts for writes).
func WithConsistency(c gocql.Consistency) SessionOption {
	return func(o *sessionOptions) { o.consistency = c }
}

// WithAddressTranslator rewrites the addresses nodes advertise, for a cluster behind a proxy.
func WithAddressTranslator(t gocql.AddressTranslator) SessionOption {
	return func(o *sessionOptions) { o.translator = t }
}

// NewCassandraSessionWith connects to conn with token-aware routing, so each write goes to a
// replica, and fails with a message that says which part of the connection was refused: the
// TLS handshake (a CA or server name that does not match) or the login. It gives up when ctx
// ends even if the driver is still trying.
func NewCassandraSessionWith(ctx context.Context, conn CassandraConn, opts ...SessionOption) (*gocql.Session, error) {
	o := sessionOptions{timeout: 10 * time.Second, connectTimeout: 10 * time.Second, consistency: gocql.LocalQuorum}
	for _, opt := range opts {
		opt(&o)
	}
	c, err := conn.cluster(o)
	if err != nil {
		return nil, err
	}
	type result struct {
		s   *gocql.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := c.CreateSession()
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("cassandra %v: %s%w", conn.Hosts, explainConnectError(r.err, conn.TLS != nil), r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, fmt.Errorf("cassandra %v: %w", conn.Hosts, ctx.Err())
	}
}

// cluster turns conn and the options into the driver's configuration.
func (conn CassandraConn) cluster(o sessionOptions) (*gocql.ClusterConfig, error) {
	if len(conn.Hosts) == 0 {
		return nil, errors.New("cassandra: no hosts")
	}
	port := conn.Port
	if port == 0 {
		port = 9042
		if conn.SigV4 != nil {
			port = 9142
		}
	}
	c := gocql.NewCluster(conn.Hosts...)
	c.Port = port
	c.Timeout = o.timeout
	c.ConnectTimeout = o.connectTimeout
	c.Consistency = o.consistency
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	c.RetryPolicy = &gocql.ExponentialBackoffRetryPolicy{NumRetries: 3, Min: 50 * time.Millisecond, Max: 2 * time.Second}
	c.AddressTranslator = o.translator
	switch {
	case conn.SigV4 != nil && conn.Username != "":
		return nil, errors.New("cassandra: both SigV4 and a username are set; Amazon Keyspaces takes one or the other")
	case conn.SigV4 != nil:
		if conn.SigV4.Region == "" || conn.SigV4.Credentials == nil {
			return nil, errors.New("cassandra: SigV4 needs a region and AWS credentials")
		}
		c.Authenticator = sigv4.NewAwsAuthenticatorWithCredentialCallback(conn.SigV4.Region, sigv4Credentials(conn.SigV4.Credentials))
	case conn.Username != "":
		c.Authenticator = gocql.PasswordAuthenticator{Username: conn.Username, Password: conn.Password}
	}
	if conn.TLS != nil {
		tc, err := conn.TLS.config()
		if err != nil {
			return nil, err
		}
		// The driver fills in ServerName per dialled address when it is empty and
		// verification is on; EnableHostVerification keeps verification on.
		c.SslOpts = &gocql.SslOptions{Config: tc, EnableHostVerification: !conn.TLS.InsecureSkipVerify}
	}
	return c, nil
}

func (t CassandraTLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cassandra tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cassandra tls ca_file: no PEM certificate in %s", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cassandra tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// sigv4Credentials adapts an aws-sdk-go-v2 credentials provider to the plugin's callback. The
// callback has no context; a minute bounds a stuck credentials endpoint.
func sigv4Credentials(p aws.CredentialsProvider) sigv4.SigV4CredentialsCallback {
	return func() (sigv4.SigV4Credentials, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cr, err := p.Retrieve(ctx)
		if err != nil {
			return sigv4.SigV4Credentials{}, fmt.Errorf("aws credentials for Amazon Keyspaces: %w", err)
		}
		return sigv4.SigV4Credentials{AccessKeyId: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey, SessionToken: cr.SessionToken}, nil
	}
}

// explainConnectError names what refused the connection ahead of the driver's own words, which
// bury it behind "unable to discover protocol version". The driver flattens the cause into
// text, so this reads the text.
func explainConnectError(err error, withTLS bool) string {
	m := err.Error()
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(m, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("certificate signed by unknown authority"):
		return "TLS: the server's certificate is not signed by a trusted CA (check the CA file): "
	case has("certificate is valid for", "certificate is not valid for any names"):
		return "TLS: the server's certificate does not name the host dialled (check the server name): "
	case has("x509:", "tls:"):
		return "TLS handshake failed: "
	case has("first record does not look like a TLS handshake"):
		return "TLS: the server does not speak TLS on this port: "
	case has("password are incorrect", "Provided username", "AuthenticationException", "authentication failed"):
		return "authentication failed (check the username and password): "
	case has("authentication required"):
		return "the server requires authentication and no username is configured: "
	case !withTLS && has("connection reset by peer", "EOF"):
		return "the server closed the connection (does it require TLS?): "
	}
	return ""
}
