package admin_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/lambdas/spotinterrupt"
	"github.com/liveagg/liveagg/workers/admin"
)

type okWorker struct{ drains int }

func (w *okWorker) Status() map[string]int           { return map[string]int{"drains": w.drains} }
func (w *okWorker) Checkpoint(context.Context) error { return nil }
func (w *okWorker) Drain(context.Context) error      { w.drains++; return nil }

// TestServerTLSWithTheLambdasClient serves the admin API with ServerTLS and calls it the way
// the spot-interruption lambda does (spotinterrupt.AdminTLS: its CA, the name it expects):
// the right CA and name get through and still need the token; a wrong CA, a wrong name and
// plain HTTP reach nothing. The token is never in the server's log.
func TestServerTLSWithTheLambdasClient(t *testing.T) {
	dir := t.TempDir()
	good := testenv.NewTLS(t, dir, "worker", "127.0.0.1", "admin.liveagg.internal")
	other := testenv.NewTLS(t, dir, "other", "127.0.0.1", "admin.liveagg.internal")
	cert, err := tls.LoadX509KeyPair(good.Cert, good.Key)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	w := &okWorker{}
	const token = "tok-3f9a"
	srv := httptest.NewUnstartedServer(admin.Handler[map[string]int](w, token, slog.New(slog.NewTextHandler(&logs, nil))))
	srv.TLS = admin.ServerTLS(cert)
	srv.StartTLS()
	defer srv.Close()

	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	client := func(caFile, name string) *http.Client {
		tc, err := spotinterrupt.AdminTLS(read(caFile), name)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	ctx := context.Background()
	tests := []struct {
		name    string
		url     string
		hc      *http.Client
		token   string
		wantErr string // "" succeeds; "401" is ErrUnauthorized
	}{
		{"right CA, IP name", srv.URL, client(good.CA, "127.0.0.1"), token, ""},
		{"right CA, shared name", srv.URL, client(good.CA, "admin.liveagg.internal"), token, ""},
		{"right CA, no token", srv.URL, client(good.CA, "127.0.0.1"), "", "401"},
		{"right CA, wrong token", srv.URL, client(good.CA, "127.0.0.1"), "tok-3f9b", "401"},
		{"wrong CA", srv.URL, client(other.CA, "127.0.0.1"), token, "certificate signed by unknown authority"},
		{"wrong name", srv.URL, client(good.CA, "worker-7.liveagg.internal"), token, "not worker-7.liveagg.internal"},
		{"plain HTTP to the TLS port", strings.Replace(srv.URL, "https://", "http://", 1), nil, token, "400"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := w.drains
			_, err := admin.NewClient(tc.url, tc.token, tc.hc).Drain(ctx)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr == "401" && !errors.Is(err, admin.ErrUnauthorized):
				t.Fatalf("%v, want ErrUnauthorized", err)
			case tc.wantErr != "" && tc.wantErr != "401" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("%v, want an error containing %q", err, tc.wantErr)
			}
			if reached := w.drains - before; (tc.wantErr == "") != (reached == 1) {
				t.Fatalf("drains reached the worker %d times", reached)
			}
		})
	}
	if strings.Contains(logs.String(), token) {
		t.Fatalf("the token is in the log:\n%s", logs.String())
	}
}
