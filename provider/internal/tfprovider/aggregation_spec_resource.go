package tfprovider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	tfpath "github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/specsrc"
)

// The framework finds these methods by interface; the assertions make a signature that drifts
// from the interface a compile error rather than a silently skipped method.
var (
	_ resource.ResourceWithConfigure      = (*aggregationSpec)(nil)
	_ resource.ResourceWithValidateConfig = (*aggregationSpec)(nil)
	_ resource.ResourceWithModifyPlan     = (*aggregationSpec)(nil)
	_ resource.ResourceWithImportState    = (*aggregationSpec)(nil)
)

type aggregationSpec struct{ c *clients }

func newAggregationSpec() resource.Resource { return &aggregationSpec{} }

type specModel struct {
	ID              types.String `tfsdk:"id"`
	Name            types.String `tfsdk:"name"`
	Key             types.List   `tfsdk:"key"`
	Windows         types.List   `tfsdk:"windows"`
	AllowedLateness types.String `tfsdk:"allowed_lateness"`
	Input           *inputModel  `tfsdk:"input"`
	Aggregations    []aggModel   `tfsdk:"aggregation"`
	Outputs         []outModel   `tfsdk:"output"`
	YAML            types.String `tfsdk:"yaml"`
	Location        types.String `tfsdk:"location"`
	Version         types.String `tfsdk:"version"`
	SpecVersion     types.Int64  `tfsdk:"spec_version"`
	OnIncompatible  types.String `tfsdk:"on_incompatible_change"`
	Change          types.String `tfsdk:"change"`
	Stages          types.Int64  `tfsdk:"stages"`
	Repartition     types.String `tfsdk:"repartition_topic"`
	Execution       types.String `tfsdk:"execution"`
}

type inputModel struct {
	Topic          types.String `tfsdk:"topic"`
	Format         types.String `tfsdk:"format"`
	TimeField      types.String `tfsdk:"time_field"`
	TimeUnit       types.String `tfsdk:"time_unit"`
	MaxFutureSkew  types.String `tfsdk:"max_future_skew"`
	MaxRecordBytes types.Int64  `tfsdk:"max_record_bytes"`
	PartitionedBy  types.List   `tfsdk:"partitioned_by"`
	IdleTimeout    types.String `tfsdk:"idle_timeout"`
}

type aggModel struct {
	Name             types.String  `tfsdk:"name"`
	Fn               types.String  `tfsdk:"fn"`
	Field            types.String  `tfsdk:"field"`
	Precision        types.Int64   `tfsdk:"precision"`
	RelativeAccuracy types.Float64 `tfsdk:"relative_accuracy"`
	Quantiles        types.List    `tfsdk:"quantiles"`
	Type             types.String  `tfsdk:"type"`
}

type outModel struct {
	Type     types.String `tfsdk:"type"`
	Partial  types.Bool   `tfsdk:"partial"`
	Key      types.List   `tfsdk:"key"`
	Keyspace types.String `tfsdk:"keyspace"`
	Table    types.String `tfsdk:"table"`
	TTL      types.String `tfsdk:"ttl"`
	URL      types.String `tfsdk:"url"`
	Topic    types.String `tfsdk:"topic"`
	Path     types.String `tfsdk:"path"`
}

func (r *aggregationSpec) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_aggregation_spec"
}

