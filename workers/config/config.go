// Package config reads a worker's configuration: one YAML file, then environment overrides,
// validated at start so a bad value stops the worker with a message naming it rather than
// surfacing as a confusing failure later.
//
// Secrets never come from the file or flags: the admin token is read from a file or an SSM
// SecureString parameter, SASL passwords from a file or the environment, the Cassandra password
// from a file, the environment, an SSM SecureString parameter or a Secrets Manager secret, and
// the admin API's TLS key from a file, an SSM parameter or a Secrets Manager secret.
package config

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/liveagg/liveagg/workers/checkpoint"
)

// Config is a worker's configuration file.
type Config struct {
	// WorkerID names the worker in checkpoints and logs (default: hostname-pid).
	WorkerID string `yaml:"worker_id"`
	// Spec is the aggregation spec: a file path or s3://bucket/key. It is polled every
	// SpecPollInterval (default 30s); a valid change drains the worker so it restarts on it.
	Spec             string        `yaml:"spec"`
	SpecPollInterval time.Duration `yaml:"spec_poll_interval"`
	Kafka            Kafka         `yaml:"kafka"`
	Checkpoint       Checkpoint    `yaml:"checkpoint"`
	Sinks            Sinks         `yaml:"sinks"`
	AWS              AWS           `yaml:"aws"`
	Admin            Admin         `yaml:"admin"`
	Metrics          Metrics       `yaml:"metrics"`
}

// Kafka is the broker connection and consumer group.
type Kafka struct {
	Brokers []string `yaml:"brokers"`
	// Group defaults to liveagg.<spec name>.
	Group string `yaml:"group"`
	TLS   TLS    `yaml:"tls"`
	SASL  SASL   `yaml:"sasl"`
	// SessionTimeout is how long the group waits for a silent worker before moving its
	// partitions (default 10s): shorter moves a dead spot instance's partitions sooner,
	// longer rides out GC or network pauses without a rebalance.
	SessionTimeout time.Duration `yaml:"session_timeout"`
}

// Bounds of kafka.session_timeout: the brokers' default group.min.session.timeout.ms and
// group.max.session.timeout.ms, outside which a join is refused.
const (
	MinSessionTimeout = 6 * time.Second
	MaxSessionTimeout = 30 * time.Minute
)

