package spotinterrupt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/spot"
)

// adminWorker is a worker behind the real admin API server; it records what reached it.
type adminWorker struct {
	mu     sync.Mutex
	drains int
}

func (w *adminWorker) Status() map[string]int           { return nil }
func (w *adminWorker) Checkpoint(context.Context) error { return nil }
func (w *adminWorker) Drain(context.Context) error {
	w.mu.Lock()
	w.drains++
	w.mu.Unlock()
	return nil
}

// trap is a listener that must receive nothing: it records every request and its token.
type trap struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
}

func newTrap(t *testing.T) *trap {
	tr := &trap{}
	tr.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.hits = append(tr.hits, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
		tr.mu.Unlock()
	}))
	t.Cleanup(tr.Close)
	return tr
}

func (tr *trap) received() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.hits...)
}

// hostRecorder wraps the admin API and records the Host each request named.
func hostRecorder(h http.Handler, hosts *[]string, mu *sync.Mutex) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*hosts = append(*hosts, r.Host)
		mu.Unlock()
		h.ServeHTTP(rw, r)
	})
}

// TestTokenGoesOnlyToTheAddressEC2Reports: the instance's admin endpoint tag names a listener
// the test controls; the handler, with its real admin client, drains the worker at the private
// IP EC2 reports (moved onto loopback by the dial override, the request still naming that IP)
// and the listener receives nothing.
func TestTokenGoesOnlyToTheAddressEC2Reports(t *testing.T) {
	tr := newTrap(t)
	w := &adminWorker{}
	var hosts []string
	var mu sync.Mutex
	srv := httptest.NewServer(hostRecorder(admin.Handler[map[string]int](w, testToken, quiet()), &hosts, &mu))
	defer srv.Close()
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup, spot.AdminEndpointTag: tr.URL})
	h := New(f, f, f, f, testConfig, quiet(), WithClaimSettle(0),
		WithAdminDialOverride(map[string]string{testIP + ":7070": srv.Listener.Addr().String()}))
	out, err := h.Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil))
	if err != nil || out.Action != ActionDrained {
		t.Fatalf("outcome %+v %v", out, err)
	}
	if got := tr.received(); len(got) != 0 {
		t.Fatalf("the tagged endpoint received %v", got)
	}
	if w.drains != 1 || strings.Join(hosts, ",") != testIP+":7070,"+testIP+":7070" {
		t.Fatalf("worker drains %d, requests for hosts %v", w.drains, hosts)
	}
}

// A worker (or whatever answers at its address) that redirects does not get the token sent on.
func TestRedirectIsNotFollowed(t *testing.T) {
	tr := newTrap(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, tr.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
	h := New(f, f, f, f, testConfig, quiet(), WithClaimSettle(0),
		WithAdminDialOverride(map[string]string{testIP + ":7070": redirector.Listener.Addr().String()}))
	out, err := h.Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil))
	if err != nil || out.Action != ActionFailed || !strings.Contains(out.Reason, "not followed") {
		t.Fatalf("outcome %+v %v", out, err)
	}
	if got := tr.received(); len(got) != 0 {
		t.Fatalf("the redirect target received %v", got)
	}
}

// The dial override connects only to its own entries: no address outside it is dialled.
func TestDialOverrideDialsNothingElse(t *testing.T) {
	f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
	h := New(f, f, f, f, testConfig, quiet(), WithClaimSettle(0), WithAdminDialOverride(map[string]string{"10.9.9.9:7070": "127.0.0.1:1"}))
	out, _ := h.Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil))
	if out.Action != ActionFailed || !strings.Contains(out.Reason, "no entry for it") {
		t.Fatalf("outcome %+v", out)
	}
}

