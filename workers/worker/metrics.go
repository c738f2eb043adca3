package worker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/liveagg/liveagg/workers/metrics"
	"github.com/liveagg/liveagg/workers/state"
)

// Metrics are a worker's Prometheus collectors, named from the shared metrics list.
type Metrics struct {
	records     *prometheus.CounterVec
	procSeconds prometheus.Histogram
	lagG        *prometheus.GaugeVec
	series      *prometheus.GaugeVec
	bytes       *prometheus.GaugeVec
	ckptDur     prometheus.Histogram
	ckptBytes   *prometheus.GaugeVec
	ckptTime    *prometheus.GaugeVec
	restore     prometheus.Histogram
	dead        *prometheus.CounterVec
	windows     prometheus.Counter
	lost        prometheus.Counter
	sinkRows    *prometheus.CounterVec
	sinkErrs    *prometheus.CounterVec
	sinkFlush   *prometheus.HistogramVec
	sinkBlocked *prometheus.GaugeVec
	idleG       *prometheus.GaugeVec
	idleAdv     prometheus.Counter
}

// NewMetrics registers the worker's collectors with reg (nil: a private registry, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	part := []string{"partition"}
	return &Metrics{
		records:     f.NewCounterVec(prometheus.CounterOpts{Name: metrics.RecordsIn.Prom, Help: metrics.RecordsIn.Help}, part),
		procSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: metrics.ProcessingSeconds.Prom, Help: metrics.ProcessingSeconds.Help, Buckets: prometheus.ExponentialBuckets(1e-7, 2, 16)}),
		lagG:        f.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.ConsumerLag.Prom, Help: metrics.ConsumerLag.Help}, part),
		series:      f.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.StateSeries.Prom, Help: metrics.StateSeries.Help}, part),
		bytes:       f.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.StateBytes.Prom, Help: metrics.StateBytes.Help}, part),
		ckptDur:     f.NewHistogram(prometheus.HistogramOpts{Name: metrics.CheckpointDuration.Prom, Help: metrics.CheckpointDuration.Help, Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		ckptBytes:   f.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.CheckpointBytes.Prom, Help: metrics.CheckpointBytes.Help}, part),
		ckptTime:    f.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.CheckpointTime.Prom, Help: metrics.CheckpointTime.Help}, part),
		restore:     f.NewHistogram(prometheus.HistogramOpts{Name: metrics.RestoreSeconds.Prom, Help: metrics.RestoreSeconds.Help, Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		dead:        f.NewCounterVec(prometheus.CounterOpts{Name: metrics.DeadLettered.Prom, Help: metrics.DeadLettered.Help}, []string{"reason"}),
		windows:     f.NewCounter(prometheus.CounterOpts{Name: metrics.WindowsEmitted.Prom, Help: metrics.WindowsEmitted.Help}),
		lost:        f.NewCounter(prometheus.CounterOpts{Name: metrics.OffsetLost.Prom, Help: metrics.OffsetLost.Help}),
		sinkRows:    f.NewCounterVec(prometheus.CounterOpts{Name: metrics.SinkWrites.Prom, Help: metrics.SinkWrites.Help}, []string{"sink"}),
		sinkErrs:    f.NewCounterVec(prometheus.CounterOpts{Name: metrics.SinkErrors.Prom, Help: metrics.SinkErrors.Help}, []string{"sink"}),
		sinkFlush:   f.NewHistogramVec(prometheus.HistogramOpts{Name: metrics.SinkLatency.Prom, Help: metrics.SinkLatency.Help, Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"sink"}),
		sinkBlocked: f.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.SinkBlocked.Prom, Help: metrics.SinkBlocked.Help}, []string{"sink"}),
		idleG:       f.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.PartitionIdle.Prom, Help: metrics.PartitionIdle.Help}, part),
		idleAdv:     f.NewCounter(prometheus.CounterOpts{Name: metrics.IdleAdvances.Prom, Help: metrics.IdleAdvances.Help}),
	}
}

func p32(p int32) string { return strconv.Itoa(int(p)) }

func (m *Metrics) recordsIn(p int32, n int, d time.Duration) {
	m.records.WithLabelValues(p32(p)).Add(float64(n))
	if n > 0 {
		m.procSeconds.Observe(d.Seconds() / float64(n))
	}
}

func (m *Metrics) lag(p int32, lag int64) { m.lagG.WithLabelValues(p32(p)).Set(float64(lag)) }

func (m *Metrics) state(p int32, s state.Stats) {
	m.series.WithLabelValues(p32(p)).Set(float64(s.Series))
	m.bytes.WithLabelValues(p32(p)).Set(float64(s.Bytes))
}

func (m *Metrics) checkpointed(p int32, d time.Duration, size int64) {
	m.ckptDur.Observe(d.Seconds())
	m.ckptBytes.WithLabelValues(p32(p)).Set(float64(size))
	m.ckptTime.WithLabelValues(p32(p)).SetToCurrentTime()
}

// checkpointCurrent says the partition's last checkpoint still holds all it has: it took
// nothing since. A quiet partition's checkpoint timestamp would otherwise age and raise the
// checkpoint-age alarm although nothing is at risk.
func (m *Metrics) checkpointCurrent(p int32) { m.ckptTime.WithLabelValues(p32(p)).SetToCurrentTime() }

// released forgets a partition the worker no longer owns. Its gauges would otherwise keep their
// last values for ever: a lag that never drains, a checkpoint timestamp whose age alarms after
// the partition has moved to another worker, which reports it now.
func (m *Metrics) released(p int32) {
	for _, g := range []*prometheus.GaugeVec{m.lagG, m.series, m.bytes, m.ckptBytes, m.ckptTime, m.idleG} {
		g.DeleteLabelValues(p32(p))
	}
}

func (m *Metrics) restored(_ int32, d time.Duration) { m.restore.Observe(d.Seconds()) }
func (m *Metrics) deadLettered(reason string)        { m.dead.WithLabelValues(reason).Inc() }
func (m *Metrics) windowsEmitted(n int)              { m.windows.Add(float64(n)) }
func (m *Metrics) offsetLost(int32)                  { m.lost.Inc() }

func (m *Metrics) sinkRowsOut(sink string, n int) { m.sinkRows.WithLabelValues(sink).Add(float64(n)) }
func (m *Metrics) sinkRetry(sink string) {
	m.sinkErrs.WithLabelValues(sink).Inc()
	m.sinkBlocked.WithLabelValues(sink).Set(1)
}
func (m *Metrics) sinkRecovered(sink string) { m.sinkBlocked.WithLabelValues(sink).Set(0) }
func (m *Metrics) sinkFailed(sink string)    { m.sinkErrs.WithLabelValues(sink).Inc() }
func (m *Metrics) sinkFlushed(sink string, d time.Duration) {
	m.sinkFlush.WithLabelValues(sink).Observe(d.Seconds())
}

func (m *Metrics) idle(p int32, idle bool) {
	v := 0.0
	if idle {
		v = 1
	}
	m.idleG.WithLabelValues(p32(p)).Set(v)
}
func (m *Metrics) idleAdvanced(int32) { m.idleAdv.Inc() }
