package config

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

const base = "spec: s.yaml\nkafka: {brokers: [k:9092]}\ncheckpoint: {location: 'file:///tmp/c'}\n"

// TestCassandraSection parses the sink's connection settings and checks the defaults Amazon
// Keyspaces needs and the combinations validation refuses, each with a message naming the key.
func TestCassandraSection(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Cassandra)
	}{
		{name: "password file and CA", yaml: `
sinks: {cassandra: {hosts: [db:9142], username: liveagg, password_file: /run/pw, tls: {enabled: true, ca_file: /etc/ca.pem}}}`,
			check: func(t *testing.T, c Cassandra) {
				if c.Username != "liveagg" || c.PasswordFile != "/run/pw" || !c.TLS.Enabled || c.TLS.CAFile != "/etc/ca.pem" || c.TLS.InsecureSkipVerify {
					t.Errorf("%+v", c)
				}
			}},
		{name: "keyspaces defaults", yaml: `
sinks: {cassandra: {hosts: [cassandra.eu-west-1.amazonaws.com], keyspaces: true}}`,
			check: func(t *testing.T, c Cassandra) {
				if !c.TLS.Enabled || c.TLS.ServerName != "cassandra.eu-west-1.amazonaws.com" || c.Replication["class"] != "SingleRegionStrategy" || len(c.Replication) != 1 {
					t.Errorf("keyspaces defaults not applied: %+v", c)
				}
			}},
		{name: "keyspaces keeps an explicit replication and server name", yaml: `
sinks: {cassandra: {hosts: ["cassandra.eu-west-1.amazonaws.com:9142"], keyspaces: true, replication: {class: SingleRegionStrategy}, tls: {server_name: x.example}}}`,
			check: func(t *testing.T, c Cassandra) {
				if c.TLS.ServerName != "x.example" {
					t.Errorf("server name %q", c.TLS.ServerName)
				}
			}},
		{name: "username and password from the environment", yaml: "sinks: {cassandra: {hosts: [db]}}",
			env: map[string]string{EnvCassandraUser: "u", EnvCassandraPassword: "p"},
			check: func(t *testing.T, c Cassandra) {
				if c.Username != "u" || c.Password != "p" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "secret may carry the username", yaml: "sinks: {cassandra: {hosts: [db], password_secret: liveagg/cassandra}}"},
		{name: "password never from yaml", yaml: "sinks: {cassandra: {hosts: [db], username: u, password: p}}", wantErr: "field password not found"},
		{name: "two password sources", yaml: "sinks: {cassandra: {hosts: [db], username: u, password_file: /f, password_ssm_parameter: /p}}",
			wantErr: "password_file and password_ssm_parameter are set"},
		{name: "file and environment", yaml: "sinks: {cassandra: {hosts: [db], username: u, password_file: /f}}",
			env: map[string]string{EnvCassandraPassword: "p"}, wantErr: "password_file and LIVEAGG_CASSANDRA_PASSWORD are both set"},
		{name: "username without password", yaml: "sinks: {cassandra: {hosts: [db], username: u}}", wantErr: "sinks.cassandra.username: needs a password"},
		{name: "password without username", yaml: "sinks: {cassandra: {hosts: [db], password_ssm_parameter: /p}}", wantErr: "username is not"},
		{name: "tls settings without enabled", yaml: "sinks: {cassandra: {hosts: [db], tls: {ca_file: /ca.pem}}}", wantErr: "without enabled: true"},
		{name: "client cert without key", yaml: "sinks: {cassandra: {hosts: [db], tls: {enabled: true, cert_file: /c.pem}}}", wantErr: "cert_file and key_file go together"},
		{name: "insecure with a CA", yaml: "sinks: {cassandra: {hosts: [db], tls: {enabled: true, ca_file: /ca.pem, insecure_skip_verify: true}}}",
			wantErr: "insecure_skip_verify: set with ca_file"},
		{name: "admin tls from two places", yaml: "admin: {tls: {cert_file: /c, key_file: /k, secret: s}}", wantErr: "admin.tls: the certificate comes from one place"},
		{name: "admin tls half a pair", yaml: "admin: {tls: {cert_ssm_parameter: /c}}", wantErr: "cert_ssm_parameter and key_ssm_parameter go together"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range []string{EnvCassandra, EnvCassandraUser, EnvCassandraPassword} {
				t.Setenv(e, tc.env[e])
			}
			c, err := Parse([]byte(base + tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c.Sinks.Cassandra)
			}
		})
	}
}

type fakeSSM map[string]string

func (f fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	v, ok := f[*in.Name]
	if !ok {
		return nil, errors.New("ParameterNotFound")
	}
	if !awssdk.ToBool(in.WithDecryption) {
		return nil, errors.New("asked without decryption")
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Value: awssdk.String(v)}}, nil
}

type fakeSecrets map[string]string

func (f fakeSecrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	v, ok := f[*in.SecretId]
	if !ok {
		return nil, errors.New("ResourceNotFoundException")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: awssdk.String(v)}, nil
}

