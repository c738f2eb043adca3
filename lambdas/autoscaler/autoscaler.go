package autoscaler

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/liveagg/liveagg/workers/metrics"
)

// CloudWatch is the part of the CloudWatch API the autoscaler uses.
type CloudWatch interface {
	GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
	PutMetricData(context.Context, *cloudwatch.PutMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// AutoScaling is the part of the Auto Scaling API the autoscaler uses.
type AutoScaling interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	SetDesiredCapacity(context.Context, *autoscaling.SetDesiredCapacityInput, ...func(*autoscaling.Options)) (*autoscaling.SetDesiredCapacityOutput, error)
}

// Config says which fleet to size.
type Config struct {
	// Group is the Auto Scaling group; Spec the spec its workers run (the metrics' dimensions).
	Group, Spec string
	// Partitions of the spec's input topic.
	Partitions int32
	// Window is how many minutes of metrics to read at one-minute resolution (default 15).
	Window int
	// HistoryDays is how much history forecasting policies get, in five-minute points from
	// CloudWatch's one-minute ones, which it keeps 15 days (default 15: two weekly seasons and
	// a day).
	HistoryDays int
	// DryRun decides and publishes but does not change the group.
	DryRun bool
}

// Scaler is the Lambda's handler. Build it in main with New.
type Scaler struct {
	cw     CloudWatch
	asg    AutoScaling
	policy Policy
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
}

// New returns a scaler of cfg's fleet.
func New(cw CloudWatch, asg AutoScaling, policy Policy, cfg Config, log *slog.Logger) *Scaler {
	if cfg.Window <= 0 {
		cfg.Window = 15
	}
	if cfg.HistoryDays <= 0 {
		cfg.HistoryDays = 15
	}
	return &Scaler{cw: cw, asg: asg, policy: policy, cfg: cfg, log: log, now: time.Now}
}

// Result is the Lambda's response: the decision and whether it was applied.
type Result struct {
	Group   string  `json:"group"`
	Current int32   `json:"current"`
	Desired int32   `json:"desired"`
	Need    float64 `json:"need"`
	Rate    float64 `json:"rate"`
	Reason  string  `json:"reason"`
	Applied bool    `json:"applied"`
	// HistoryRate is the newest point with data of the rate history a forecasting policy
	// read, records/s.
	HistoryRate float64 `json:"history_rate,omitempty"`
	DryRun      bool    `json:"dry_run,omitempty"`
	Min, Max    int32
}

// Handle is the Lambda entry point (an EventBridge schedule; the event itself carries nothing
// the scaler needs).
func (s *Scaler) Handle(ctx context.Context) (Result, error) {
	res, err := s.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{s.cfg.Group}})
	if err != nil {
		return Result{}, fmt.Errorf("describe group %s: %w", s.cfg.Group, err)
	}
	if len(res.AutoScalingGroups) == 0 {
		return Result{}, fmt.Errorf("group %s does not exist", s.cfg.Group)
	}
	g := res.AutoScalingGroups[0]
	in, err := s.inputs(ctx)
	if err != nil {
		return Result{}, err
	}
	in.Current, in.Min, in.Max, in.Partitions = aws.ToInt32(g.DesiredCapacity), aws.ToInt32(g.MinSize), aws.ToInt32(g.MaxSize), s.cfg.Partitions
	d := s.policy.Decide(in)
	// JSON has no NaN: a policy without data says 0.
	for _, v := range []*float64{&d.Need, &d.Rate} {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			*v = 0
		}
	}
	out := Result{Group: s.cfg.Group, Current: in.Current, Desired: d.Desired, Need: d.Need, Rate: d.Rate, Reason: d.Reason,
		DryRun: s.cfg.DryRun, Min: in.Min, Max: in.Max}
	if v := lastValid(in.RateHistory); !math.IsNaN(v) {
		out.HistoryRate = v
	}
	if d.Desired != in.Current && !s.cfg.DryRun {
		if _, err := s.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(s.cfg.Group),
			DesiredCapacity: aws.Int32(d.Desired), HonorCooldown: aws.Bool(false)}); err != nil {
			return out, fmt.Errorf("set desired capacity of %s to %d: %w", s.cfg.Group, d.Desired, err)
		}
		out.Applied = true
	}
	s.log.Info("autoscaler decision", "group", s.cfg.Group, "current", in.Current, "desired", d.Desired, "need", d.Need,
		"rate", d.Rate, "applied", out.Applied, "dry_run", s.cfg.DryRun, "reason", d.Reason)
	s.publish(ctx, out)
	return out, nil
}

