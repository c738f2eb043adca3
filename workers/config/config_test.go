package config

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Setenv(EnvBrokers, "")
	c, err := Parse([]byte(`
spec: s.yaml
kafka: {brokers: [127.0.0.1:9092]}
checkpoint: {location: "file:///tmp/x", interval: 5s}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Checkpoint.Records != 2_000_000 || c.Checkpoint.OnMissingOffset != "stop" || c.WorkerID == "" || c.Kafka.SessionTimeout != 10*time.Second {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// Incremental checkpoints are on by default with the default chain rule, and off when asked.
func TestIncrementalRule(t *testing.T) {
	t.Setenv(EnvBrokers, "")
	t.Setenv(EnvCheckpoint, "")
	for _, tc := range []struct {
		checkpoint string
		on         bool
		ratio      float64
		deltas     int
	}{
		{"{location: 'file:///x'}", true, 0.5, 200},
		{"{location: 'file:///x', incremental: true, base_ratio: 0.2, max_deltas: 7, base_interval: 1m}", true, 0.2, 7},
		{"{location: 'file:///x', incremental: false}", false, 0, 0},
	} {
		c, err := Parse([]byte("spec: s\nkafka: {brokers: [a:1]}\ncheckpoint: " + tc.checkpoint))
		if err != nil {
			t.Fatal(err)
		}
		rule, on := c.Checkpoint.IncrementalRule()
		if on != tc.on || rule.BaseRatio != tc.ratio || rule.MaxDeltas != tc.deltas || (on && rule.BaseInterval < time.Minute) {
			t.Errorf("%s: %+v, %v", tc.checkpoint, rule, on)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv(EnvBrokers, "a:1,b:2")
	t.Setenv(EnvCheckpoint, "s3://bucket/p")
	c, err := Parse([]byte("spec: s.yaml\nkafka: {brokers: [x:1]}\ncheckpoint: {location: 'file:///tmp'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Kafka.Brokers, ",") != "a:1,b:2" || c.Checkpoint.Location != "s3://bucket/p" {
		t.Fatalf("overrides not applied: %+v", c)
	}
}

func TestInvalidConfigsNameTheField(t *testing.T) {
	t.Setenv(EnvBrokers, "")
	t.Setenv(EnvCheckpoint, "")
	tests := []struct{ doc, want string }{
		{"kafka: {brokers: [a:1]}\ncheckpoint: {location: 'file:///x'}", "spec: required"},
		{"spec: s\ncheckpoint: {location: 'file:///x'}", "kafka.brokers: required"},
		{"spec: s\nkafka: {brokers: [a:1]}", "checkpoint.location: required"},
		{"spec: s\nkafka: {brokers: [a:1]}\ncheckpoint: {location: 'gs://x'}", `checkpoint.location: "gs://x" is not`},
		{"spec: s\nkafka: {brokers: [a:1], sasl: {mechanism: plain}}\ncheckpoint: {location: 'file:///x'}", "kafka.sasl.mechanism"},
		{"spec: s\nkafka: {brokers: [a:1]}\ncheckpoint: {location: 'file:///x', on_missing_offset: skip}", "checkpoint.on_missing_offset"},
		{"spec: s\nkafka: {brokers: [a:1], session_timeout: 2s}\ncheckpoint: {location: 'file:///x'}", "kafka.session_timeout: 2s is out of range"},
		{"spec: s\nkafka: {brokers: [a:1]}\ncheckpoint: {location: 'file:///x'}\nadmin: {listen: ':7070'}", "token_file or token_ssm_parameter is required"},
		{"spec: s\nkafak: {}", "field kafak not found"},
		{"spec: s\nkafka: {brokers: [a:1]}\ncheckpoint: {location: 'file:///x', base_ratio: 20}", "checkpoint.base_ratio: 20 is out of range"},
		{"spec: s\nkafka: {brokers: [a:1]}\ncheckpoint: {location: 'file:///x', max_deltas: -1}", "checkpoint.max_deltas: -1 is out of range"},
		{"spec: s\nkafka: {brokers: [a:1]}\ncheckpoint: {location: 'file:///x', base_interval: 10ms}", "checkpoint.base_interval: 10ms is under 1s"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
}
