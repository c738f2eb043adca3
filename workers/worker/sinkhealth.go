package worker

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// SinkStatus is one sink's health as the admin API reports it: a sink that is down holds its
// writes and retries them, and consumption pauses until it comes back.
type SinkStatus struct {
	Name      string    `json:"name"`
	Blocked   bool      `json:"blocked"`
	Since     time.Time `json:"since,omitempty"`
	Retries   int64     `json:"retries"`
	LastError string    `json:"last_error,omitempty"`
}

// sinkHealth implements sink.Observer for the worker: it counts retries, says in the metrics
// and the status which sink is holding consumption back, and logs it without flooding. A sink
// is blocked while any write to it, of any partition, is failing: one partition's write
// getting through says nothing of another's still retrying.
type sinkHealth struct {
	log     *slog.Logger
	metrics *Metrics
	errors  *atomic.Int64 // the worker's total of sink errors

	mu      sync.Mutex
	sinks   map[string]*SinkStatus
	failing map[string]int // writes failing now, per sink
	logged  map[string]time.Time
}

func newSinkHealth(log *slog.Logger, m *Metrics) *sinkHealth {
	return &sinkHealth{log: log, metrics: m, sinks: map[string]*SinkStatus{}, failing: map[string]int{}, logged: map[string]time.Time{}}
}

func (h *sinkHealth) Retrying(name string, err error, first bool) {
	h.mu.Lock()
	s := h.sinks[name]
	if s == nil {
		s = &SinkStatus{Name: name}
		h.sinks[name] = s
	}
	if first {
		h.failing[name]++
	}
	if !s.Blocked {
		s.Blocked, s.Since = true, time.Now()
	}
	s.Retries++
	s.LastError = err.Error()
	logNow := time.Since(h.logged[name]) >= 30*time.Second
	if logNow {
		h.logged[name] = time.Now()
	}
	since := s.Since
	h.mu.Unlock()
	h.metrics.sinkRetry(name)
	if h.errors != nil {
		h.errors.Add(1)
	}
	if logNow {
		h.log.Warn("sink unavailable: holding its writes and retrying; consumption pauses until it takes them",
			"sink", name, "down_for", time.Since(since).Round(time.Second).String(), "err", err)
	}
}

func (h *sinkHealth) Settled(name string, ok bool) {
	h.mu.Lock()
	s := h.sinks[name]
	h.failing[name] = max(0, h.failing[name]-1)
	var down time.Duration
	if s != nil && s.Blocked && h.failing[name] == 0 {
		s.Blocked = false
		down = time.Since(s.Since)
		h.logged[name] = time.Time{}
	}
	h.mu.Unlock()
	if down > 0 {
		h.metrics.sinkRecovered(name)
		if ok {
			h.log.Info("sink recovered; consumption resumes", "sink", name, "down_for", down.Round(time.Millisecond).String())
		}
	}
}

func (h *sinkHealth) status() []SinkStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]SinkStatus, 0, len(h.sinks))
	for _, s := range h.sinks {
		out = append(out, *s)
	}
	return out
}