// TestCassandraConn resolves the password from each of its stores and turns Keyspaces without
// a username into SigV4 with the AWS configuration's region and credentials.
func TestCassandraConn(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	awsCfg := func(context.Context) (awssdk.Config, error) {
		return awssdk.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AK", "SK", "")}, nil
	}
	params := fakeSSM{"/liveagg/cass": "from-ssm"}
	secrets := fakeSecrets{"plain": "from-secret", "json": `{"username":"ks-user","password":"from-json"}`, "json-nopw": `{"username":"x"}`}
	tests := []struct {
		name               string
		cs                 Cassandra
		wantUser, wantPass string
		wantSigV4          bool
		wantErr            string
	}{
		{name: "file", cs: Cassandra{Username: "u", PasswordFile: pwFile}, wantUser: "u", wantPass: "from-file"},
		{name: "environment", cs: Cassandra{Username: "u", Password: "from-env"}, wantUser: "u", wantPass: "from-env"},
		{name: "ssm", cs: Cassandra{Username: "u", PasswordSSMParameter: "/liveagg/cass"}, wantUser: "u", wantPass: "from-ssm"},
		{name: "secret string", cs: Cassandra{Username: "u", PasswordSecret: "plain"}, wantUser: "u", wantPass: "from-secret"},
		{name: "secret json with username", cs: Cassandra{PasswordSecret: "json"}, wantUser: "ks-user", wantPass: "from-json"},
		{name: "configured username wins over the secret's", cs: Cassandra{Username: "u", PasswordSecret: "json"}, wantUser: "u", wantPass: "from-json"},
		{name: "keyspaces sigv4", cs: Cassandra{Keyspaces: true}, wantSigV4: true},
		{name: "keyspaces service-specific credentials", cs: Cassandra{Keyspaces: true, Username: "svc", PasswordSecret: "plain"}, wantUser: "svc", wantPass: "from-secret"},
		{name: "missing file", cs: Cassandra{Username: "u", PasswordFile: filepath.Join(dir, "nope")}, wantErr: "sinks.cassandra.password_file"},
		{name: "missing parameter", cs: Cassandra{Username: "u", PasswordSSMParameter: "/nope"}, wantErr: "sinks.cassandra.password_ssm_parameter: SSM parameter /nope"},
		{name: "missing secret", cs: Cassandra{Username: "u", PasswordSecret: "nope"}, wantErr: "sinks.cassandra.password_secret: secret nope"},
		{name: "json secret without password", cs: Cassandra{PasswordSecret: "json-nopw"}, wantErr: `needs a "password" string`},
		{name: "plain secret and no username", cs: Cassandra{PasswordSecret: "plain"}, wantErr: "no username"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cs.Hosts = []string{"db"}
			conn, err := tc.cs.Conn(context.Background(), awsCfg, WithSSM(params), WithSecretsManager(secrets))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				for _, secret := range []string{"from-", "ks-user"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error quotes a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conn.Username != tc.wantUser || conn.Password != tc.wantPass {
				t.Errorf("username %q password %q, want %q %q", conn.Username, conn.Password, tc.wantUser, tc.wantPass)
			}
			if (conn.SigV4 != nil) != tc.wantSigV4 {
				t.Fatalf("SigV4 %+v, want %v", conn.SigV4, tc.wantSigV4)
			}
			if tc.wantSigV4 {
				cr, err := conn.SigV4.Credentials.Retrieve(context.Background())
				if conn.SigV4.Region != "eu-west-1" || err != nil || cr.AccessKeyID != "AK" {
					t.Errorf("SigV4 region %q credentials %+v %v", conn.SigV4.Region, cr, err)
				}
			}
			if tc.cs.Keyspaces && conn.Port != 9142 {
				t.Errorf("keyspaces port %d, want 9142", conn.Port)
			}
		})
	}
}

// TestAdminCertificate loads the admin API's key pair from files, SSM parameters and a Secrets
// Manager secret, and refuses a secret of the wrong shape without quoting it.
func TestAdminCertificate(t *testing.T) {
	certPEM, keyPEM := selfSigned(t)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	params := fakeSSM{"/c": string(certPEM), "/k": string(keyPEM)}
	pair := `{"cert":` + quote(certPEM) + `,"key":` + quote(keyPEM) + `}`
	secrets := fakeSecrets{"pair": pair, "bad": "-----BEGIN PRIVATE KEY----- secret"}
	noAWS := func(context.Context) (awssdk.Config, error) { return awssdk.Config{}, errors.New("no AWS here") }
	tests := []struct {
		name    string
		tls     AdminTLS
		wantErr string
	}{
		{"files", AdminTLS{CertFile: cf, KeyFile: kf}, ""},
		{"ssm", AdminTLS{CertSSMParameter: "/c", KeySSMParameter: "/k"}, ""},
		{"secret", AdminTLS{Secret: "pair"}, ""},
		{"secret of the wrong shape", AdminTLS{Secret: "bad"}, `needs a JSON object with "cert" and "key"`},
		{"key swapped for the certificate", AdminTLS{CertSSMParameter: "/k", KeySSMParameter: "/c"}, "admin.tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := tc.tls.Certificate(context.Background(), noAWS, WithSSM(params), WithSecretsManager(secrets))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Fatalf("error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			if err != nil || leaf.Subject.CommonName != "admin.test" {
				t.Fatalf("certificate %v %v", leaf, err)
			}
		})
	}
}

func quote(b []byte) string {
	return `"` + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", `\n`) + `"`
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"admin.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