// inputs reads the last Window minutes of the fleet's metrics, one point a minute.
func (s *Scaler) inputs(ctx context.Context) (Inputs, error) {
	end := s.now().Truncate(time.Minute)
	start := end.Add(-time.Duration(s.cfg.Window) * time.Minute)
	dims := []cwtypes.Dimension{{Name: aws.String("Spec"), Value: aws.String(s.cfg.Spec)},
		{Name: aws.String("AutoScalingGroup"), Value: aws.String(s.cfg.Group)}}
	queries := []struct {
		id   string
		m    metrics.Metric
		stat string
	}{
		// Workers publish each interval's records in and their own lag, state and cost: the
		// fleet's are the sums, its cost per record the average.
		{"rate", metrics.RecordsIn, "Sum"},
		{"lag", metrics.ConsumerLag, "Sum"},
		{"spr", metrics.ProcessingSeconds, "Average"},
		{"cpu", metrics.CPUUtilization, "Average"},
		{"state", metrics.StateBytes, "Sum"},
	}
	in := &cloudwatch.GetMetricDataInput{StartTime: aws.Time(start), EndTime: aws.Time(end), ScanBy: cwtypes.ScanByTimestampAscending}
	for _, q := range queries {
		in.MetricDataQueries = append(in.MetricDataQueries, cwtypes.MetricDataQuery{Id: aws.String(q.id),
			MetricStat: &cwtypes.MetricStat{Metric: &cwtypes.Metric{Namespace: aws.String(metrics.Namespace),
				MetricName: aws.String(q.m.CloudWatch), Dimensions: dims}, Period: aws.Int32(60), Stat: aws.String(q.stat)}})
	}
	series := map[string][]float64{}
	for _, q := range queries {
		series[q.id] = nanSeries(s.cfg.Window)
	}
	for {
		out, err := s.cw.GetMetricData(ctx, in)
		if err != nil {
			return Inputs{}, fmt.Errorf("get metric data: %w", err)
		}
		for _, r := range out.MetricDataResults {
			dst := series[aws.ToString(r.Id)]
			for i, ts := range r.Timestamps {
				if k := int(ts.Sub(start) / time.Minute); k >= 0 && k < len(dst) && i < len(r.Values) {
					dst[k] = r.Values[i]
				}
			}
		}
		if out.NextToken == nil {
			break
		}
		in.NextToken = out.NextToken
	}
	// Ingest is what was consumed plus how much the lag grew.
	rate, lag := series["rate"], series["lag"]
	consumed := make([]float64, len(rate))
	for i, v := range rate {
		consumed[i] = v / 60
	}
	for i, v := range rate {
		rate[i] = v / 60
		if i > 0 && !math.IsNaN(lag[i]) && !math.IsNaN(lag[i-1]) && !math.IsNaN(v) {
			rate[i] += (lag[i] - lag[i-1]) / 60
		}
	}
	in2 := Inputs{Rate: rate, Lag: lag, SecondsPerRecord: series["spr"], CPU: series["cpu"], StateBytes: series["state"]}
	if h, ok := s.policy.(interface{ NeedsHistory() bool }); ok && h.NeedsHistory() {
		if err := s.history(ctx, dims, end, &in2); err != nil {
			return Inputs{}, err
		}
		FoldRecentMinutes(in2.RateHistory, in2.HistoryStep, in2.HistoryAhead, consumed)
	}
	return in2, nil
}

