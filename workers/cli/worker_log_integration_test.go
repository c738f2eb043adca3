//go:build integration

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// syncBuffer is a bytes.Buffer the worker's goroutines may write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The worker command's JSON log lines carry each key once: a line with "worker" twice is
// ambiguous to a log pipeline (most keep one of the two, some reject the line).
func TestWorkerLogLinesNameTheWorkerOnce(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Name(t, "logkeys")
	kc, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if _, err := kadm.NewClient(kc).CreateTopic(context.Background(), 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	specFile := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(specFile, []byte(`
name: `+topic+`
input: {topic: `+topic+`, time_field: ts, partitioned_by: [org]}
key: [org]
windows: [1m]
aggregations: [{fn: count}]
outputs: [{type: stdout}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("worker_id: w-logkeys\nspec: %s\nkafka: {brokers: [%s]}\ncheckpoint: {location: 'file://%s'}\n",
		specFile, strings.Join(brokers, ", "), filepath.Join(dir, "ckpt"))), 0o644); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr syncBuffer
	cmd := New(&stdout, &stderr)
	cmd.SetArgs([]string{"worker", "--config", cfgFile})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), `"worker started"`) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no \"worker started\" line in 30s:\n%s", stderr.String())
		}
		select {
		case err := <-done:
			t.Fatalf("worker ended early: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop within 30s of its context ending")
	}

	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, line := range lines {
		keys, err := topLevelKeys(line)
		if err != nil {
			t.Errorf("not a JSON log line: %q: %v", line, err)
			continue
		}
		if n := keys["worker"]; n > 1 {
			t.Errorf("\"worker\" %d times: %s", n, line)
		}
		if strings.Contains(line, `"msg":"worker started"`) && keys["worker"] != 1 {
			t.Errorf("the worker's own line does not name it: %s", line)
		}
	}
}

// topLevelKeys counts each key of a JSON object, which decoding into a map would hide.
func topLevelKeys(line string) (map[string]int, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object: %v", err)
	}
	keys := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys[tok.(string)]++
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
