package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Lambda is a Go Lambda bootstrap running under the AWS Lambda runtime interface emulator.
type Lambda struct {
	// InvokeURL is where to POST an event; the emulator answers with the handler's result.
	InvokeURL string
}

// StartLambda runs the bootstrap binary under aws-lambda-rie on two free loopback ports, with
// the given extra environment, and stops it when the test ends. The emulator serves one
// invocation at a time, so each test that invokes lambdas concurrently starts its own.
func StartLambda(t testing.TB, bootstrap string, env ...string) *Lambda {
	t.Helper()
	rie := RIE(t)
	abs, err := filepath.Abs(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	apiPort, runtimePort := FreePort(t), FreePort(t)
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", runtimePort),
		abs)
	cmd.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start aws-lambda-rie: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("aws-lambda-rie output:\n%s", logs.String())
		}
	})
	return &Lambda{InvokeURL: fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", apiPort)}
}

// Invoke posts event to the emulator and returns the handler's response body. The first call
// retries while the emulator's port is still opening.
func (l *Lambda) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.InvokeURL, bytes.NewReader(event))
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return nil, fmt.Errorf("read invocation response: %w", err)
			}
			if resp.StatusCode != http.StatusOK {
				return body, fmt.Errorf("invoke: HTTP %d: %s", resp.StatusCode, body)
			}
			return body, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("invoke %s: %w (last error: %v)", l.InvokeURL, ctx.Err(), lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