func (r *aggregationSpec) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	str := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, MarkdownDescription: desc}
	}
	// Optional values with defaults are Computed without UseStateForUnknown: ModifyPlan plans
	// the default when the configuration leaves one out, and when the configuration is not
	// known yet they are unknown too, since a default can depend on it (an aggregation's name
	// on its fn and field).
	computedStr := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, Computed: true, MarkdownDescription: desc}
	}
	enum := func(desc string, vals []string) schema.StringAttribute {
		a := str(desc)
		a.Validators = allowed(vals)
		return a
	}
	computedEnum := func(desc string, vals []string) schema.StringAttribute {
		a := computedStr(desc)
		a.Validators = allowed(vals)
		return a
	}
	cassandra, kafka := outputOnly(spec.OutputCassandra), outputOnly(spec.OutputKafka)
	resp.Schema = schema.Schema{
		MarkdownDescription: "An aggregation spec: what a fleet of workers reads, how it keys and windows it, what it computes and where it writes. " +
			"The spec is checked at plan time by the same code the workers run, with each problem reported on its attribute, and stored as YAML at " +
			"`<spec_registry>/<name>.yaml`, where workers load and hot-reload it. The spec registry's bucket must exist before the spec is created: " +
			"if the same configuration creates the bucket, make the spec depend on it and its configuration.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The spec name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"name": schema.StringAttribute{Required: true, MarkdownDescription: "Identifies the spec in checkpoints, consumer groups and metrics (a-z, 0-9, `_` and `-`; 64 at most). Changing it creates a new spec.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"key": schema.ListAttribute{ElementType: types.StringType, Required: true, MarkdownDescription: "Record fields whose values identify a series " +
				"(dotted for nested fields; a column each, dots becoming underscores). Changing them is an incompatible change: see `on_incompatible_change`."},
			"windows": schema.ListAttribute{ElementType: types.StringType, Required: true, MarkdownDescription: "Tumbling window sizes computed for every series, " +
				"such as `1m`, `15m`, `1h`: each divides a day evenly or is whole days, at most " + code(spec.MaxWindow) + ". Changing them is an incompatible change: see `on_incompatible_change`."},
			"on_incompatible_change": enum("How the workers take over from the previous revision's checkpoints when a change cannot carry their state over "+
				"(the key, the windows, the input format or partitioning, or an added `last`, `quantiles` or `avg` of a field not summed yet): "+
				code(spec.ChangeFromOffsets)+" (the default) starts a new version at each partition's checkpointed offset, its first windows rebuilt from the records before it; "+
				code(spec.ChangeBackfill)+" recomputes every window from the earliest retained offset, and is refused at plan time once retention has removed records.", spec.IncompatibleChanges),
			"spec_version": schema.Int64Attribute{Computed: true, MarkdownDescription: "The spec's revision: 1 when created, one more on every change stored. " +
				"Checkpoints record the revision that wrote them; a worker never touches a newer revision's checkpoints."},
			"change": schema.StringAttribute{Computed: true, MarkdownDescription: "What the workers do with the previous revision's checkpoints when this revision is stored, " +
				"by the rule of docs/spec.md (\"Changing a running spec\"): `carry state over unchanged`, `migrate in place`, `new version from offsets`, `backfill` or `new spec`, and why."},
			"allowed_lateness": str("How far behind the newest event time a record may be and still count, such as `30s`."),
			"yaml":             schema.StringAttribute{Computed: true, MarkdownDescription: "The spec as stored, with defaults made explicit."},
			"stages": schema.Int64Attribute{Computed: true, MarkdownDescription: "How many stages the workers run the spec in: 1 when its input is declared partitioned " +
				"within its key (or its outputs are all partial), 2 otherwise, through `repartition_topic`."},
			"repartition_topic": schema.StringAttribute{Computed: true, MarkdownDescription: "The internal topic between the two stages (`<name>.repartition`), null for one stage. " +
				"The workers create it if missing, with the input topic's partition count and retention; declare it with `liveagg_kafka_topic` to size it yourself."},
			"execution": schema.StringAttribute{Computed: true, MarkdownDescription: "How the workers run the spec, stage by stage: what `liveagg spec explain` prints."},
			"location": schema.StringAttribute{Computed: true, MarkdownDescription: "Where the spec is stored: the location workers are configured with.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"version": schema.StringAttribute{Computed: true, MarkdownDescription: "The stored object's version (its ETag): changes whenever the stored spec does."},
		},
		Blocks: map[string]schema.Block{
			"input": schema.SingleNestedBlock{
				MarkdownDescription: "What the spec reads.",
				Attributes: map[string]schema.Attribute{
					"topic": str("The Kafka topic to consume."),
					"format": computedEnum(oneOf(spec.Formats)+": "+code(spec.FormatJSON)+" reads raw records, "+code(spec.FormatPartials)+
						" the partial states a lower level writes. Default "+code(spec.FormatJSON)+".", spec.Formats),
					"time_field": str("The event-time field of a JSON record (dotted for nested fields). Not for " + code(spec.FormatPartials) + "."),
					"time_unit": computedEnum("How the time field is written: "+oneOf(spec.TimeUnits)+". Default "+code(spec.DefaultTimeUnit)+
						". Not for "+code(spec.FormatPartials)+".", spec.TimeUnits),
					"max_future_skew": computedStr("How far a record's event time may run ahead of its Kafka timestamp. Default " + code(spec.DefaultMaxFutureSkew) + "."),
					"max_record_bytes": schema.Int64Attribute{Optional: true, Computed: true,
						MarkdownDescription: "Larger records are dead-lettered before parsing. Default " + mib(spec.DefaultMaxRecordBytes) + "."},
					"partitioned_by": schema.ListAttribute{ElementType: types.StringType, Optional: true, MarkdownDescription: "The fields the topic's producers key records by " +
						"(each record's Kafka key is the fields' values joined by U+001F; one field's key is its value). Within the key, the spec runs in one stage and " +
						"workers dead-letter records whose key contradicts it as `mis_keyed`. Unset (unknown), or any other fields, and a spec with final outputs runs in two " +
						"stages through its repartition topic: see `stages` and `repartition_topic`. The plan of a new or changed spec reads the input topic's 20 newest records " +
						"of every partition and refuses a field (here, in `key` or `time_field`) that none of them has."},
					"idle_timeout": str("A partition that the broker says has had nothing to read for this long (at least `1s`) advances its watermark by the wall clock, " +
						"so its windows close at most `idle_timeout` + `allowed_lateness` after their end. Unset: windows wait for records. Not for " + code(spec.FormatPartials) + "."),
				},
			},
			"aggregation": schema.ListNestedBlock{
				MarkdownDescription: "A function computed per (series, window). Adding, removing, renaming or reordering aggregations migrates the workers' state in place.",
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"name": computedStr("Output column: 1-48 of a-z, 0-9 and `_`, unlike any key field's column or another aggregation's. Default " +
						code(spec.FnCount) + " for " + code(spec.FnCount) + ", otherwise `<fn>_<field>` (dots in the field becoming underscores)."),
					"fn":    enum("The function: "+oneOf(spec.Functions)+".", spec.Functions),
					"field": str("The record field the function reads. Not for " + code(spec.FnCount) + "."),
					"precision": schema.Int64Attribute{Optional: true, Computed: true, MarkdownDescription: "HyperLogLog precision of " + code(spec.FnDistinct) +
						", 4-18. Default " + code(spec.DefaultPrecision) + " (about " + hllError(spec.DefaultPrecision) + " % error)."},
					"relative_accuracy": schema.Float64Attribute{Optional: true, Computed: true, MarkdownDescription: "DDSketch relative accuracy of " +
						code(spec.FnQuantiles) + ". Default " + code(float(spec.DefaultRelativeAccuracy)) + "."},
					"quantiles": schema.ListAttribute{ElementType: types.Float64Type, Optional: true, Computed: true, MarkdownDescription: "Ranks " +
						code(spec.FnQuantiles) + " reports, a column each (`<name>_p50` for 0.5). Default " + floats(spec.DefaultQuantiles) + "."},
					"type": enum("What "+code(spec.FnLast)+" keeps: "+oneOf(spec.ValueTypes)+". Default "+code(spec.TypeNumber)+"; "+code(spec.TypeText)+
						" keeps the field's value as text, in a text column.", spec.ValueTypes),
				}},
			},
			"output": schema.ListNestedBlock{
				MarkdownDescription: "A destination for closed windows.",
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"type": enum("Where closed windows go: "+oneOf(spec.OutputTypes)+".", spec.OutputTypes),
					"partial": schema.BoolAttribute{Optional: true, MarkdownDescription: "Emit mergeable partial states for a next level instead of final values. " +
						"Only for type " + oneOf(spec.PartialTypes) + "."},
					"key":      schema.ListAttribute{ElementType: types.StringType, Optional: true, MarkdownDescription: "For partial outputs: the subset of the key the partials are partitioned by."},
					"keyspace": str("Cassandra keyspace. " + cassandra),
					"table":    str("Cassandra table. " + cassandra),
					"ttl":      str("Expiry of Cassandra rows, such as `720h` or `30d`. " + cassandra),
					"url":      str("`s3://bucket/prefix`. " + outputOnly(spec.OutputS3)),
					"topic":    str("Kafka topic. " + kafka),
					"path":     str("Folder for `.jsonl` files. " + outputOnly(spec.OutputFile)),
				}},
			},
		},
	}
}

