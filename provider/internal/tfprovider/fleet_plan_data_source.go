package tfprovider

import (
	"context"
	"math"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	tfpath "github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/capacity"
	"github.com/liveagg/liveagg/workers/spec"
)

var _ datasource.DataSource = (*fleetPlan)(nil)

type fleetPlan struct{}

// Sizing assumptions when the configuration leaves them out: a two-vCPU instance, run at 70 %
// at peak so a burst or a rebalance has headroom.
const (
	defaultCores             = 2.0
	defaultTargetUtilization = 0.7
)

func newFleetPlan() datasource.DataSource { return &fleetPlan{} }

type fleetPlanModel struct {
	Spec              types.String  `tfsdk:"spec"`
	PeakRate          types.Float64 `tfsdk:"peak_records_per_second"`
	LiveSeries        types.Float64 `tfsdk:"live_series"`
	Cores             types.Float64 `tfsdk:"cores_per_worker"`
	TargetUtilization types.Float64 `tfsdk:"target_utilization"`
	Partitions        types.Int64   `tfsdk:"partitions"`
	MinWorkers        types.Int64   `tfsdk:"min_workers"`
	MaxWorkers        types.Int64   `tfsdk:"max_workers"`
	MemoryMiB         types.Int64   `tfsdk:"instance_memory_mib"`
	StateBytes        types.Float64 `tfsdk:"state_bytes"`
	WorkerRate        types.Float64 `tfsdk:"records_per_second_per_worker"`
}

func (f *fleetPlan) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_fleet_plan"
}

func (f *fleetPlan) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Sizes a spec's fleet from its peak load, using the engine's measured cost per record and bytes per series (`workers/capacity`): the worker count bounds and the instance memory, for the `spot-workers` module.",
		Attributes: map[string]schema.Attribute{
			"spec":                          schema.StringAttribute{Required: true, MarkdownDescription: "The spec document (the `yaml` attribute of a `liveagg_aggregation_spec`)."},
			"peak_records_per_second":       schema.Float64Attribute{Required: true, MarkdownDescription: "The highest input rate the fleet must keep up with."},
			"live_series":                   schema.Float64Attribute{Required: true, MarkdownDescription: "Series with data in an open window at the busiest time."},
			"cores_per_worker":              schema.Float64Attribute{Optional: true, MarkdownDescription: "vCPUs of the instance type. Default " + code(float(defaultCores)) + "."},
			"target_utilization":            schema.Float64Attribute{Optional: true, MarkdownDescription: "CPU the fleet should run at, at peak, more than 0 and at most 1. Default " + code(float(defaultTargetUtilization)) + "."},
			"partitions":                    schema.Int64Attribute{Optional: true, MarkdownDescription: "Partitions of the input topic: more workers than partitions idle, so it caps `max_workers`."},
			"min_workers":                   schema.Int64Attribute{Computed: true, MarkdownDescription: "Workers the peak needs at the target utilisation."},
			"max_workers":                   schema.Int64Attribute{Computed: true, MarkdownDescription: "Upper bound for the autoscaler: three times `min_workers`, at most the partition count."},
			"instance_memory_mib":           schema.Int64Attribute{Computed: true, MarkdownDescription: "Memory one worker needs at `min_workers`: its share of the state, snapshot buffers, and the process."},
			"state_bytes":                   schema.Float64Attribute{Computed: true, MarkdownDescription: "Aggregation state of the whole fleet at `live_series`."},
			"records_per_second_per_worker": schema.Float64Attribute{Computed: true, MarkdownDescription: "What one worker applies at 100 % of its cores."},
		},
	}
}

func (f *fleetPlan) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m fleetPlanModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s, err := spec.Parse([]byte(m.Spec.ValueString()))
	if err != nil {
		resp.Diagnostics.AddAttributeError(tfpath.Root("spec"), "fleet plan", err.Error())
		return
	}
	layout, err := agg.LayoutOf(s)
	if err != nil {
		resp.Diagnostics.AddAttributeError(tfpath.Root("spec"), "fleet plan", err.Error())
		return
	}
	cores, target := defaultCores, defaultTargetUtilization
	if !m.Cores.IsNull() {
		cores = m.Cores.ValueFloat64()
	}
	if !m.TargetUtilization.IsNull() {
		target = m.TargetUtilization.ValueFloat64()
	}
	if cores <= 0 || target <= 0 || target > 1 || m.PeakRate.ValueFloat64() < 0 || m.LiveSeries.ValueFloat64() < 0 {
		resp.Diagnostics.AddError("fleet plan", "cores_per_worker must be positive, target_utilization in (0, 1], rates and series not negative")
		return
	}
	perWorker := cores / capacity.WorkerSecondsPerRecord()
	minW := max(1, int64(math.Ceil(m.PeakRate.ValueFloat64()/(perWorker*target))))
	maxW := 3 * minW
	if !m.Partitions.IsNull() && m.Partitions.ValueInt64() > 0 {
		maxW = min(maxW, m.Partitions.ValueInt64())
		minW = min(minW, maxW)
	}
	state := m.LiveSeries.ValueFloat64() * capacity.SeriesBytes(layout, len(s.Windows))
	mem := (state/float64(minW))*(1+capacity.SnapshotFactor) + capacity.BaseBytes
	m.MinWorkers, m.MaxWorkers = types.Int64Value(minW), types.Int64Value(maxW)
	m.MemoryMiB = types.Int64Value(int64(math.Ceil(mem / (1 << 20))))
	m.StateBytes, m.WorkerRate = types.Float64Value(state), types.Float64Value(perWorker)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
