// Package testenv hands integration tests the real local services that infra/local/services
// started: Kafka, Cassandra, moto (AWS APIs), OpenTofu and the Lambda runtime interface emulator.
//
// The addresses come from the environment that `infra/local/services env` prints (the Makefile's
// test-all target evaluates it). A test that asks for a service that is not configured or does
// not answer FAILS: integration tests never skip silently, because a skipped exactly-once test
// reads like a passing one. Tests that need no service do not import this package.
//
// Every address is on 127.0.0.1; nothing here talks to any other host.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Environment variables set by `infra/local/services env`.
const (
	EnvKafka     = "LIVEAGG_KAFKA_BROKERS"
	EnvKafkaSASL = "LIVEAGG_KAFKA_SASL_SSL_BROKERS"
	EnvKafkaCA   = "LIVEAGG_KAFKA_CA_FILE"
	EnvCassandra = "LIVEAGG_CASSANDRA_HOSTS"
	EnvAWS       = "LIVEAGG_AWS_ENDPOINT"
	EnvTofu      = "LIVEAGG_TOFU"
	EnvRIE       = "LIVEAGG_RIE"
)

// Region and AccountID are what moto answers with.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
)

func lookup(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s is not set: run the integration tests with `make test-all`, which starts "+
			"the services with infra/local/services and exports their addresses", env)
	}
	return v
}

func reachable(t testing.TB, what, hostport string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		t.Fatalf("%s at %s does not answer (%v): is it running? try `infra/local/services status`", what, hostport, err)
	}
	_ = c.Close()
}

// KafkaBrokers returns the seed brokers of the local Kafka, failing the test if it is down.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	brokers := strings.Split(lookup(t, EnvKafka), ",")
	reachable(t, "kafka", brokers[0])
	return brokers
}

// KafkaSASLSSL returns the local Kafka's TLS listener that requires SCRAM-SHA-512, and the CA
// file that signed its certificate. Users are created through the plaintext listener.
func KafkaSASLSSL(t testing.TB) (brokers []string, caFile string) {
	t.Helper()
	brokers = strings.Split(lookup(t, EnvKafkaSASL), ",")
	reachable(t, "kafka (SASL_SSL)", brokers[0])
	return brokers, lookup(t, EnvKafkaCA)
}

// CassandraHosts returns the local Cassandra's host:port contact points.
func CassandraHosts(t testing.TB) []string {
	t.Helper()
	hosts := strings.Split(lookup(t, EnvCassandra), ",")
	reachable(t, "cassandra", hosts[0])
	return hosts
}

// AWSEndpoint returns moto's base URL.
func AWSEndpoint(t testing.TB) string {
	t.Helper()
	ep := lookup(t, EnvAWS)
	reachable(t, "moto", strings.TrimPrefix(ep, "http://"))
	return ep
}

// AWSConfig returns an aws.Config with static credentials whose every client talks to moto.
// S3 clients still need UsePathStyle, which is a per-service option.
func AWSConfig(t testing.TB) aws.Config {
	t.Helper()
	ep := AWSEndpoint(t)
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(ep),
	}
}

// Tofu returns the path of the OpenTofu binary built by infra/local/services.
func Tofu(t testing.TB) string {
	t.Helper()
	p := lookup(t, EnvTofu)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("tofu binary: %v (run `infra/local/services up tofu`)", err)
	}
	return p
}

// RIE returns the path of the aws-lambda-rie binary.
func RIE(t testing.TB) string {
	t.Helper()
	p := lookup(t, EnvRIE)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("aws-lambda-rie binary: %v (run `infra/local/services up rie`)", err)
	}
	return p
}

// Name returns a name unique to this test run, for topics, keyspaces and buckets that tests
// share a long-lived service with. It holds only [a-z0-9_-] and starts with prefix.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s-%d-%s", prefix, time.Now().Unix()%1_000_000, hex.EncodeToString(b[:]))
}

// Context returns a context cancelled when the test ends or after d, whichever comes first.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// FreePort returns a loopback TCP port that is free now and that this test binary has not
// handed out before, for a process the test starts. It is drawn at random from 20000-31999,
// below Linux's ephemeral range (32768 up by default): a port from that range may be taken,
// between this check and the process binding it, by any outgoing connection, and every
// worker holds several to Kafka (a benchmark lost a worker to "address already in use").
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + mrand.IntN(12000)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatal("testenv: no free port in 20000-31999")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)