func (r *aggregationSpec) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*clients); ok {
		r.c = c
	}
}

// document renders the model as a spec document; ok is false while a value is unknown.
func (m *specModel) document(ctx context.Context) (map[string]any, bool) {
	known := true
	s := func(v types.String) any {
		if v.IsUnknown() {
			known = false
		}
		if v.IsNull() || v.IsUnknown() {
			return nil
		}
		return v.ValueString()
	}
	list := func(v types.List) any {
		if v.IsUnknown() {
			known = false
			return nil
		}
		if v.IsNull() {
			return nil
		}
		for _, e := range v.Elements() {
			if e.IsUnknown() {
				known = false
			}
		}
		var out []any
		switch v.ElementType(ctx) {
		case types.Float64Type:
			var f []float64
			v.ElementsAs(ctx, &f, false)
			for _, x := range f {
				out = append(out, x)
			}
		default:
			var ss []string
			v.ElementsAs(ctx, &ss, false)
			for _, x := range ss {
				out = append(out, x)
			}
		}
		return out
	}
	i64 := func(v types.Int64) any {
		if v.IsUnknown() {
			known = false
		}
		if v.IsNull() || v.IsUnknown() {
			return nil
		}
		return v.ValueInt64()
	}
	doc := map[string]any{"name": s(m.Name), "key": list(m.Key), "windows": list(m.Windows), "allowed_lateness": s(m.AllowedLateness),
		"on_incompatible_change": s(m.OnIncompatible)}
	if m.Input != nil {
		doc["input"] = map[string]any{"topic": s(m.Input.Topic), "format": s(m.Input.Format), "time_field": s(m.Input.TimeField),
			"time_unit": s(m.Input.TimeUnit), "max_future_skew": s(m.Input.MaxFutureSkew), "max_record_bytes": i64(m.Input.MaxRecordBytes),
			"partitioned_by": list(m.Input.PartitionedBy), "idle_timeout": s(m.Input.IdleTimeout)}
	}
	var aggs []any
	for _, a := range m.Aggregations {
		ra := any(nil)
		if !a.RelativeAccuracy.IsNull() && !a.RelativeAccuracy.IsUnknown() {
			ra = a.RelativeAccuracy.ValueFloat64()
		}
		aggs = append(aggs, map[string]any{"name": s(a.Name), "fn": s(a.Fn), "field": s(a.Field), "precision": i64(a.Precision),
			"relative_accuracy": ra, "quantiles": list(a.Quantiles), "type": s(a.Type)})
	}
	doc["aggregations"] = aggs
	var outs []any
	for _, o := range m.Outputs {
		partial := any(nil)
		if !o.Partial.IsNull() && !o.Partial.IsUnknown() {
			partial = o.Partial.ValueBool()
		}
		outs = append(outs, map[string]any{"type": s(o.Type), "partial": partial, "key": list(o.Key), "keyspace": s(o.Keyspace),
			"table": s(o.Table), "ttl": s(o.TTL), "url": s(o.URL), "topic": s(o.Topic), "path": s(o.Path)})
	}
	doc["outputs"] = outs
	prune(doc)
	return doc, known
}

