package sink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sigv4-auth-cassandra-gocql-driver-plugin/sigv4"
	"github.com/gocql/gocql"
)

// TestCassandraConnCluster checks what a connection description turns into in the driver:
// the ports, the authenticator, and that TLS verifies unless told otherwise, since a
// mistake here would connect fine and only show as a session that trusts anyone.
func TestCassandraConnCluster(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AK", SecretAccessKey: "SK"}, nil
	})
	tests := []struct {
		name    string
		conn    CassandraConn
		wantErr string
		check   func(t *testing.T, c *gocql.ClusterConfig)
	}{
		{name: "plain", conn: CassandraConn{Hosts: []string{"10.0.0.1"}}, check: func(t *testing.T, c *gocql.ClusterConfig) {
			if c.Port != 9042 || c.Authenticator != nil || c.SslOpts != nil || c.Consistency != gocql.LocalQuorum {
				t.Errorf("port %d auth %v tls %v consistency %v; want 9042, none, none, LOCAL_QUORUM", c.Port, c.Authenticator, c.SslOpts, c.Consistency)
			}
		}},
		{name: "password over verified TLS", conn: CassandraConn{Hosts: []string{"h"}, Username: "u", Password: "p", TLS: &CassandraTLS{}},
			check: func(t *testing.T, c *gocql.ClusterConfig) {
				if a, ok := c.Authenticator.(gocql.PasswordAuthenticator); !ok || a.Username != "u" || a.Password != "p" {
					t.Errorf("authenticator %#v", c.Authenticator)
				}
				if c.SslOpts == nil || !c.SslOpts.EnableHostVerification || c.SslOpts.Config.InsecureSkipVerify {
					t.Errorf("TLS does not verify the server: %+v", c.SslOpts)
				}
				if c.SslOpts.Config.MinVersion < 0x0303 {
					t.Errorf("TLS allows versions below 1.2")
				}
			}},
		{name: "keyspaces sigv4 on 9142 with its server name", conn: CassandraConn{Hosts: []string{"cassandra.eu-west-1.amazonaws.com"},
			SigV4: &CassandraSigV4{Region: "eu-west-1", Credentials: creds}, TLS: &CassandraTLS{ServerName: "cassandra.eu-west-1.amazonaws.com"}},
			check: func(t *testing.T, c *gocql.ClusterConfig) {
				a, ok := c.Authenticator.(sigv4.AwsAuthenticator)
				if !ok || a.Region != "eu-west-1" || a.CredentialsCallback == nil {
					t.Fatalf("authenticator %#v, want SigV4 for eu-west-1 with a credentials callback", c.Authenticator)
				}
				got, err := a.CredentialsCallback()
				if err != nil || got.AccessKeyId != "AK" || got.SecretAccessKey != "SK" {
					t.Errorf("SigV4 credentials %+v, %v", got, err)
				}
				if c.Port != 9142 || c.SslOpts.Config.ServerName != "cassandra.eu-west-1.amazonaws.com" {
					t.Errorf("port %d server name %q", c.Port, c.SslOpts.Config.ServerName)
				}
			}},
		{name: "explicit port wins", conn: CassandraConn{Hosts: []string{"h"}, Port: 19042}, check: func(t *testing.T, c *gocql.ClusterConfig) {
			if c.Port != 19042 {
				t.Errorf("port %d", c.Port)
			}
		}},
		{name: "insecure is explicit", conn: CassandraConn{Hosts: []string{"h"}, TLS: &CassandraTLS{InsecureSkipVerify: true}},
			check: func(t *testing.T, c *gocql.ClusterConfig) {
				if c.SslOpts.EnableHostVerification || !c.SslOpts.Config.InsecureSkipVerify {
					t.Errorf("insecure_skip_verify not applied: %+v", c.SslOpts)
				}
			}},
		{name: "no hosts", conn: CassandraConn{}, wantErr: "no hosts"},
		{name: "sigv4 and a username", conn: CassandraConn{Hosts: []string{"h"}, Username: "u", SigV4: &CassandraSigV4{Region: "r", Credentials: creds}}, wantErr: "one or the other"},
		{name: "sigv4 without region", conn: CassandraConn{Hosts: []string{"h"}, SigV4: &CassandraSigV4{Credentials: creds}}, wantErr: "needs a region"},
		{name: "missing CA file", conn: CassandraConn{Hosts: []string{"h"}, TLS: &CassandraTLS{CAFile: filepath.Join(dir, "nope.pem")}}, wantErr: "ca_file"},
		{name: "CA file without PEM", conn: CassandraConn{Hosts: []string{"h"}, TLS: &CassandraTLS{CAFile: notPEM}}, wantErr: "no PEM certificate"},
		{name: "client key missing", conn: CassandraConn{Hosts: []string{"h"}, TLS: &CassandraTLS{CertFile: notPEM}}, wantErr: "client certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := sessionOptions{consistency: gocql.LocalQuorum}
			c, err := tc.conn.cluster(o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestExplainConnectError pins the hint put ahead of each driver error text the local secured
// Cassandra produces (see the integration test), so an operator reads the cause first.
func TestExplainConnectError(t *testing.T) {
	tests := []struct {
		driver  string
		withTLS bool
		want    string
	}{
		{"unable to discover protocol version: Provided username u and/or password are incorrect", true, "authentication failed"},
		{`unable to discover protocol version: authentication required (using "org.apache.cassandra.auth.PasswordAuthenticator")`, true, "requires authentication"},
		{"tls: failed to verify certificate: x509: certificate signed by unknown authority", true, "not signed by a trusted CA"},
		{"tls: failed to verify certificate: x509: certificate is valid for a.example, not b.example", true, "does not name the host"},
		{"tls: failed to verify certificate: x509: certificate has expired or is not yet valid", true, "TLS handshake failed"},
		{"read tcp 127.0.0.1:1->127.0.0.1:9142: read: connection reset by peer", false, "does it require TLS"},
		{"dial tcp 127.0.0.1:9142: connect: connection refused", false, ""},
	}
	for _, tc := range tests {
		got := explainConnectError(errors.New(tc.driver), tc.withTLS)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%q: hint %q, want one containing %q", tc.driver, got, tc.want)
		}
	}
}