// pki is a CA and a worker certificate for testIP and a DNS name.
func pki(t *testing.T) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "liveagg test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "worker"},
		IPAddresses: []net.IP{net.ParseIP(testIP)}, DNSNames: []string{"admin.liveagg.internal"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestAdminOverTLS: with a CA bundle the handler speaks HTTPS and accepts the worker's
// certificate only if it chains to that CA and names the instance's private IP (or the
// configured server name).
func TestAdminOverTLS(t *testing.T) {
	caPEM, cert := pki(t)
	otherCA, _ := pki(t)
	w := &adminWorker{}
	srv := httptest.NewUnstartedServer(admin.Handler[map[string]int](w, testToken, quiet()))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		ca     []byte
		server string
		plain  bool
		ok     bool
		reason string
	}{
		{name: "the CA and the private IP", ca: caPEM, ok: true},
		{name: "the CA and a configured name", ca: caPEM, server: "admin.liveagg.internal", ok: true},
		{name: "a name the certificate lacks", ca: caPEM, server: "other.internal", reason: "certificate is valid for"},
		{name: "another CA", ca: otherCA, reason: "certificate signed by unknown authority"},
		{name: "plain HTTP to a TLS worker", plain: true, reason: "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []Option{WithClaimSettle(0), WithAdminDialOverride(map[string]string{testIP + ":7070": srv.Listener.Addr().String()})}
			if !tc.plain {
				c, err := AdminTLS(tc.ca, tc.server)
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, WithAdminTLS(c))
			}
			f := newFake(map[string]string{TagStack: testStack, tagASG: testGroup})
			out, err := New(f, f, f, f, testConfig, quiet(), opts...).Handle(context.Background(), sample(t, "spot-interruption-warning.json", nil))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ok != (out.Action == ActionDrained) || !strings.Contains(out.Reason, tc.reason) {
				t.Fatalf("outcome %+v", out)
			}
		})
	}
	if w.drains != 2 {
		t.Fatalf("drains %d, want the two verified ones", w.drains)
	}
}

func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	caPEM, _ := pki(t)
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	base := map[string]string{EnvTokenParameter: "/p", EnvStack: "prod", EnvGroups: "prod-a, prod-b"}
	env := func(extra map[string]string) func(string) string {
		m := clone(base)
		for k, v := range extra {
			m[k] = v
		}
		return func(k string) string { return m[k] }
	}
	cfg, opts, err := FromEnv(env(nil))
	if err != nil || cfg.Stack != "prod" || strings.Join(cfg.Groups, "|") != "prod-a|prod-b" || cfg.TokenParameter != "/p" || len(opts) != 0 {
		t.Fatalf("minimal: %+v %d %v", cfg, len(opts), err)
	}
	h := New(nil, nil, nil, nil, cfg, quiet(), opts...)
	if h.port != 7070 || h.tls != nil || h.settle != 2*time.Second || h.notice != 2*time.Minute {
		t.Fatalf("defaults: port %d tls %v settle %v notice %v", h.port, h.tls, h.settle, h.notice)
	}
	cfg, opts, err = FromEnv(env(map[string]string{EnvAdminPort: "8443", EnvAdminCA: caPath, EnvAdminTLSName: "admin.liveagg.internal", EnvNotice: "90s"}))
	if err != nil {
		t.Fatal(err)
	}
	h = New(nil, nil, nil, nil, cfg, quiet(), opts...)
	if h.port != 8443 || h.tls == nil || h.tls.ServerName != "admin.liveagg.internal" || h.scheme() != "https" || h.notice != 90*time.Second {
		t.Fatalf("configured: port %d tls %+v notice %v", h.port, h.tls, h.notice)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvTokenParameter: ""}, "LIVEAGG_ADMIN_TOKEN_PARAMETER is not set"},
		{map[string]string{EnvStack: " "}, "LIVEAGG_STACK is not set"},
		{map[string]string{EnvGroups: " , "}, "LIVEAGG_ASG is not set"},
		{map[string]string{EnvAdminPort: "70000"}, `LIVEAGG_ADMIN_PORT "70000" is not a port`},
		{map[string]string{EnvAdminCA: filepath.Join(dir, "missing.pem")}, "LIVEAGG_ADMIN_CA: open"},
		{map[string]string{EnvAdminCA: notPEM}, "no PEM certificate"},
		{map[string]string{EnvAdminTLSName: "x"}, "LIVEAGG_ADMIN_SERVER_NAME is set but LIVEAGG_ADMIN_CA is not"},
		{map[string]string{EnvNotice: "-1m"}, "LIVEAGG_NOTICE"},
		{map[string]string{EnvAdminDialOverride: "10.0.0.5:7070=203.0.113.9:7070"}, "must be a loopback address"},
		{map[string]string{EnvAdminDialOverride: "10.0.0.5:7070"}, "is not ip:port=127.0.0.1:port"},
	} {
		if _, _, err := FromEnv(env(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
	over, err := ParseDialOverride("10.0.0.5:7070=127.0.0.1:4000, 10.0.0.6:7070=[::1]:4001")
	if err != nil || over["10.0.0.5:7070"] != "127.0.0.1:4000" || over["10.0.0.6:7070"] != "[::1]:4001" {
		t.Fatalf("override %v %v", over, err)
	}
}