// prune drops nil values, so absent attributes are absent keys.
func prune(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if x == nil {
				delete(t, k)
				continue
			}
			prune(x)
		}
	case []any:
		for _, x := range t {
			prune(x)
		}
	}
}

// specPath maps a spec field path to the resource's attribute path.
func specPath(p string) tfpath.Path {
	p = strings.Replace(p, "aggregations[", "aggregation[", 1)
	p = strings.Replace(p, "outputs[", "output[", 1)
	if p == "aggregations" {
		p = "aggregation"
	}
	if p == "outputs" {
		p = "output"
	}
	return pathOf(p)
}

// parse checks the model with the spec package; each problem is a diagnostic on its attribute.
func (m *specModel) parse(ctx context.Context) (*spec.Spec, diag.Diagnostics, bool) {
	var d diag.Diagnostics
	doc, known := m.document(ctx)
	if !known {
		return nil, d, false
	}
	y, err := yamlMarshal(doc)
	if err != nil {
		d.AddError("spec", err.Error())
		return nil, d, true
	}
	s, err := spec.Parse(y)
	var fes spec.Errors
	if errors.As(err, &fes) {
		for _, fe := range fes {
			if fe.Path == "" {
				d.AddError("invalid aggregation spec", fe.Msg)
			} else {
				d.AddAttributeError(specPath(fe.Path), "invalid aggregation spec", fe.Path+": "+fe.Msg)
			}
		}
		return nil, d, true
	}
	if err != nil {
		d.AddError("invalid aggregation spec", err.Error())
		return nil, d, true
	}
	return s, d, true
}

func (r *aggregationSpec) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	// A spec built from values not known yet (a module's for_each, a reference) is checked
	// once they are: in the plan, or at the latest at apply.
	if !req.Config.Raw.IsFullyKnown() {
		return
	}
	var m specModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	_, d, _ := m.parse(ctx)
	// A value outside an attribute's allowed list fails its OneOf validator, which runs in
	// the same validation: the engine's message about the same value would say it twice.
	rejected := m.rejectedByValidators()
	for _, e := range d {
		if wp, ok := e.(diag.DiagnosticWithPath); ok && rejected[wp.Path().String()] {
			continue
		}
		resp.Diagnostics.Append(e)
	}
}

// rejectedByValidators lists the attribute paths whose value the schema's OneOf validators
// reject, the same lists the engine checks them against.
func (m *specModel) rejectedByValidators() map[string]bool {
	bad := map[string]bool{}
	check := func(p string, v types.String, allowed []string) {
		if !v.IsNull() && !v.IsUnknown() && !slices.Contains(allowed, v.ValueString()) {
			bad[specPath(p).String()] = true
		}
	}
	if m.Input != nil {
		check("input.format", m.Input.Format, spec.Formats)
		check("input.time_unit", m.Input.TimeUnit, spec.TimeUnits)
	}
	for i, a := range m.Aggregations {
		check(fmt.Sprintf("aggregations[%d].fn", i), a.Fn, spec.Functions)
		check(fmt.Sprintf("aggregations[%d].type", i), a.Type, spec.ValueTypes)
	}
	for i, o := range m.Outputs {
		check(fmt.Sprintf("outputs[%d].type", i), o.Type, spec.OutputTypes)
	}
	return bad
}

