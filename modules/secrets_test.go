package modules_test

// Authenticated, encrypted connections through the modules: every combination of the
// Cassandra login, Cassandra TLS, Amazon Keyspaces, admin TLS and a KMS key that
// modules/spot-workers accepts renders a worker config the worker's own loader accepts and
// connects with as configured, and its role may read exactly the parameters and secrets the
// worker's code then reads, and touch Keyspaces exactly when the worker signs in with SigV4.
// What the modules refuse, they refuse at plan time with a message naming the setting.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/liveagg/liveagg/lambdas/spotinterrupt"
	"github.com/liveagg/liveagg/workers/config"
)

const (
	testCassandraParam = "/liveagg/indoor/cassandra-password"
	testCassandraSec   = "arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:liveagg/indoor/cassandra-AbC123"
	testAdminCertParam = "/liveagg/indoor/admin-cert"
	testAdminKeyParam  = "/liveagg/indoor/admin-key"
	testAdminSecret    = "arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:liveagg/indoor/admin-tls-XyZ789"
	testKMSKey         = "arn:aws:kms:" + testRegion + ":" + testAccount + ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testCALocation     = "s3://indoor-pki/cassandra/ca.pem"
	caFile             = "/etc/liveagg/cassandra-ca.pem"
)

// testCA is a PEM CA certificate, and testPair a certificate and key signed by nobody in
// particular: what the admin TLS sources hold.
var testCA, testPair = func() (string, map[string]string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin.indoor.liveagg.internal"},
		DNSNames: []string{"admin.indoor.liveagg.internal"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return cert, map[string]string{"cert": cert, "key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))}
}()

// secretStore is an SSM and Secrets Manager client that answers from a map and remembers
// every name it was asked for.
type secretStore struct {
	mu     sync.Mutex
	values map[string]string
	params []string
	secret []string
}

func (s *secretStore) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := aws.ToString(in.Name)
	s.params = append(s.params, name)
	v, ok := s.values[name]
	if !ok {
		return nil, fmt.Errorf("no parameter %s", name)
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Value: aws.String(v)}}, nil
}

func (s *secretStore) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := aws.ToString(in.SecretId)
	s.secret = append(s.secret, id)
	v, ok := s.values[id]
	if !ok {
		return nil, fmt.Errorf("no secret %s", id)
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

func newSecretStore() *secretStore {
	pair, _ := json.Marshal(testPair)
	return &secretStore{values: map[string]string{
		testToken: "token", testCassandraParam: "param-password", testCassandraSec: `{"username": "from-secret", "password": "secret-password"}`,
		testAdminCertParam: testPair["cert"], testAdminKeyParam: testPair["key"], testAdminSecret: string(pair),
	}}
}

// planWorkers plans modules/spot-workers as a root with a known region and account, the
// given values over a working base.
func planWorkers(t *testing.T, given map[string]cty.Value) (*planRun, *modInstance) {
	t.Helper()
	cfg := loadConfig(t, "spot-workers")
	str := cty.StringVal
	run := &planRun{root: cfg, args: map[string]map[string][]cty.Value{}, known: map[string]cty.Value{
		"data.aws_region.current":          cty.ObjectVal(map[string]cty.Value{"region": str(testRegion)}),
		"data.aws_caller_identity.current": cty.ObjectVal(map[string]cty.Value{"account_id": str(testAccount)}),
	}}
	vars := map[string]cty.Value{
		"name": str("indoor-org"), "stack": str(testStack), "vpc_id": str("vpc-1"), "subnet_ids": strs("subnet-a"), "vpc_cidr": str("10.0.0.0/16"),
		"lambda_security_group_id": str("sg-1"), "ami_id": str("ami-1"), "max_size": cty.NumberIntVal(4), "memory_limit_mib": cty.NumberIntVal(3000),
		"binary_location": str("s3://" + testBinary), "spec_name": str("indoor-l3-org"),
		"spec_location": str("s3://" + testBucket + "/specs/indoor-l3-org.yaml"), "spec_registry": str("s3://" + testBucket + "/specs"),
		"checkpoint_location": str("s3://" + testBucket + "/checkpoints"), "kafka_brokers": strs("b-1:9098"),
		"msk_cluster_arn": str("arn:aws:kafka:" + testRegion + ":" + testAccount + ":cluster/indoor/abc"),
		"cassandra_hosts": strs("c1.internal:9042"), "admin_token_parameter": str(testToken),
		"cassandra_tables": cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{"keyspace": str("indoor"), "table": str("rollup_org")})}),
	}
	for k, v := range given {
		vars[k] = v
	}
	m := newInstance(run, cfg, "", run.inputs(cfg, vars, hcl.Range{Filename: "spot-workers"}))
	m.check()
	return run, m
}

