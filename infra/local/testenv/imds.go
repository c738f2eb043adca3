package testenv

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// IMDS is a stand-in for the EC2 instance metadata service, speaking IMDSv2 (a session token
// from PUT /latest/api/token, required on every GET). The real service exists only on an
// instance; tests point the SDK at this one (AWS_EC2_METADATA_SERVICE_ENDPOINT or the imds
// client's Endpoint option).
type IMDS struct {
	URL string
	mu  sync.Mutex
	md  map[string]string
}

// NewIMDS serves metadata paths (like "instance-id", "local-ipv4", "spot/instance-action")
// from md; a path without a value answers 404, as spot/instance-action does until a notice.
func NewIMDS(t testing.TB, md map[string]string) *IMDS {
	t.Helper()
	m := &IMDS{md: md}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "" {
			http.Error(w, "missing ttl", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
		_, _ = w.Write([]byte("imds-token"))
	})
	mux.HandleFunc("GET /latest/meta-data/{path...}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "imds-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		m.mu.Lock()
		v, ok := m.md[r.PathValue("path")]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(v))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// Set sets a metadata path's value, such as a spot interruption notice.
func (m *IMDS) Set(path, value string) {
	m.mu.Lock()
	m.md[path] = value
	m.mu.Unlock()
}