// ModifyPlan plans the stored document from the configuration, so a stored spec changed
// outside Terraform (which Read puts in state) shows as a difference to put right.
func (r *aggregationSpec) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	// The configuration, not the plan: in the plan, attributes the spec computes (defaults)
	// are unknown, in the configuration they are absent.
	if !req.Config.Raw.IsFullyKnown() {
		return
	}
	var m specModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s, d, known := m.parse(ctx)
	resp.Diagnostics.Append(d...)
	if !known || s == nil {
		return
	}
	var prior specModel
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	}
	y, err := versioned(s, prior.YAML.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("spec", err.Error())
		return
	}
	// The plan is what apply will store: the configuration's values in its own spelling, and
	// the spec's defaults for what it leaves out. A value removed from the configuration thus
	// plans its default, where keeping the prior value would plan something apply does not do.
	planned := m
	planned.fill(ctx, s, string(y), "", "")
	planned.keepConfigured(&m)
	planned.Location = types.StringUnknown()
	if bucket, prefix, err := r.registry(); err == nil {
		planned.Location = types.StringValue("s3://" + bucket + "/" + r.objectKey(prefix, s.Name))
	}
	planned.Version = types.StringUnknown()
	planned.Change = types.StringValue(string(spec.ActionNewSpec) + ": workers start from the start of the input topic")
	switch {
	case prior.YAML.ValueString() == string(y):
		planned.Version, planned.Change = prior.Version, prior.Change
	case !req.State.Raw.IsNull():
		planned.Change = r.describeChange(ctx, prior, s, resp)
	}
	if prior.YAML.ValueString() != string(y) {
		r.checkRecords(ctx, s, resp)
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &planned)...)
}

// versioned renders the spec as it will be stored: with the previous revision's number when
// nothing else differs from what is stored (so a spelling-only change stores nothing), and
// with the next number otherwise (1 for a new spec).
func versioned(s *spec.Spec, priorYAML string) ([]byte, error) {
	s.Version = 0
	if old, err := spec.Parse([]byte(priorYAML)); err == nil {
		s.Version = old.Version
	}
	y, err := spec.Marshal(s)
	if err != nil || string(y) == priorYAML {
		return y, err
	}
	s.Version++
	return spec.Marshal(s)
}

// describeChange says in the plan what the workers will do with the stored revision's
// checkpoints when next replaces it, by spec.Diff's rule (the rule the workers apply), and
// refuses a change that cannot be carried out with the input topic as it is. It returns the
// plan's summary for the change attribute.
func (r *aggregationSpec) describeChange(ctx context.Context, prior specModel, next *spec.Spec, resp *resource.ModifyPlanResponse) types.String {
	old, err := spec.Parse([]byte(prior.YAML.ValueString()))
	if err != nil {
		return types.StringValue(string(spec.ActionNone) + ": the stored spec does not parse, so there is nothing to compare with")
	}
	p := spec.Diff(old, next)
	var lines []string
	for _, c := range p.Changes {
		lines = append(lines, fmt.Sprintf("- %s: %s (%s: %s)", c.Field, c.What, c.Effect, c.Note))
	}
	detail := fmt.Sprintf("Spec %s, version %d -> %d. What its workers will do: %s.\n%s\n%s", next.Name, old.Version, next.Version, p.Action,
		strings.Join(lines, "\n"), p.Explain(old, next))
	resp.Diagnostics.AddWarning("spec change: "+string(p.Action), detail)
	if err := p.Refuse(old, next); err != nil {
		attr := tfpath.Root("key")
		if p.Action == spec.ActionBackfill {
			attr = tfpath.Root("on_incompatible_change")
		}
		resp.Diagnostics.AddAttributeError(attr, "spec change cannot be carried out", err.Error())
	} else if p.Action == spec.ActionFromOffsets || p.Action == spec.ActionBackfill {
		h, err := r.inputHistory(ctx, next.Input.Topic)
		if err != nil {
			resp.Diagnostics.AddWarning("spec change not checked against its input topic",
				fmt.Sprintf("%s: %v. A %s that the topic cannot support is refused by the workers instead.", next.Input.Topic, err, p.Action))
		} else if err := p.Check(old, next, h); err != nil {
			resp.Diagnostics.AddAttributeError(tfpath.Root("on_incompatible_change"), "spec change cannot be carried out", err.Error())
		}
	}
	return types.StringValue(p.Summary())
}

