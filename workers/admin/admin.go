// Package admin is a worker's HTTP admin API and its client, which the spot-interruption
// lambda uses to make a doomed worker checkpoint and drain within the two-minute notice.
//
//	GET  /v1/status      owned partitions, offsets, lag, state size, last checkpoints
//	POST /v1/checkpoint  checkpoint every partition now; answers when durable
//	POST /v1/drain       checkpoint, commit, leave the group, stop consuming; answers when done
//
// Every request needs "Authorization: Bearer <token>"; the token is compared in constant time
// and never logged. Requests without it are refused with 401 before anything else happens.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Worker is what the API controls; *worker.Worker implements it.
type Worker[S any] interface {
	Status() S
	Checkpoint(ctx context.Context) error
	Drain(ctx context.Context) error
}

// Handler serves the API for w, authorised by token.
func Handler[S any](w Worker[S], token string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(rw http.ResponseWriter, _ *http.Request) {
		writeJSON(rw, http.StatusOK, w.Status())
	})
	mux.HandleFunc("POST /v1/checkpoint", func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := w.Checkpoint(r.Context()); err != nil {
			log.Error("admin checkpoint failed", "err", err)
			writeJSON(rw, http.StatusInternalServerError, Result{Error: err.Error(), Seconds: time.Since(start).Seconds()})
			return
		}
		writeJSON(rw, http.StatusOK, Result{Done: true, Seconds: time.Since(start).Seconds()})
	})
	mux.HandleFunc("POST /v1/drain", func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := w.Drain(r.Context()); err != nil {
			log.Error("admin drain failed", "err", err)
			writeJSON(rw, http.StatusInternalServerError, Result{Error: err.Error(), Seconds: time.Since(start).Seconds()})
			return
		}
		writeJSON(rw, http.StatusOK, Result{Done: true, Seconds: time.Since(start).Seconds()})
	})
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			log.Warn("admin request refused: missing or wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
			writeJSON(rw, http.StatusUnauthorized, Result{Error: "missing or wrong bearer token"})
			return
		}
		mux.ServeHTTP(rw, r)
	})
}

// Result answers checkpoint and drain.
type Result struct {
	Done    bool    `json:"done"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(v)
}

// Client calls a worker's admin API.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient returns a client for the API at base (http://host:port). Every call takes its
// deadline from its context: the lambda bounds each by what is left of the notice.
func NewClient(base, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, hc: hc}
}

// ErrUnauthorized is returned when the worker refuses the token.
var ErrUnauthorized = errors.New("admin: token refused")

// Status fetches the worker's status into out.
func (c *Client) Status(ctx context.Context, out any) error {
	return c.do(ctx, http.MethodGet, "/v1/status", out)
}

// Checkpoint asks the worker to checkpoint every partition and waits until it is durable.
func (c *Client) Checkpoint(ctx context.Context) (Result, error) {
	var r Result
	err := c.do(ctx, http.MethodPost, "/v1/checkpoint", &r)
	return r, err
}

// Drain asks the worker to checkpoint, leave its group and stop, and waits until it has.
func (c *Client) Drain(ctx context.Context) (Result, error) {
	var r Result
	err := c.do(ctx, http.MethodPost, "/v1/drain", &r)
	return r, err
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return ErrUnauthorized
	}
	if resp.StatusCode != http.StatusOK {
		var r Result
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return errors.New("admin " + path + ": " + resp.Status + ": " + r.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
