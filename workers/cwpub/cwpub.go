// Package cwpub publishes a worker's fleet-level measurements to CloudWatch, batched, on an
// interval: the inputs the autoscaler lambda reads back with GetMetricData, and what the
// dashboard and alarms show. Names come from the shared metrics list.
package cwpub

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/liveagg/liveagg/workers/metrics"
)

// API is the part of the CloudWatch client the publisher uses.
type API interface {
	PutMetricData(context.Context, *cloudwatch.PutMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// Sample is one interval's measurements of a worker.
type Sample struct {
	RecordsIn            float64 // records consumed in the interval
	ConsumerLag          float64 // records behind, all owned partitions
	ProcessingSeconds    float64 // CPU seconds per record in the interval
	StateBytes           float64
	StateSeries          float64
	CheckpointAgeSeconds float64 // oldest partition's
	DeadLettered         float64 // in the interval
	// DeadLetteredByReason splits DeadLettered by reason; each is also published with a
	// Reason dimension, so an alarm can leave out late records, say.
	DeadLetteredByReason map[string]float64
	SinkErrors           float64 // failed sink writes and flushes in the interval, retries included
	IdleAdvances         float64 // idle partitions' watermark advances in the interval
}

// Publisher sends samples to CloudWatch.
type Publisher struct {
	cl    API
	dims  []cwtypes.Dimension
	cpu   cpuMeter
	limit float64
}

// New returns a publisher whose metrics carry the Spec and AutoScalingGroup dimensions.
func New(cl API, spec, asg string) *Publisher {
	dims := []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(spec)}}
	if asg != "" {
		dims = append(dims, cwtypes.Dimension{Name: aws.String("AutoScalingGroup"), Value: aws.String(asg)})
	}
	return &Publisher{cl: cl, dims: dims, cpu: newCPUMeter(), limit: memoryLimit()}
}

// Publish sends one sample, with the process's CPU and memory utilisation, in one request.
func (p *Publisher) Publish(ctx context.Context, s Sample, at time.Time) error {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data := []struct {
		m metrics.Metric
		v float64
	}{
		{metrics.RecordsIn, s.RecordsIn},
		{metrics.ConsumerLag, s.ConsumerLag},
		{metrics.ProcessingSeconds, s.ProcessingSeconds},
		{metrics.StateBytes, s.StateBytes},
		{metrics.StateSeries, s.StateSeries},
		{metrics.CheckpointAge, s.CheckpointAgeSeconds},
		{metrics.DeadLettered, s.DeadLettered},
		{metrics.SinkErrors, s.SinkErrors},
		{metrics.IdleAdvances, s.IdleAdvances},
		{metrics.CPUUtilization, 100 * p.cpu.utilization()},
		{metrics.MemoryUtilization, 100 * float64(ms.HeapInuse) / p.limit},
	}
	in := &cloudwatch.PutMetricDataInput{Namespace: aws.String(metrics.Namespace)}
	for _, d := range data {
		in.MetricData = append(in.MetricData, cwtypes.MetricDatum{
			MetricName: aws.String(d.m.CloudWatch), Value: aws.Float64(d.v), Timestamp: aws.Time(at),
			Unit: cwtypes.StandardUnit(d.m.Unit), Dimensions: p.dims,
		})
	}
	for _, reason := range slices.Sorted(maps.Keys(s.DeadLetteredByReason)) {
		dims := append(slices.Clip(p.dims), cwtypes.Dimension{Name: aws.String("Reason"), Value: aws.String(reason)})
		in.MetricData = append(in.MetricData, cwtypes.MetricDatum{
			MetricName: aws.String(metrics.DeadLettered.CloudWatch), Value: aws.Float64(s.DeadLetteredByReason[reason]), Timestamp: aws.Time(at),
			Unit: cwtypes.StandardUnit(metrics.DeadLettered.Unit), Dimensions: dims,
		})
	}
	if _, err := p.cl.PutMetricData(ctx, in); err != nil {
		return fmt.Errorf("cloudwatch put metric data: %w", err)
	}
	return nil
}

// Run publishes sample() every interval until ctx ends; failures are logged, not fatal: a
// missed sample is a gap in a graph, not lost data.
func (p *Publisher) Run(ctx context.Context, interval time.Duration, sample func() Sample, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := p.Publish(ctx, sample(), now); err != nil {
				log.Warn("cloudwatch publish failed", "err", err)
			}
		}
	}
}

// cpuMeter measures the process's CPU use over the machine's cores between calls.
type cpuMeter struct {
	last     time.Time
	lastUsed time.Duration
}

func newCPUMeter() cpuMeter { return cpuMeter{last: time.Now(), lastUsed: cpuUsed()} }

func (c *cpuMeter) utilization() float64 {
	now, used := time.Now(), cpuUsed()
	wall := now.Sub(c.last)
	u := 0.0
	if wall > 0 {
		u = float64(used-c.lastUsed) / float64(wall) / float64(runtime.NumCPU())
	}
	c.last, c.lastUsed = now, used
	return u
}

func cpuUsed() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memoryLimit is GOMEMLIMIT if set, else the machine's memory.
func memoryLimit() float64 {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		if n, err := strconv.ParseFloat(strings.TrimRight(v, "B"), 64); err == nil && n > 0 {
			return n
		}
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 8 << 30
}
