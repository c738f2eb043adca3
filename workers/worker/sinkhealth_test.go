package worker

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestSinkBlockedWhileAnyWriteFails: two partitions' writes to one sink fail; the first to get
// through must not report the sink recovered while the other still retries.
func TestSinkBlockedWhileAnyWriteFails(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	h := newSinkHealth(slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	down := errors.New("connection refused")
	blocked := func() (bool, float64) {
		var b bool
		for _, s := range h.status() {
			if s.Name == "cassandra" {
				b = s.Blocked
			}
		}
		var g dto.Metric
		if err := m.sinkBlocked.WithLabelValues("cassandra").Write(&g); err != nil {
			t.Fatal(err)
		}
		return b, g.GetGauge().GetValue()
	}
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"partition 1 fails", func() { h.Retrying("cassandra", down, true) }, true},
		{"partition 2 fails", func() { h.Retrying("cassandra", down, true) }, true},
		{"partition 1 retries", func() { h.Retrying("cassandra", down, false) }, true},
		{"partition 1 gets through", func() { h.Settled("cassandra", true) }, true},
		{"partition 2 retries", func() { h.Retrying("cassandra", down, false) }, true},
		{"partition 2 gets through", func() { h.Settled("cassandra", true) }, false},
		{"partition 3 fails", func() { h.Retrying("cassandra", down, true) }, true},
		{"partition 3 gives up at shutdown", func() { h.Settled("cassandra", false) }, false},
	}
	for _, st := range steps {
		st.do()
		b, g := blocked()
		if b != st.want || (g == 1) != st.want {
			t.Errorf("after %s: status blocked %v, gauge %v; want blocked %v", st.name, b, g, st.want)
		}
	}
}