// checkRecords reads the newest records of a new or changed spec's input topic and checks
// them against it: a field the spec reads records by (partitioned_by, key, time field) that
// none of them has is an error on its attribute, since every record would be dead-lettered or
// the declared keying could not be true; problems of single records are a warning. Without
// Kafka settings, or with a topic that does not exist or holds nothing yet, there is nothing
// to check.
func (r *aggregationSpec) checkRecords(ctx context.Context, s *spec.Spec, resp *resource.ModifyPlanResponse) {
	if r.c == nil || len(r.c.brokers) == 0 || s.Input.Format != spec.FormatJSON {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	samples, err := specsrc.ReadTopicSample(ctx, slices.Clip(r.c.kafkaOpts), s.Input.Topic, specsrc.SampleRecords)
	if err != nil {
		resp.Diagnostics.AddWarning("spec not checked against its input's records", fmt.Sprintf("%s: %v", s.Input.Topic, err))
		return
	}
	if len(samples) == 0 {
		return
	}
	rep, err := specsrc.CheckSample(s, samples)
	if err != nil {
		resp.Diagnostics.AddWarning("spec not checked against its input's records", err.Error())
		return
	}
	for _, a := range rep.Absent {
		resp.Diagnostics.AddAttributeError(specPath(a.Attr), "the input's records lack a field the spec reads them by",
			fmt.Sprintf("%s: none of the %d newest records of %s has the field %q. Fix the field's name, or the producers.", a.Attr, rep.Records, s.Input.Topic, a.Field))
	}
	if len(rep.Absent) == 0 && len(rep.Problems) > 0 {
		resp.Diagnostics.AddWarning("some of the input's records do not fit the spec",
			fmt.Sprintf("Of the %d newest records of %s, these would be dead-lettered or contradict the declared keying:\n%s",
				rep.Records, s.Input.Topic, strings.Join(rep.Problems, "\n")))
	}
}

// inputHistory reads what the input topic still holds, through the provider's Kafka settings.
func (r *aggregationSpec) inputHistory(ctx context.Context, topic string) (spec.History, error) {
	if r.c == nil {
		return spec.History{}, errors.New("the provider is not configured")
	}
	cl, err := r.c.kafka()
	if err != nil {
		return spec.History{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return specsrc.TopicHistory(ctx, kadm.NewClient(cl), topic)
}

func (r *aggregationSpec) registry() (bucket, prefix string, err error) {
	return r.c.registryLocation()
}

// registryLocation is the spec registry's bucket and key prefix.
func (c *clients) registryLocation() (bucket, prefix string, err error) {
	if c == nil || c.s3 == nil {
		return "", "", fmt.Errorf("the provider has no spec registry: set spec_registry.location (s3://bucket/prefix) or LIVEAGG_SPEC_REGISTRY")
	}
	u, err := url.Parse(c.registry)
	if err != nil {
		return "", "", err
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// storedSpecWriting finds the one spec in the registry with a cassandra output to
// keyspace.table and returns it as stored: the text of its aggregation spec's yaml attribute.
// ok is false without a registry, or when no spec or several write the table.
func (c *clients) storedSpecWriting(ctx context.Context, keyspace, table string) (doc string, ok bool) {
	bucket, prefix, err := c.registryLocation()
	if err != nil {
		return "", false
	}
	if prefix != "" {
		prefix += "/"
	}
	var found []string
	pages := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return "", false
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasSuffix(key, ".yaml") || strings.Contains(strings.TrimPrefix(key, prefix), "/") {
				continue
			}
			out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				continue
			}
			y, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				continue
			}
			s, err := spec.Parse(y)
			if err != nil {
				continue
			}
			for _, o := range s.Outputs {
				if o.Type == spec.OutputCassandra && o.Keyspace == keyspace && o.Table == table {
					found = append(found, string(y))
					break
				}
			}
		}
	}
	if len(found) != 1 {
		return "", false
	}
	return found[0], true
}

func (r *aggregationSpec) objectKey(prefix, name string) string {
	return path.Join(prefix, name+".yaml")
}

// write stores the spec the model describes, unless prior (the state, on update) holds it
// already: the model then only changes its spelling, and uploading the same YAML again could
// change the object's version (an ETag under SSE-KMS) and restart every worker on it.
func (r *aggregationSpec) write(ctx context.Context, m *specModel, prior *specModel) diag.Diagnostics {
	var d diag.Diagnostics
	s, pd, _ := m.parse(ctx)
	d.Append(pd...)
	if d.HasError() || s == nil {
		return d
	}
	bucket, prefix, err := r.registry()
	if err != nil {
		d.AddError("spec registry", err.Error())
		return d
	}
	priorYAML := ""
	if prior != nil {
		priorYAML = prior.YAML.ValueString()
	}
	y, err := versioned(s, priorYAML)
	if err != nil {
		d.AddError("spec", err.Error())
		return d
	}
	key := r.objectKey(prefix, s.Name)
	if prior != nil && !prior.Version.IsNull() && !prior.Version.IsUnknown() && prior.YAML.ValueString() == string(y) {
		cfg := *m
		m.fill(ctx, s, string(y), "s3://"+bucket+"/"+key, prior.Version.ValueString())
		m.keepConfigured(&cfg)
		return d
	}
	out, err := r.c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(y),
		ContentType: aws.String("application/yaml")})
	if err != nil {
		d.AddError("store spec", fmt.Sprintf("s3://%s/%s: %v", bucket, key, err))
		return d
	}
	cfg := *m
	m.fill(ctx, s, string(y), "s3://"+bucket+"/"+key, strings.Trim(aws.ToString(out.ETag), `"`))
	m.keepConfigured(&cfg)
	return d
}