// TLS configures encryption to the brokers.
type TLS struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// SASL configures authentication: scram-sha-256, scram-sha-512 or aws-msk-iam.
type SASL struct {
	Mechanism    string `yaml:"mechanism"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// Password, for callers that hold it already (the Terraform provider's sensitive
	// attribute); never read from YAML, so it cannot end up in a config file.
	Password string `yaml:"-"`
}

// Checkpoint configures the checkpoint store and triggers.
type Checkpoint struct {
	// Location is s3://bucket/prefix or file:///dir.
	Location string        `yaml:"location"`
	Interval time.Duration `yaml:"interval"`
	Records  int64         `yaml:"records"`
	// OnMissingOffset is stop or earliest.
	OnMissingOffset string `yaml:"on_missing_offset"`
	// Incremental makes checkpoints incremental (default true): a base now and then, and in
	// between deltas of only what changed. The next three settings are its chain rule.
	Incremental *bool `yaml:"incremental"`
	// BaseRatio starts a new base once the deltas since the last one add up to this fraction
	// of its size (default 0.5): a restore reads at most about 1+BaseRatio times the state.
	BaseRatio float64 `yaml:"base_ratio"`
	// BaseInterval starts a new base once the last one is this old (default 30m).
	BaseInterval time.Duration `yaml:"base_interval"`
	// MaxDeltas starts a new base after this many deltas (default 200).
	MaxDeltas int `yaml:"max_deltas"`
}

// IncrementalRule returns the chain rule of incremental checkpoints, and false when they are
// turned off.
func (c Checkpoint) IncrementalRule() (checkpoint.Incremental, bool) {
	if c.Incremental != nil && !*c.Incremental {
		return checkpoint.Incremental{}, false
	}
	return checkpoint.Incremental{BaseRatio: c.BaseRatio, BaseInterval: c.BaseInterval, MaxDeltas: c.MaxDeltas}, true
}

// Sinks configures the clients of the spec's outputs.
type Sinks struct {
	Cassandra       Cassandra `yaml:"cassandra"`
	DeadLetterTopic string    `yaml:"dead_letter_topic"`
	ProgressTopic   string    `yaml:"progress_topic"`
}

// Cassandra is the cluster Cassandra outputs write to.
type Cassandra struct {
	// Hosts are contact points, host or host:port (port default 9042, 9142 with Keyspaces).
	Hosts []string `yaml:"hosts"`
	// Replication is the map CREATE KEYSPACE uses when the sink creates a keyspace (default
	// SimpleStrategy with one replica; SingleRegionStrategy with Keyspaces, the only one it takes).
	Replication map[string]string `yaml:"replication"`
	Timeout     time.Duration     `yaml:"timeout"`
	Concurrency int               `yaml:"concurrency"`
	// Username logs in with password authentication; the password comes from exactly one of
	// PasswordFile, PasswordSSMParameter, PasswordSecret or the environment.
	Username string `yaml:"username"`
	// PasswordFile holds the password (trailing whitespace dropped), for local use.
	PasswordFile string `yaml:"password_file"`
	// PasswordSSMParameter names an SSM SecureString parameter holding the password.
	PasswordSSMParameter string `yaml:"password_ssm_parameter"`
	// PasswordSecret names a Secrets Manager secret (name or ARN) whose string is the password,
	// or a JSON object with "password" (and "username", used when Username is empty), the
	// shape Amazon Keyspaces service-specific credentials are usually stored in.
	PasswordSecret string `yaml:"password_secret"`
	// Password, from LIVEAGG_CASSANDRA_PASSWORD or a caller that holds it already (the
	// Terraform provider's sensitive attribute); never read from YAML.
	Password string       `yaml:"-"`
	TLS      CassandraTLS `yaml:"tls"`
	// Keyspaces connects to Amazon Keyspaces: TLS on (with the contact point's name as the
	// certificate name, since peers are handed out as IP addresses), port 9142, replication
	// SingleRegionStrategy, and SigV4 authentication with the worker's AWS credentials and
	// aws.region unless a username (service-specific credentials) is set.
	Keyspaces bool `yaml:"keyspaces"`
}

// CassandraTLS encrypts the connections to Cassandra. The server's certificate is always
// verified (against CAFile or the system roots) unless InsecureSkipVerify says otherwise.
type CassandraTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the nodes' certificates.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for clusters that require one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name every node's certificate must carry (default: the address each
	// connection dials; with Keyspaces, the first contact point's host name).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate from any server: encrypted but not
	// authenticated. An escape hatch for a throwaway test cluster, never for production.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// AWS configures S3, SSM and CloudWatch clients.
type AWS struct {
	Region string `yaml:"region"`
	// Endpoint overrides every service's endpoint (moto, LocalStack, an S3-compatible store).
	Endpoint string `yaml:"endpoint"`
}

// Admin configures the worker's admin API.
type Admin struct {
	Listen            string `yaml:"listen"`
	TokenFile         string `yaml:"token_file"`
	TokenSSMParameter string `yaml:"token_ssm_parameter"`
	// TLS serves the API over HTTPS. Without it the API is plain HTTP, which is only fit for
	// a network nobody else can reach (the workers' security group).
	TLS AdminTLS `yaml:"tls"`
	// Advertise is the endpoint the worker tags its EC2 instance with (default
	// http://<private IP>:<port>, https:// when admin.tls is set).
	Advertise string `yaml:"advertise"`
	// OnEC2 (admin.on_ec2) says the worker runs on an EC2 instance it may act on: it publishes
	// Advertise as the liveagg:admin-endpoint tag of its own instance and watches instance
	// metadata for spot interruption notices. The name is the YAML key's, which the
	// spot-workers module and existing configs use.
	OnEC2 bool `yaml:"on_ec2"`
}

// AdminTLS is the admin API's certificate and key: from files, or both from SSM parameters
// (the key a SecureString), or from one Secrets Manager secret holding a JSON object with
// "cert" and "key" (PEM strings).
type AdminTLS struct {
	CertFile         string `yaml:"cert_file"`
	KeyFile          string `yaml:"key_file"`
	CertSSMParameter string `yaml:"cert_ssm_parameter"`
	KeySSMParameter  string `yaml:"key_ssm_parameter"`
	Secret           string `yaml:"secret"`
}

// Enabled says whether any certificate source is set.
func (t AdminTLS) Enabled() bool {
	return t.CertFile != "" || t.KeyFile != "" || t.CertSSMParameter != "" || t.KeySSMParameter != "" || t.Secret != ""
}

// Metrics configures the Prometheus endpoint and CloudWatch publishing.
type Metrics struct {
	Listen string `yaml:"listen"`
	// CloudWatchInterval publishes to CloudWatch this often (0: not at all).
	CloudWatchInterval time.Duration `yaml:"cloudwatch_interval"`
	// AutoScalingGroup is the dimension fleet metrics carry.
	AutoScalingGroup string `yaml:"auto_scaling_group"`
	// Pprof also serves Go's profiles under /debug/pprof/ on the metrics listener, for finding
	// where a worker's CPU goes; the listener is open to the VPC only (modules/spot-workers).
	Pprof bool `yaml:"pprof"`
}

// MaxCheckpointInterval keeps a partition's open Kafka transaction under the brokers' default
// transaction.max.timeout.ms (15 minutes) with room to commit.
const MaxCheckpointInterval = 7 * time.Minute

// Load reads a config file, applies environment overrides and defaults, and validates.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse is Load of bytes.
func Parse(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	c.applyEnv(os.Getenv)
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Environment overrides, for the values that differ between machines of one fleet.
const (
	EnvWorkerID   = "LIVEAGG_WORKER_ID"
	EnvBrokers    = "LIVEAGG_KAFKA_BROKERS"
	EnvCheckpoint = "LIVEAGG_CHECKPOINT_LOCATION"
	EnvCassandra  = "LIVEAGG_CASSANDRA_HOSTS"
	// EnvCassandraUser and EnvCassandraPassword are the names the Terraform provider reads
	// too; the password from the environment is for local use (a file or a secret store is
	// better on a fleet: the environment of a process is readable by its user).
	EnvCassandraUser     = "LIVEAGG_CASSANDRA_USERNAME"
	EnvCassandraPassword = "LIVEAGG_CASSANDRA_PASSWORD"
	EnvAWSEndpt          = "LIVEAGG_AWS_ENDPOINT"
	EnvAdmin             = "LIVEAGG_ADMIN_LISTEN"
	EnvMetrics           = "LIVEAGG_METRICS_LISTEN"
	EnvSpec              = "LIVEAGG_SPEC"
)

func (c *Config) applyEnv(getenv func(string) string) {
	set := func(dst *string, env string) {
		if v := getenv(env); v != "" {
			*dst = v
		}
	}
	list := func(dst *[]string, env string) {
		if v := getenv(env); v != "" {
			*dst = strings.Split(v, ",")
		}
	}
	set(&c.WorkerID, EnvWorkerID)
	set(&c.Spec, EnvSpec)
	list(&c.Kafka.Brokers, EnvBrokers)
	set(&c.Checkpoint.Location, EnvCheckpoint)
	list(&c.Sinks.Cassandra.Hosts, EnvCassandra)
	set(&c.Sinks.Cassandra.Username, EnvCassandraUser)
	set(&c.Sinks.Cassandra.Password, EnvCassandraPassword)
	set(&c.AWS.Endpoint, EnvAWSEndpt)
	set(&c.Admin.Listen, EnvAdmin)
	set(&c.Metrics.Listen, EnvMetrics)
}

func (c *Config) applyDefaults() {
	if c.WorkerID == "" {
		h, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if c.SpecPollInterval == 0 {
		c.SpecPollInterval = 30 * time.Second
	}
	if c.Checkpoint.Interval == 0 {
		c.Checkpoint.Interval = 30 * time.Second
	}
	if c.Checkpoint.Records == 0 {
		c.Checkpoint.Records = 2_000_000
	}
	if c.Checkpoint.OnMissingOffset == "" {
		c.Checkpoint.OnMissingOffset = "stop"
	}
	if c.Checkpoint.BaseRatio == 0 {
		c.Checkpoint.BaseRatio = checkpoint.DefaultIncremental.BaseRatio
	}
	if c.Checkpoint.BaseInterval == 0 {
		c.Checkpoint.BaseInterval = checkpoint.DefaultIncremental.BaseInterval
	}
	if c.Checkpoint.MaxDeltas == 0 {
		c.Checkpoint.MaxDeltas = checkpoint.DefaultIncremental.MaxDeltas
	}
	if c.Kafka.SessionTimeout == 0 {
		c.Kafka.SessionTimeout = 10 * time.Second
	}
	if c.Sinks.Cassandra.Timeout == 0 {
		c.Sinks.Cassandra.Timeout = 10 * time.Second
	}
	if c.AWS.Region == "" {
		c.AWS.Region = "us-east-1"
	}
	if cs := &c.Sinks.Cassandra; cs.Keyspaces {
		cs.TLS.Enabled = true
		if len(cs.Replication) == 0 {
			cs.Replication = map[string]string{"class": "SingleRegionStrategy"}
		}
		if cs.TLS.ServerName == "" && !cs.TLS.InsecureSkipVerify && len(cs.Hosts) > 0 {
			cs.TLS.ServerName = hostOnly(cs.Hosts[0])
		}
	}
}

// hostOnly drops a port from host:port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// Validate names the first problem of each field.
func (c *Config) Validate() error {
	var errs []string
	add := func(f string, args ...any) { errs = append(errs, fmt.Sprintf(f, args...)) }
	if c.Spec == "" {
		add("spec: required: a spec file or s3://bucket/key (or %s)", EnvSpec)
	}
	if len(c.Kafka.Brokers) == 0 {
		add("kafka.brokers: required: at least one host:port (or %s)", EnvBrokers)
	}
	switch c.Kafka.SASL.Mechanism {
	case "", "scram-sha-256", "scram-sha-512":
		if c.Kafka.SASL.Mechanism != "" && (c.Kafka.SASL.Username == "" || c.Kafka.SASL.PasswordFile == "") {
			add("kafka.sasl: %s needs username and password_file", c.Kafka.SASL.Mechanism)
		}
	case "aws-msk-iam":
	default:
		add("kafka.sasl.mechanism: %q is not one of scram-sha-256, scram-sha-512, aws-msk-iam", c.Kafka.SASL.Mechanism)
	}
	if c.Kafka.SessionTimeout < MinSessionTimeout || c.Kafka.SessionTimeout > MaxSessionTimeout {
		add("kafka.session_timeout: %s is out of range: %s to %s (the brokers' default group.min/max.session.timeout.ms)", c.Kafka.SessionTimeout, MinSessionTimeout, MaxSessionTimeout)
	}
	if c.Kafka.TLS.CertFile != "" && c.Kafka.TLS.KeyFile == "" {
		add("kafka.tls.key_file: required with cert_file")
	}
	if c.Checkpoint.Location == "" {
		add("checkpoint.location: required: s3://bucket/prefix or file:///dir (or %s)", EnvCheckpoint)
	} else if !strings.HasPrefix(c.Checkpoint.Location, "s3://") && !strings.HasPrefix(c.Checkpoint.Location, "file://") {
		add("checkpoint.location: %q is not s3://bucket/prefix or file:///dir", c.Checkpoint.Location)
	}
	if c.Checkpoint.Interval < time.Second || c.Checkpoint.Interval > MaxCheckpointInterval {
		add("checkpoint.interval: %s is out of range: 1s to %s (the Kafka transaction that carries a partition's output stays open between checkpoints, and brokers cap transactions at 15m by default)", c.Checkpoint.Interval, MaxCheckpointInterval)
	}
	if r := c.Checkpoint.BaseRatio; r < 0.01 || r > 10 {
		add("checkpoint.base_ratio: %v is out of range: 0.01 to 10 (the deltas a restore reads on top of the base, as a fraction of it)", r)
	}
	if c.Checkpoint.BaseInterval < time.Second {
		add("checkpoint.base_interval: %s is under 1s", c.Checkpoint.BaseInterval)
	}
	if c.Checkpoint.MaxDeltas < 1 || c.Checkpoint.MaxDeltas > 10000 {
		add("checkpoint.max_deltas: %d is out of range: 1 to 10000", c.Checkpoint.MaxDeltas)
	}
	if c.Checkpoint.OnMissingOffset != "stop" && c.Checkpoint.OnMissingOffset != "earliest" {
		add("checkpoint.on_missing_offset: %q is not stop or earliest", c.Checkpoint.OnMissingOffset)
	}
	c.Sinks.Cassandra.validate(add)
	c.Admin.TLS.validate(add)
	if c.Admin.Listen != "" && c.Admin.TokenFile == "" && c.Admin.TokenSSMParameter == "" {
		add("admin: token_file or token_ssm_parameter is required when admin.listen is set (the API refuses every request without a token)")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid config:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

func (cs Cassandra) validate(add func(string, ...any)) {
	var sources []string
	for _, s := range []struct{ key, v string }{
		{"password_file", cs.PasswordFile}, {"password_ssm_parameter", cs.PasswordSSMParameter}, {"password_secret", cs.PasswordSecret},
	} {
		if s.v != "" {
			sources = append(sources, s.key)
		}
	}
	switch {
	case len(sources) > 1:
		add("sinks.cassandra: %s are set: the password comes from one of them", strings.Join(sources, " and "))
	case len(sources) == 1 && cs.Password != "":
		add("sinks.cassandra: %s and %s are both set: the password comes from one of them", sources[0], EnvCassandraPassword)
	}
	hasPassword := len(sources) > 0 || cs.Password != ""
	if cs.Username != "" && !hasPassword {
		add("sinks.cassandra.username: needs a password: password_file, password_ssm_parameter, password_secret or %s", EnvCassandraPassword)
	}
	// A secret may carry the username; a file or parameter carries only a password.
	if cs.Username == "" && hasPassword && cs.PasswordSecret == "" {
		add("sinks.cassandra: a password is set but username is not (or %s)", EnvCassandraUser)
	}
	t := cs.TLS
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		add("sinks.cassandra.tls: settings without enabled: true (they would be ignored)")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("sinks.cassandra.tls: cert_file and key_file go together")
	}
	if t.InsecureSkipVerify && (t.CAFile != "" || t.ServerName != "") {
		add("sinks.cassandra.tls.insecure_skip_verify: set with ca_file or server_name, which it would ignore")
	}
}

func (t AdminTLS) validate(add func(string, ...any)) {
	files := t.CertFile != "" || t.KeyFile != ""
	ssm := t.CertSSMParameter != "" || t.KeySSMParameter != ""
	switch {
	case files && ssm, files && t.Secret != "", ssm && t.Secret != "":
		add("admin.tls: the certificate comes from one place: cert_file/key_file, cert_ssm_parameter/key_ssm_parameter or secret")
	case (t.CertFile == "") != (t.KeyFile == ""):
		add("admin.tls: cert_file and key_file go together")
	case (t.CertSSMParameter == "") != (t.KeySSMParameter == ""):
		add("admin.tls: cert_ssm_parameter and key_ssm_parameter go together")
	}
}