// userData decodes a launch template's user data.
func userData(t *testing.T, v cty.Value) string {
	t.Helper()
	v, _ = v.UnmarkDeep()
	if !v.IsWhollyKnown() {
		t.Fatal("user data is not known at plan time")
	}
	b, err := base64.StdEncoding.DecodeString(v.AsString())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// workerConfigIn is the worker configuration a user data script writes.
func workerConfigIn(t *testing.T, ud string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<<'CONFIG'\n(.*)\nCONFIG\n`).FindStringSubmatch(ud)
	if m == nil {
		t.Fatalf("no worker config in the user data:\n%s", ud)
	}
	return m[1]
}

// clearConfigEnv keeps LIVEAGG_* variables of the test's environment out of the loader.
func clearConfigEnv(t *testing.T) {
	for _, env := range []string{config.EnvWorkerID, config.EnvSpec, config.EnvBrokers, config.EnvCheckpoint, config.EnvCassandra,
		config.EnvCassandraUser, config.EnvCassandraPassword, config.EnvAWSEndpt, config.EnvAdmin, config.EnvMetrics} {
		t.Setenv(env, "")
	}
}

func optStr(s string) cty.Value {
	if s == "" {
		return cty.NullVal(cty.String)
	}
	return cty.StringVal(s)
}

func resources(p policy, sid string) []string {
	s, ok := find(p, sid)
	if !ok {
		return nil
	}
	return slices.Sorted(slices.Values(s.Resource))
}

func parameterARN(name string) string {
	return "arn:aws:ssm:" + testRegion + ":" + testAccount + ":parameter/" + strings.TrimPrefix(name, "/")
}

// TestWorkerSecretsEveryCombination: for every combination the module accepts, the rendered
// config loads, the worker connects to Cassandra and serves its admin API as configured, and
// the role's grants are exactly what that worker reads: the parameters and secrets its code
// asked the stores for (a secret that is not configured gets no grant), kms:Decrypt through
// those services only when a key is given, the CA object when it is fetched, and Keyspaces
// when and only when the worker signs in with SigV4.
func TestWorkerSecretsEveryCombination(t *testing.T) {
	clearConfigEnv(t)
	login := func(user, param, secret string) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"username": optStr(user), "password_ssm_parameter": optStr(param), "password_secret_arn": optStr(secret)})
	}
	tlsObj := func(enabled bool, pemText, location, name string) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"enabled": cty.BoolVal(enabled), "ca_pem": optStr(pemText), "ca_location": optStr(location), "server_name": optStr(name)})
	}
	admin := func(cert, key, secret string) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"cert_ssm_parameter": optStr(cert), "key_ssm_parameter": optStr(key), "secret_arn": optStr(secret)})
	}
	logins := map[string]cty.Value{"none": cty.NullVal(cty.DynamicPseudoType), "ssm": login("liveagg", testCassandraParam, ""),
		"secret": login("", "", testCassandraSec), "secret+user": login("liveagg", "", testCassandraSec)}
	tlss := map[string]cty.Value{"none": cty.NullVal(cty.DynamicPseudoType), "off": tlsObj(false, "", "", ""), "system roots": tlsObj(true, "", "", ""),
		"pem+name": tlsObj(true, testCA, "", "cassandra.indoor.internal"), "s3": tlsObj(true, "", testCALocation, "")}
	admins := map[string]cty.Value{"http": cty.NullVal(cty.DynamicPseudoType), "ssm": admin(testAdminCertParam, testAdminKeyParam, ""), "secret": admin("", "", testAdminSecret)}
	awsCfg := func(context.Context) (aws.Config, error) {
		return aws.Config{Region: testRegion, Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
		})}, nil
	}
	n := 0
	for _, ln := range slices.Sorted(mapKeys(logins)) {
		for _, tn := range slices.Sorted(mapKeys(tlss)) {
			for _, keyspaces := range []bool{false, true} {
				for _, an := range slices.Sorted(mapKeys(admins)) {
					n++
					kms := n%2 == 0
					name := fmt.Sprintf("login %s, tls %s, keyspaces %v, admin %s, kms %v", ln, tn, keyspaces, an, kms)
					t.Run(name, func(t *testing.T) {
						given := map[string]cty.Value{"cassandra_login": logins[ln], "cassandra_tls": tlss[tn], "admin_tls": admins[an],
							"cassandra_keyspaces": cty.BoolVal(keyspaces)}
						if keyspaces {
							given["cassandra_hosts"] = cty.ListValEmpty(cty.String)
						}
						if kms {
							given["secrets_kms_key_arn"] = cty.StringVal(testKMSKey)
						}
						run, _ := planWorkers(t, given)
						for _, p := range run.problems {
							t.Fatal(p)
						}
						ud := userData(t, run.args["aws_launch_template.this"]["user_data"][0])
						c, err := config.Parse([]byte(workerConfigIn(t, ud)))
						if err != nil {
							t.Fatalf("the worker refuses the rendered config: %v\n%s", err, workerConfigIn(t, ud))
						}
						store := newSecretStore()
						ctx := context.Background()
						conn, err := c.Sinks.Cassandra.Conn(ctx, awsCfg, config.WithSSM(store), config.WithSecretsManager(store))
						if err != nil {
							t.Fatalf("connection settings: %v", err)
						}
						if c.Admin.TLS.Enabled() != (an != "http") {
							t.Errorf("admin TLS enabled %v", c.Admin.TLS.Enabled())
						}
						if c.Admin.TLS.Enabled() {
							if _, err := c.Admin.TLS.Certificate(ctx, awsCfg, config.WithSSM(store), config.WithSecretsManager(store)); err != nil {
								t.Errorf("admin certificate: %v", err)
							}
						}
						// The spot function's own token read, which the worker does at start too.
						store.params = append(store.params, c.Admin.TokenSSMParameter)

						// The connection is the one configured.
						switch ln {
						case "none":
							if conn.Username != "" || conn.Password != "" {
								t.Errorf("a login without one configured: %q", conn.Username)
							}
						case "ssm", "secret+user":
							if conn.Username != "liveagg" || conn.Password == "" {
								t.Errorf("login %q with password %v", conn.Username, conn.Password != "")
							}
						case "secret":
							if conn.Username != "from-secret" || conn.Password != "secret-password" {
								t.Errorf("login %q: want the secret's username and password", conn.Username)
							}
						}
						wantTLS := keyspaces || tn == "system roots" || tn == "pem+name" || tn == "s3"
						if (conn.TLS != nil) != wantTLS {
							t.Fatalf("TLS %v, want %v", conn.TLS != nil, wantTLS)
						}
						if conn.TLS != nil {
							wantCA := ""
							if tn == "pem+name" || tn == "s3" {
								wantCA = caFile
							}
							if conn.TLS.CAFile != wantCA || conn.TLS.InsecureSkipVerify {
								t.Errorf("CA file %q (insecure %v), want %q", conn.TLS.CAFile, conn.TLS.InsecureSkipVerify, wantCA)
							}
							wantName := map[bool]string{true: "cassandra." + testRegion + ".amazonaws.com"}[keyspaces]
							if tn == "pem+name" {
								wantName = "cassandra.indoor.internal"
							}
							if conn.TLS.ServerName != wantName {
								t.Errorf("server name %q, want %q", conn.TLS.ServerName, wantName)
							}
						}
						if keyspaces && (conn.Port != 9142 || !slices.Equal(conn.Hosts, []string{"cassandra." + testRegion + ".amazonaws.com"})) {
							t.Errorf("Keyspaces at %v port %d", conn.Hosts, conn.Port)
						}
						// The user data puts the CA where the config says, before the worker starts.
						start := strings.Index(ud, "systemctl enable")
						switch tn {
						case "pem+name":
							if i := strings.Index(ud, "cat > "+caFile+" <<'LIVEAGG_CA_PEM'\n"+testCA); i < 0 || i > start {
								t.Errorf("the user data does not write the CA bundle before starting the worker:\n%s", ud)
							}
						case "s3":
							if i := strings.Index(ud, `aws s3 cp "`+testCALocation+`" `+caFile); i < 0 || i > start {
								t.Errorf("the user data does not fetch the CA bundle before starting the worker:\n%s", ud)
							}
						default:
							if strings.Contains(ud, caFile) {
								t.Errorf("a CA file without a CA configured:\n%s", ud)
							}
						}

						// The grants are exactly what the code read.
						ps := policies(t, run, "aws_iam_role_policy.this")
						p := ps[0]
						var wantParams []string
						for _, name := range store.params {
							wantParams = append(wantParams, parameterARN(name))
						}
						sort.Strings(wantParams)
						wantParams = slices.Compact(wantParams)
						if got := resources(p, "CodeParameters"); !slices.Equal(got, wantParams) {
							t.Errorf("ssm:GetParameter on %v; the worker reads %v", got, wantParams)
						}
						wantSecrets := slices.Compact(slices.Sorted(slices.Values(store.secret)))
						if got := resources(p, "CodeSecrets"); !slices.Equal(got, wantSecrets) {
							t.Errorf("secretsmanager:GetSecretValue on %v; the worker reads %v", got, wantSecrets)
						}
						if s, ok := find(p, "SecretsKMS"); ok != kms {
							t.Errorf("kms:Decrypt granted %v with a key configured %v", ok, kms)
						} else if ok {
							via := []string{"ssm." + testRegion + ".amazonaws.com"}
							if len(wantSecrets) > 0 {
								via = append(via, "secretsmanager."+testRegion+".amazonaws.com")
							}
							if !slices.Equal(s.Resource, []string{testKMSKey}) || !slices.Equal(s.Condition["StringEquals"]["kms:ViaService"], via) {
								t.Errorf("kms:Decrypt on %v via %v, want %s via %v", s.Resource, s.Condition["StringEquals"]["kms:ViaService"], testKMSKey, via)
							}
						}
						if got, want := resources(p, "CassandraCA"), map[bool][]string{true: {"arn:aws:s3:::indoor-pki/cassandra/ca.pem"}}[tn == "s3"]; !slices.Equal(got, want) {
							t.Errorf("CA object grant %v, want %v", got, want)
						}
						ks := "arn:aws:cassandra:" + testRegion + ":" + testAccount + ":/keyspace/"
						var wantSystem, wantCreate, wantTables []string
						if conn.SigV4 != nil {
							wantSystem = []string{ks + "system*"}
							wantCreate = []string{ks + "indoor/", ks + "indoor/table/rollup_org"}
							wantTables = []string{ks + "indoor/table/rollup_org"}
						}
						if !slices.Equal(resources(p, "KeyspacesSystem"), wantSystem) || !slices.Equal(resources(p, "KeyspacesCreate"), wantCreate) ||
							!slices.Equal(resources(p, "KeyspacesTables"), wantTables) {
							t.Errorf("SigV4 %v: Keyspaces grants %v %v %v", conn.SigV4 != nil, resources(p, "KeyspacesSystem"), resources(p, "KeyspacesCreate"), resources(p, "KeyspacesTables"))
						}
						sc := scope{role: "worker", writes: []string{testBucket + "/checkpoints/indoor-l3-org/"}, reads: []string{testBucket + "/specs/", testBinary, "indoor-pki/cassandra/ca.pem"},
							registry: testBucket + "/specs/", ownInstance: true, tagKeys: []string{"liveagg:admin-endpoint", "liveagg:drained"},
							parameters: append(wantParams, wantSecrets...), keys: []string{testKMSKey}, tables: append(wantCreate, wantTables...)}
						for _, pr := range scopeProblems(p, sc) {
							t.Error(pr)
						}
					})
				}
			}
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestWorkerSecretsRefused: what the worker would refuse, or what would put a secret where it
// does not belong, fails the plan with a message naming the setting.
func TestWorkerSecretsRefused(t *testing.T) {
	obj := func(attrs map[string]string) cty.Value {
		m := map[string]cty.Value{}
		for k, v := range attrs {
			m[k] = cty.StringVal(v)
		}
		return cty.ObjectVal(m)
	}
	tls := func(enabled bool, attrs map[string]string) cty.Value {
		m := map[string]cty.Value{"enabled": cty.BoolVal(enabled)}
		for k, v := range attrs {
			m[k] = cty.StringVal(v)
		}
		return cty.ObjectVal(m)
	}
	for _, tc := range []struct {
		name, variable string
		value          cty.Value
		want           string
	}{
		{"two password sources", "cassandra_login", obj(map[string]string{"username": "u", "password_ssm_parameter": testCassandraParam, "password_secret_arn": testCassandraSec}), "exactly one of"},
		{"no password source", "cassandra_login", obj(map[string]string{"username": "u"}), "exactly one of"},
		{"a parameter without a username", "cassandra_login", obj(map[string]string{"password_ssm_parameter": testCassandraParam}), "username is required"},
		{"a parameter ARN", "cassandra_login", obj(map[string]string{"username": "u", "password_ssm_parameter": parameterARN(testCassandraParam)}), "SSM parameter name"},
		{"a wildcard parameter", "cassandra_login", obj(map[string]string{"username": "u", "password_ssm_parameter": "/liveagg/*"}), "SSM parameter name"},
		{"a secret by name", "cassandra_login", obj(map[string]string{"password_secret_arn": "liveagg/indoor/cassandra"}), "full ARN"},
		{"a partial secret ARN", "cassandra_login", obj(map[string]string{"password_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:liveagg/*"}), "full ARN"},
		{"TLS settings while off", "cassandra_tls", tls(false, map[string]string{"server_name": "c"}), "without enabled = true"},
		{"two CAs", "cassandra_tls", tls(true, map[string]string{"ca_pem": testCA, "ca_location": testCALocation}), "both ca_pem and ca_location"},
		{"a CA file name", "cassandra_tls", tls(true, map[string]string{"ca_pem": "ca.pem"}), "PEM bundle"},
		{"a CA over HTTPS", "cassandra_tls", tls(true, map[string]string{"ca_location": "https://example.com/ca.pem"}), "s3://bucket/key"},
		{"a certificate without its key", "admin_tls", obj(map[string]string{"cert_ssm_parameter": testAdminCertParam}), "either cert_ssm_parameter and key_ssm_parameter, or secret_arn"},
		{"two certificate sources", "admin_tls", obj(map[string]string{"cert_ssm_parameter": testAdminCertParam, "key_ssm_parameter": testAdminKeyParam, "secret_arn": testAdminSecret}), "either cert_ssm_parameter"},
		{"no certificate source", "admin_tls", cty.EmptyObjectVal, "either cert_ssm_parameter"},
		{"a key parameter ARN", "admin_tls", obj(map[string]string{"cert_ssm_parameter": testAdminCertParam, "key_ssm_parameter": parameterARN(testAdminKeyParam)}), "SSM parameter names"},
		{"a KMS alias", "secrets_kms_key_arn", cty.StringVal("alias/liveagg"), "KMS key ARN"},
		{"a wildcard table", "cassandra_tables", cty.ListVal([]cty.Value{obj(map[string]string{"keyspace": "indoor", "table": "*"})}), "letters, digits and underscores"},
		{"replication without a class", "cassandra_replication", cty.MapVal(map[string]cty.Value{"replication_factor": cty.StringVal("3")}), "needs a class"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, _ := planWorkers(t, map[string]cty.Value{tc.variable: tc.value})
			if !slices.ContainsFunc(run.problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("%s = %s plans with %q, want a problem with %q", tc.variable, tc.value.GoString(), run.problems, tc.want)
			}
		})
	}
}

// stackWorker is one fleet of a planned stack: its role's policy, and the config its
// instances load.
type stackWorker struct {
	policy policy
	config *config.Config
}

// secretVars are the spot-workers variables this file is about.
var secretVars = []string{"cassandra_hosts", "cassandra_keyspaces", "cassandra_tables", "cassandra_login", "cassandra_tls",
	"cassandra_replication", "admin_tls", "secrets_kms_key_arn", "admin_token_parameter"}

// stackWorkers reads each fleet's policy from a planned aggregation-stack, by Auto Scaling
// group, and the worker config its instances would load: the user data depends on the spec's
// location, known only after apply, so the config is rendered by planning spot-workers with
// the values the stack gave the fleet.
func stackWorkers(t *testing.T, run *planRun) map[string]stackWorker {
	t.Helper()
	ps := policies(t, run, "module.workers.aws_iam_role_policy.this")
	given := run.args["module.workers"]
	if len(ps) != len(given["var.name"]) {
		t.Fatalf("%d worker policies, %d fleets", len(ps), len(given["var.name"]))
	}
	out := map[string]stackWorker{}
	for i, name := range given["var.name"] {
		spec := given["var.spec_name"][i].AsString()
		if cp, _ := find(ps[i], "CodeOwnCheckpoints"); !strings.Contains(cp.Resource[0], "/checkpoints/"+spec+"/") {
			t.Fatalf("policy %d is not the policy of the fleet running %s", i, spec)
		}
		vars := map[string]cty.Value{"name": name}
		for _, v := range secretVars {
			val, _ := given["var."+v][i].UnmarkDeep()
			if !val.IsWhollyKnown() {
				t.Fatalf("%s: %s is not known at plan time", name.AsString(), v)
			}
			vars[v] = val
		}
		wrun, _ := planWorkers(t, vars)
		for _, p := range wrun.problems {
			t.Fatal(p)
		}
		c, err := config.Parse([]byte(workerConfigIn(t, userData(t, wrun.args["aws_launch_template.this"]["user_data"][0]))))
		if err != nil {
			t.Fatalf("%s: the worker config is refused: %v", name.AsString(), err)
		}
		out[name.AsString()] = stackWorker{policy: ps[i], config: c}
	}
	return out
}

// spotFunction is the stack's spot function's environment and layers, and its policy.
func spotFunction(t *testing.T, run *planRun) (map[string]string, []string, policy) {
	t.Helper()
	fn := run.args["module.control.aws_lambda_function.this"]
	for i, env := range fn["environment.variables"] {
		env, _ = env.UnmarkDeep()
		if !env.Type().HasAttribute("LIVEAGG_STACK") {
			continue
		}
		vars := map[string]string{}
		for k, v := range env.AsValueMap() {
			vars[k] = v.AsString()
		}
		var layers []string
		if l, _ := fn["layers"][i].UnmarkDeep(); l.LengthInt() > 0 {
			for _, v := range l.AsValueSlice() {
				layers = append(layers, v.AsString())
			}
		}
		for _, p := range policies(t, run, "module.control.aws_iam_role_policy.this") {
			if _, ok := find(p, "CodeGroups"); ok {
				return vars, layers, p
			}
		}
	}
	t.Fatal("no spot function")
	return nil, nil, policy{}
}

// TestStackSecretsReachEveryRole: the stack's one setting reaches every fleet and the spot
// function (a fleet's own login replacing the stack's), each fleet's role reads only its own
// configured parameters and secrets, the spot function verifies the workers' certificate with
// the CA layer and name the workers' certificate carries, and Keyspaces grants follow each
// spec's own tables. With the settings at their defaults nothing of it appears.
func TestStackSecretsReachEveryRole(t *testing.T) {
	clearConfigEnv(t)
	specs := testSpecs(t)
	str := cty.StringVal
	obj := func(m map[string]cty.Value) cty.Value { return cty.ObjectVal(m) }
	fleet := func(rate int64, login cty.Value) cty.Value {
		return obj(map[string]cty.Value{"peak_records_per_second": cty.NumberIntVal(rate), "live_series": cty.NumberIntVal(1000), "cassandra_login": login})
	}
	noLogin := cty.NullVal(cty.DynamicPseudoType)
	layer := "arn:aws:lambda:" + testRegion + ":" + testAccount + ":layer:liveagg-admin-ca:3"
	token := parameterARN(testToken)
	ks := "arn:aws:cassandra:" + testRegion + ":" + testAccount + ":/keyspace/"
	runtimeOnly := []string{"CodeSecrets", "SecretsKMS", "CassandraCA", "KeyspacesSystem", "KeyspacesCreate", "KeyspacesTables"}

	t.Run("defaults", func(t *testing.T) {
		run := planStack(t, specs)
		for _, p := range run.problems {
			t.Fatal(p)
		}
		for g, w := range stackWorkers(t, run) {
			if got := resources(w.policy, "CodeParameters"); !slices.Equal(got, []string{token}) {
				t.Errorf("%s reads parameters %v, want only the token", g, got)
			}
			for _, sid := range runtimeOnly {
				if _, ok := find(w.policy, sid); ok {
					t.Errorf("%s: statement %s with nothing configured", g, sid)
				}
			}
			if c := w.config.Sinks.Cassandra; c.Username != "" || c.TLS.Enabled || c.Keyspaces || w.config.Admin.TLS.Enabled() {
				t.Errorf("%s: secured connections with nothing configured: %+v", g, c)
			}
		}
		env, layers, p := spotFunction(t, run)
		if _, ok := env["LIVEAGG_ADMIN_CA"]; ok || len(layers) > 0 {
			t.Errorf("the spot function verifies a CA with admin TLS off: %v %v", env, layers)
		}
		if _, ok := find(p, "SecretsKMS"); ok {
			t.Error("the spot function may use a KMS key with none configured")
		}
		if r := run.args["module.pipeline.liveagg_rollup_table.this"]["replication"]; len(r) == 0 || !r[0].IsNull() {
			t.Errorf("rollup replication %v, want the provider's default", r)
		}
	})

	t.Run("login, TLS, admin TLS and a key", func(t *testing.T) {
		run := planStackWith(t, specs, map[string]cty.Value{
			"fleets": obj(map[string]cty.Value{"l1": fleet(20000, noLogin),
				"org": fleet(500, obj(map[string]cty.Value{"username": str("org"), "password_ssm_parameter": str(testCassandraParam)}))}),
			"cassandra": obj(map[string]cty.Value{
				"login": obj(map[string]cty.Value{"password_secret_arn": str(testCassandraSec)}),
				"tls":   obj(map[string]cty.Value{"enabled": cty.True, "ca_location": str(testCALocation), "server_name": str("cassandra.indoor.internal")}),
			}),
			"admin_tls": obj(map[string]cty.Value{"cert_ssm_parameter": str(testAdminCertParam), "key_ssm_parameter": str(testAdminKeyParam),
				"server_name": str("admin.indoor.liveagg.internal"), "ca_layer_arn": str(layer)}),
			"secrets_kms_key_arn": str(testKMSKey),
		})
		for _, p := range run.problems {
			t.Fatal(p)
		}
		workers := stackWorkers(t, run)
		admin := []string{parameterARN(testAdminCertParam), parameterARN(testAdminKeyParam)}
		for g, want := range map[string]struct {
			params, secrets, via []string
			user, secret, param  string
		}{
			testStack + "-l1": {params: append([]string{token}, admin...), secrets: []string{testCassandraSec},
				via: []string{"ssm." + testRegion + ".amazonaws.com", "secretsmanager." + testRegion + ".amazonaws.com"}, secret: testCassandraSec},
			// The fleet's own login replaces the stack's: the stack's secret is not granted.
			testStack + "-org": {params: append([]string{token, parameterARN(testCassandraParam)}, admin...),
				via: []string{"ssm." + testRegion + ".amazonaws.com"}, user: "org", param: testCassandraParam},
		} {
			w, ok := workers[g]
			if !ok {
				t.Fatalf("no fleet %s in %v", g, workers)
			}
			if got := resources(w.policy, "CodeParameters"); !slices.Equal(got, slices.Sorted(slices.Values(want.params))) {
				t.Errorf("%s reads parameters %v, want %v", g, got, want.params)
			}
			if got := resources(w.policy, "CodeSecrets"); !slices.Equal(got, want.secrets) {
				t.Errorf("%s reads secrets %v, want %v", g, got, want.secrets)
			}
			if k, _ := find(w.policy, "SecretsKMS"); !slices.Equal(k.Resource, []string{testKMSKey}) || !slices.Equal(k.Condition["StringEquals"]["kms:ViaService"], want.via) {
				t.Errorf("%s decrypts with %v via %v, want %s via %v", g, k.Resource, k.Condition["StringEquals"]["kms:ViaService"], testKMSKey, want.via)
			}
			c := w.config
			if c.Sinks.Cassandra.Username != want.user || c.Sinks.Cassandra.PasswordSecret != want.secret || c.Sinks.Cassandra.PasswordSSMParameter != want.param ||
				!c.Sinks.Cassandra.TLS.Enabled || c.Sinks.Cassandra.TLS.CAFile != caFile || c.Sinks.Cassandra.TLS.ServerName != "cassandra.indoor.internal" ||
				c.Admin.TLS.CertSSMParameter != testAdminCertParam || c.Admin.TLS.KeySSMParameter != testAdminKeyParam {
				t.Errorf("%s: worker config %+v %+v", g, c.Sinks.Cassandra, c.Admin.TLS)
			}
			sc := scope{role: g, writes: []string{testBucket + "/checkpoints/"}, reads: []string{testBucket + "/specs/", testBinary, "indoor-pki/cassandra/ca.pem"},
				registry: testBucket + "/specs/", ownInstance: true, tagKeys: []string{"liveagg:admin-endpoint", "liveagg:drained"},
				parameters: append(slices.Clone(want.params), want.secrets...), keys: []string{testKMSKey}}
			for _, p := range scopeProblems(w.policy, sc) {
				t.Error(p)
			}
		}
		env, layers, p := spotFunction(t, run)
		if env["LIVEAGG_ADMIN_CA"] != "/opt/liveagg/admin-ca.pem" || env["LIVEAGG_ADMIN_SERVER_NAME"] != "admin.indoor.liveagg.internal" || !slices.Equal(layers, []string{layer}) {
			t.Errorf("the spot function runs with %v and layers %v", env, layers)
		}
		if k, _ := find(p, "SecretsKMS"); !slices.Equal(k.Resource, []string{testKMSKey}) || !slices.Equal(k.Condition["StringEquals"]["kms:ViaService"], []string{"ssm." + testRegion + ".amazonaws.com"}) {
			t.Errorf("the spot function decrypts the token with %v via %v", k.Resource, k.Condition["StringEquals"]["kms:ViaService"])
		}
		for _, pr := range scopeProblems(p, scope{role: "spotinterrupt", registry: testBucket + "/specs/", stack: testStack,
			groups:  []string{"arn:aws:autoscaling:" + testRegion + ":" + testAccount + ":autoScalingGroup:*:autoScalingGroupName/" + testStack + "-l1", "arn:aws:autoscaling:" + testRegion + ":" + testAccount + ":autoScalingGroup:*:autoScalingGroupName/" + testStack + "-org"},
			tagKeys: []string{"liveagg:claim:*", "liveagg:drained"}, parameters: []string{token}, keys: []string{testKMSKey}}) {
			t.Error(pr)
		}
	})

	for _, login := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyspaces, login %v", login), func(t *testing.T) {
			cass := map[string]cty.Value{"keyspaces": cty.True}
			if login {
				cass["login"] = obj(map[string]cty.Value{"password_secret_arn": str(testCassandraSec)})
			}
			run := planStackWith(t, specs, map[string]cty.Value{"cassandra": obj(cass)})
			for _, p := range run.problems {
				t.Fatal(p)
			}
			for g, w := range stackWorkers(t, run) {
				c := w.config.Sinks.Cassandra
				if !c.Keyspaces || !slices.Equal(c.Hosts, []string{"cassandra." + testRegion + ".amazonaws.com"}) || c.Replication["class"] != "SingleRegionStrategy" {
					t.Errorf("%s: Keyspaces config %+v", g, c)
				}
				// Only the org fleet's spec writes Cassandra (indoor.rollup_org), and only
				// SigV4 needs the role to be the login.
				var wantTables, wantCreate []string
				if g == testStack+"-org" && !login {
					wantTables = []string{ks + "indoor/table/rollup_org"}
					wantCreate = []string{ks + "indoor/", ks + "indoor/table/rollup_org"}
				}
				if got := resources(w.policy, "KeyspacesTables"); !slices.Equal(got, wantTables) {
					t.Errorf("%s: cassandra:Select/Modify on %v, want %v", g, got, wantTables)
				}
				if got := resources(w.policy, "KeyspacesCreate"); !slices.Equal(got, wantCreate) {
					t.Errorf("%s: cassandra:Create on %v, want %v", g, got, wantCreate)
				}
				sc := scope{role: g, writes: []string{testBucket + "/checkpoints/"}, reads: []string{testBucket + "/specs/", testBinary},
					registry: testBucket + "/specs/", ownInstance: true, tagKeys: []string{"liveagg:admin-endpoint", "liveagg:drained"},
					parameters: []string{token, testCassandraSec}, tables: wantCreate}
				for _, p := range scopeProblems(w.policy, sc) {
					t.Error(p)
				}
			}
			for _, r := range run.args["module.pipeline.liveagg_rollup_table.this"]["replication"] {
				if r, _ := r.UnmarkDeep(); r.IsNull() || !r.Index(cty.StringVal("class")).RawEquals(cty.StringVal("SingleRegionStrategy")) {
					t.Errorf("a rollup table's replication is %s, Keyspaces takes SingleRegionStrategy only", r.GoString())
				}
			}
		})
	}

	t.Run("Keyspaces with another replication", func(t *testing.T) {
		run := planStackWith(t, specs, map[string]cty.Value{"cassandra": obj(map[string]cty.Value{"keyspaces": cty.True,
			"replication": cty.MapVal(map[string]cty.Value{"class": str("NetworkTopologyStrategy"), "eu-west-1": str("3")})})})
		if !slices.ContainsFunc(run.problems, func(p string) bool { return strings.Contains(p, "only SingleRegionStrategy") }) {
			t.Errorf("plans with %q", run.problems)
		}
	})
}

// TestSpotFunctionAdminTLS: with admin_tls the spot function runs with the CA layer and the
// environment that turns on verified HTTPS, which the function's own configuration accepts
// (the bundle's path in the layer stood in for by a file here); without it, neither; and what
// the function could not use is refused at plan time.
func TestSpotFunctionAdminTLS(t *testing.T) {
	cfg := loadConfig(t, "control-lambdas")
	layer := "arn:aws:lambda:" + testRegion + ":" + testAccount + ":layer:liveagg-admin-ca:3"
	fleets := cty.ObjectVal(map[string]cty.Value{"l1": cty.ObjectVal(map[string]cty.Value{"asg_name": cty.StringVal("s-l1"),
		"spec_name": cty.StringVal("spec"), "partitions": cty.NumberIntVal(12)})})
	plan := func(adminTLS cty.Value) (*planRun, cty.Value) {
		run := &planRun{root: cfg, args: map[string]map[string][]cty.Value{}}
		m := newInstance(run, cfg, "", run.inputs(cfg, map[string]cty.Value{"fleets": fleets, "admin_tls": adminTLS,
			"name": cty.StringVal(testStack), "stack": cty.StringVal(testStack), "admin_token_parameter": cty.StringVal(testToken)}, hcl.Range{}))
		m.check()
		fn, _ := m.local("functions").UnmarkDeep()
		return run, fn.GetAttr("spotinterrupt")
	}
	tlsVal := func(layerARN, path, name string) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"ca_layer_arn": cty.StringVal(layerARN), "ca_path": optStr(path), "server_name": cty.StringVal(name)})
	}

	run, fn := plan(cty.NullVal(cty.DynamicPseudoType))
	if len(run.problems) > 0 {
		t.Fatal(run.problems)
	}
	if fn.GetAttr("env").Type().HasAttribute("LIVEAGG_ADMIN_CA") || fn.GetAttr("layers").LengthInt() != 0 {
		t.Errorf("plain HTTP, yet the function has %s", fn.GoString())
	}

	run, fn = plan(tlsVal(layer, "", "admin.indoor.liveagg.internal"))
	if len(run.problems) > 0 {
		t.Fatal(run.problems)
	}
	env := map[string]string{}
	for k, v := range fn.GetAttr("env").AsValueMap() {
		env[k] = v.AsString()
	}
	var layers []string
	for _, l := range fn.GetAttr("layers").AsValueSlice() {
		layers = append(layers, l.AsString())
	}
	if env["LIVEAGG_ADMIN_CA"] != "/opt/liveagg/admin-ca.pem" || env["LIVEAGG_ADMIN_SERVER_NAME"] != "admin.indoor.liveagg.internal" || !slices.Equal(layers, []string{layer}) {
		t.Fatalf("admin TLS gives the function %v and layers %s", env, fn.GetAttr("layers").GoString())
	}
	ca := filepath.Join(t.TempDir(), "admin-ca.pem")
	must(t, os.WriteFile(ca, []byte(testCA), 0o600))
	_, opts, err := spotinterrupt.FromEnv(func(k string) string {
		if k == spotinterrupt.EnvAdminCA {
			return ca
		}
		return env[k]
	})
	if err != nil || len(opts) == 0 {
		t.Errorf("the spot function refuses the environment the module gives it: %v", err)
	}

	for _, tc := range []struct {
		name  string
		value cty.Value
		want  string
	}{
		{"a layer by name", tlsVal("liveagg-admin-ca", "", "admin.indoor.liveagg.internal"), "layer version ARN"},
		{"a layer without its version", tlsVal("arn:aws:lambda:eu-west-1:123456789012:layer:liveagg-admin-ca", "", "admin.indoor.liveagg.internal"), "layer version ARN"},
		{"a CA outside the layers", tlsVal(layer, "/var/task/ca.pem", "admin.indoor.liveagg.internal"), "under /opt"},
		{"no name", tlsVal(layer, "", ""), "DNS name"},
		{"a URL for a name", tlsVal(layer, "", "https://admin.indoor"), "DNS name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, _ := plan(tc.value)
			if !slices.ContainsFunc(run.problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("plans with %q, want a problem with %q", run.problems, tc.want)
			}
		})
	}
}