// keepConfigured puts back every value the configuration set, in its own spelling ("120s"
// stays "120s" though the spec says 2m), so the state matches the plan; what the
// configuration left out keeps the spec's defaults.
func (m *specModel) keepConfigured(cfg *specModel) {
	keepS := func(dst *types.String, v types.String) {
		if !v.IsNull() {
			*dst = v
		}
	}
	keepL := func(dst *types.List, v types.List) {
		if !v.IsNull() {
			*dst = v
		}
	}
	keepL(&m.Key, cfg.Key)
	keepL(&m.Windows, cfg.Windows)
	keepS(&m.AllowedLateness, cfg.AllowedLateness)
	keepS(&m.OnIncompatible, cfg.OnIncompatible)
	if cfg.Input != nil && m.Input != nil {
		keepS(&m.Input.Topic, cfg.Input.Topic)
		keepS(&m.Input.Format, cfg.Input.Format)
		keepS(&m.Input.TimeField, cfg.Input.TimeField)
		keepS(&m.Input.TimeUnit, cfg.Input.TimeUnit)
		keepS(&m.Input.MaxFutureSkew, cfg.Input.MaxFutureSkew)
		if !cfg.Input.MaxRecordBytes.IsNull() {
			m.Input.MaxRecordBytes = cfg.Input.MaxRecordBytes
		}
		keepL(&m.Input.PartitionedBy, cfg.Input.PartitionedBy)
		keepS(&m.Input.IdleTimeout, cfg.Input.IdleTimeout)
	}
	if cfg.Input == nil {
		m.Input = nil
	}
	for i := range min(len(m.Aggregations), len(cfg.Aggregations)) {
		a, c := &m.Aggregations[i], cfg.Aggregations[i]
		keepS(&a.Name, c.Name)
		keepS(&a.Fn, c.Fn)
		keepS(&a.Field, c.Field)
		if !c.Precision.IsNull() {
			a.Precision = c.Precision
		}
		if !c.RelativeAccuracy.IsNull() {
			a.RelativeAccuracy = c.RelativeAccuracy
		}
		keepL(&a.Quantiles, c.Quantiles)
		keepS(&a.Type, c.Type)
	}
	// Outputs have no defaults: the configuration is the state.
	m.Outputs = cfg.Outputs
}