// history reads the long, five-minute history forecasting policies learn from, and the spot
// interruptions of the last hour.
func (s *Scaler) history(ctx context.Context, dims []cwtypes.Dimension, end time.Time, in *Inputs) error {
	const step = 5
	// Buckets on the clock's five minutes: the same minutes make the same point from one run
	// to the next (buckets ending now would regroup every minute, and the forecast's
	// backtests with them). The last bucket holds the current five minutes so far.
	now := end
	if end = end.Truncate(step * time.Minute); end.Before(now) {
		end = end.Add(step * time.Minute)
	}
	start := end.Add(-time.Duration(s.cfg.HistoryDays) * 24 * time.Hour)
	n := int(end.Sub(start) / (step * time.Minute))
	q := func(id string, m metrics.Metric, stat string, d []cwtypes.Dimension, period int32) cwtypes.MetricDataQuery {
		return cwtypes.MetricDataQuery{Id: aws.String(id), MetricStat: &cwtypes.MetricStat{Metric: &cwtypes.Metric{
			Namespace: aws.String(metrics.Namespace), MetricName: aws.String(m.CloudWatch), Dimensions: d}, Period: aws.Int32(period), Stat: aws.String(stat)}}
	}
	spotDims := []cwtypes.Dimension{{Name: aws.String("EventType"), Value: aws.String("EC2 Spot Instance Interruption Warning")},
		{Name: aws.String("AutoScalingGroup"), Value: aws.String(s.cfg.Group)}}
	req := &cloudwatch.GetMetricDataInput{StartTime: aws.Time(start), EndTime: aws.Time(end), ScanBy: cwtypes.ScanByTimestampAscending,
		MetricDataQueries: []cwtypes.MetricDataQuery{
			q("hrate", metrics.RecordsIn, "Sum", dims, step*60),
			// State is a gauge every worker publishes each minute: a five-minute Sum would hold
			// five of each worker's points, five times the fleet's state. The fleet's is the
			// per-minute Sum (as in inputs), averaged here over each five minutes.
			q("hstate", metrics.StateBytes, "Sum", dims, 60),
			q("spot", metrics.SpotInterruptions, "Sum", spotDims, 3600),
		}}
	rate, state := nanSeries(n), nanSeries(n)
	stateSum, stateMinutes := make([]float64, n), make([]int, n)
	for {
		out, err := s.cw.GetMetricData(ctx, req)
		if err != nil {
			return fmt.Errorf("get metric history: %w", err)
		}
		for _, r := range out.MetricDataResults {
			for i, ts := range r.Timestamps {
				if i >= len(r.Values) {
					break
				}
				k := int(ts.Sub(start) / (step * time.Minute))
				switch aws.ToString(r.Id) {
				case "hrate":
					if k >= 0 && k < n {
						rate[k] = r.Values[i] / (step * 60)
					}
				case "hstate":
					if k >= 0 && k < n {
						stateSum[k] += r.Values[i]
						stateMinutes[k]++
					}
				case "spot":
					if now.Sub(ts) <= time.Hour {
						in.Interruptions += int(r.Values[i])
					}
				}
			}
		}
		if out.NextToken == nil {
			break
		}
		req.NextToken = out.NextToken
	}
	for k, m := range stateMinutes {
		if m > 0 {
			state[k] = stateSum[k] / float64(m)
		}
	}
	in.RateHistory, in.StateHistory, in.HistoryStep = rate, state, step
	in.HistoryAhead = int(end.Sub(now) / time.Minute)
	return nil
}

// FoldRecentMinutes replaces the history points the one-minute window covers with the mean of
// the window's published minutes (records consumed per second, oldest first, NaN where a
// minute is not published yet). The window ends now; the history's last point ends ahead
// minutes later (its buckets are aligned to the clock, so the last holds the minutes of the
// current five so far). CloudWatch's five-minute Sum of that bucket holds only the minutes
// published: divided by the bucket's 300 seconds it reads as a drop of a fifth or more, just
// where the forecast's level and "now" look.
func FoldRecentMinutes(hist []float64, step, ahead int, minutes []float64) {
	if step <= 1 {
		return
	}
	w := len(minutes)
	for b := 0; b < len(hist); b++ {
		lo, hi := w+ahead-(b+1)*step, min(w, w+ahead-b*step)
		if lo < 0 {
			break
		}
		sum, k := 0.0, 0
		for _, v := range minutes[lo:max(lo, hi)] {
			if !math.IsNaN(v) {
				sum += v
				k++
			}
		}
		i := len(hist) - 1 - b
		if k > 0 {
			hist[i] = sum / float64(k)
		} else {
			hist[i] = math.NaN()
		}
	}
}

func nanSeries(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// publish records the decision and its inputs.
func (s *Scaler) publish(ctx context.Context, r Result) {
	dims := []cwtypes.Dimension{{Name: aws.String("AutoScalingGroup"), Value: aws.String(s.cfg.Group)}}
	at := aws.Time(s.now())
	var data []cwtypes.MetricDatum
	for _, m := range []struct {
		m metrics.Metric
		v float64
	}{{metrics.AutoscalerDesired, float64(r.Desired)}, {metrics.AutoscalerNeed, r.Need}, {metrics.AutoscalerRate, r.Rate}} {
		if math.IsNaN(m.v) || math.IsInf(m.v, 0) {
			continue
		}
		data = append(data, cwtypes.MetricDatum{MetricName: aws.String(m.m.CloudWatch), Value: aws.Float64(m.v),
			Unit: cwtypes.StandardUnit(m.m.Unit), Dimensions: dims, Timestamp: at})
	}
	if _, err := s.cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(metrics.Namespace), MetricData: data}); err != nil {
		s.log.Warn("decision metrics not published", "err", err)
	}
}