// fill sets the model from a stored spec: every field, defaults included, so a spec edited
// outside Terraform, or imported, reads back completely.
func (m *specModel) fill(ctx context.Context, s *spec.Spec, y, location, version string) {
	str := func(v string) types.String {
		if v == "" {
			return types.StringNull()
		}
		return types.StringValue(v)
	}
	dur := func(v spec.Duration) types.String {
		if v == 0 {
			return types.StringNull()
		}
		return types.StringValue(v.String())
	}
	strList := func(v []string) types.List {
		if len(v) == 0 {
			return types.ListNull(types.StringType)
		}
		l, _ := types.ListValueFrom(ctx, types.StringType, v)
		return l
	}
	m.ID, m.Name = types.StringValue(s.Name), types.StringValue(s.Name)
	m.Key = strList(s.Key)
	var ws []string
	for _, w := range s.Windows {
		ws = append(ws, w.String())
	}
	m.Windows = strList(ws)
	m.AllowedLateness = dur(s.AllowedLateness)
	m.SpecVersion = types.Int64Value(int64(s.Version))
	stages := s.Stages()
	m.Stages, m.Repartition = types.Int64Value(int64(len(stages))), types.StringNull()
	if len(stages) > 1 {
		m.Repartition = types.StringValue(stages[1].Input.Topic)
	}
	m.Execution = types.StringValue(strings.Join(s.Explain(), "\n"))
	m.OnIncompatible = str(s.OnIncompatibleChange)
	m.Input = &inputModel{Topic: str(s.Input.Topic), Format: str(s.Input.Format), TimeField: str(s.Input.TimeField),
		TimeUnit: str(s.Input.TimeUnit), MaxFutureSkew: dur(s.Input.MaxFutureSkew), MaxRecordBytes: types.Int64Value(int64(s.Input.MaxRecordBytes)),
		PartitionedBy: strList(s.Input.PartitionedBy), IdleTimeout: dur(s.Input.IdleTimeout)}
	if s.Input.Format == spec.FormatPartials {
		m.Input.MaxFutureSkew = types.StringNull()
	}
	m.Aggregations = nil
	for _, a := range s.Aggregations {
		am := aggModel{Name: str(a.Name), Fn: str(a.Fn), Field: str(a.Field), Precision: types.Int64Null(),
			RelativeAccuracy: types.Float64Null(), Quantiles: types.ListNull(types.Float64Type), Type: str(a.Type)}
		if a.Fn == spec.FnDistinct {
			am.Precision = types.Int64Value(int64(a.Precision))
		}
		if a.Fn == spec.FnQuantiles {
			am.RelativeAccuracy = types.Float64Value(a.RelativeAccuracy)
			am.Quantiles, _ = types.ListValueFrom(ctx, types.Float64Type, a.Quantiles)
		}
		m.Aggregations = append(m.Aggregations, am)
	}
	m.Outputs = nil
	for _, o := range s.Outputs {
		om := outModel{Type: str(o.Type), Partial: types.BoolNull(), Key: strList(o.Key), Keyspace: str(o.Keyspace), Table: str(o.Table),
			TTL: dur(o.TTL), URL: str(o.URL), Topic: str(o.Topic), Path: str(o.Path)}
		if o.Partial {
			om.Partial = types.BoolValue(true)
		}
		m.Outputs = append(m.Outputs, om)
	}
	m.YAML, m.Location, m.Version = types.StringValue(y), types.StringValue(location), types.StringValue(version)
}

func (r *aggregationSpec) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m specModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.write(ctx, &m, nil)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, tfpath.Root("change"), &m.Change)...)
	if m.Change.IsUnknown() {
		m.Change = types.StringNull()
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *aggregationSpec) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior specModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.write(ctx, &m, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, tfpath.Root("change"), &m.Change)...)
	if m.Change.IsUnknown() {
		m.Change = types.StringNull()
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *aggregationSpec) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m specModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	bucket, prefix, err := r.registry()
	if err != nil {
		resp.Diagnostics.AddError("spec registry", err.Error())
		return
	}
	name := m.ID.ValueString()
	key := r.objectKey(prefix, name)
	out, err := r.c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var nsk *s3types.NoSuchKey
	if errors.As(err, &nsk) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("read spec", fmt.Sprintf("s3://%s/%s: %v", bucket, key, err))
		return
	}
	defer out.Body.Close()
	y, err := io.ReadAll(out.Body)
	if err != nil {
		resp.Diagnostics.AddError("read spec", err.Error())
		return
	}
	s, err := spec.Parse(y)
	if err != nil {
		// Someone stored something workers would refuse: keep what the state says and show
		// the stored text, so the plan writes a valid spec back.
		resp.Diagnostics.AddWarning("stored spec is invalid", fmt.Sprintf("s3://%s/%s: %v; the next apply rewrites it", bucket, key, err))
		m.YAML = types.StringValue(string(y))
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
		return
	}
	prior := m
	m.fill(ctx, s, string(y), "s3://"+bucket+"/"+key, strings.Trim(aws.ToString(out.ETag), `"`))
	if sameSpec(ctx, &prior, s) {
		// The stored spec means what the state says: keep the state's spelling ("60s" where
		// the store says 1m), or every plan would show the configuration's text as a change.
		prior.YAML, prior.Location, prior.Version = m.YAML, m.Location, m.Version
		m = prior
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// sameSpec reports whether the model, read from state, describes the stored spec s.
func sameSpec(ctx context.Context, m *specModel, s *spec.Spec) bool {
	ms, d, _ := m.parse(ctx)
	if d.HasError() || ms == nil {
		return false
	}
	ms.Version = s.Version // not configured: the store numbers revisions
	a, err1 := spec.Marshal(ms)
	b, err2 := spec.Marshal(s)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

func (r *aggregationSpec) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m specModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	bucket, prefix, err := r.registry()
	if err != nil {
		resp.Diagnostics.AddError("spec registry", err.Error())
		return
	}
	if _, err := r.c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(r.objectKey(prefix, m.ID.ValueString()))}); err != nil {
		resp.Diagnostics.AddError("delete spec", err.Error())
	}
}

func (r *aggregationSpec) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, tfpath.Root("id"), req.ID)...)
}
