package tfprovider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gocql/gocql"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	tfpath "github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
)

var (
	_ resource.ResourceWithConfigure   = (*rollupTable)(nil)
	_ resource.ResourceWithModifyPlan  = (*rollupTable)(nil)
	_ resource.ResourceWithImportState = (*rollupTable)(nil)
	_ planmodifier.String              = sameDuration{}
)

type rollupTable struct{ c *clients }

func newRollupTable() resource.Resource { return &rollupTable{} }

type rollupModel struct {
	ID          types.String `tfsdk:"id"`
	Spec        types.String `tfsdk:"spec"`
	Keyspace    types.String `tfsdk:"keyspace"`
	Table       types.String `tfsdk:"table"`
	Replication types.Map    `tfsdk:"replication"`
	TTL         types.String `tfsdk:"ttl"`
	KeyFields   types.List   `tfsdk:"key_fields"`
	Columns     types.Map    `tfsdk:"columns"`
}

func (r *rollupTable) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_rollup_table"
}

func (r *rollupTable) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The Cassandra keyspace and table of a spec's Cassandra output, derived from the spec exactly as the workers' sink creates it: a row per (series, window size, window start), a column per aggregation value. New value columns are added and dropped ones removed in place, replication and TTL change in place; a change of primary key, which Cassandra cannot alter, replaces the table.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "`keyspace.table`, the import ID.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"spec": schema.StringAttribute{Required: true, MarkdownDescription: "The spec document (the `yaml` attribute of a `liveagg_aggregation_spec`); the table is the one its `" + spec.OutputCassandra + "` output with this keyspace and table names. " +
				"An import reads it from the spec registry: the one stored spec with that output."},
			"keyspace": schema.StringAttribute{Required: true, MarkdownDescription: "Keyspace; created if missing. Changing it creates a new table.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"table": schema.StringAttribute{Required: true, MarkdownDescription: "Table. Changing it creates a new table.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"replication": schema.MapAttribute{ElementType: types.StringType, Optional: true, MarkdownDescription: "The keyspace's replication, such as `{ class = \"NetworkTopologyStrategy\", us-east = \"3\" }`; default `SimpleStrategy` with one replica. Changed in place."},
			"ttl": schema.StringAttribute{Optional: true, MarkdownDescription: "Rows expire this long after they are written, such as `2160h` or `90d` (the table's `default_time_to_live`); when unset, the spec's Cassandra output's `ttl`, if any. Changed in place; the same duration spelt otherwise (`720h` for `30d`) is no change.",
				PlanModifiers: []planmodifier.String{sameDuration{}}},
			"key_fields": schema.ListAttribute{ElementType: types.StringType, Computed: true, MarkdownDescription: "The series key columns, from the spec (with `window_size`, the partition key; `window_start` clusters)."},
			"columns":    schema.MapAttribute{ElementType: types.StringType, Computed: true, MarkdownDescription: "Value columns and their CQL types, from the spec's aggregations."},
		},
	}
}

// sameDuration plans the state's ttl when the configuration spells the same duration
// otherwise. Read writes the table's TTL in the spec's spelling ("30d") whenever the state has
// none to keep, as after an import, and "720h" in the configuration is then no change.
type sameDuration struct{}

func (sameDuration) Description(context.Context) string {
	return "the same duration spelt otherwise keeps the state's spelling"
}
func (m sameDuration) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }
func (sameDuration) PlanModifyString(_ context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.StateValue.IsNull() || req.PlanValue.IsNull() || req.PlanValue.IsUnknown() || req.StateValue.Equal(req.PlanValue) {
		return
	}
	prior, err1 := spec.ParseDuration(req.StateValue.ValueString())
	planned, err2 := spec.ParseDuration(req.PlanValue.ValueString())
	if err1 == nil && err2 == nil && prior == planned {
		resp.PlanValue = req.StateValue
	}
}

func (r *rollupTable) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*clients); ok {
		r.c = c
	}
}

// derive finds the spec's output for this table and the key fields and columns it writes.
func derive(specDoc, keyspace, table string) (keys []string, cols map[string]string, ttl spec.Duration, err error) {
	s, err := spec.Parse([]byte(specDoc))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("spec: %w", err)
	}
	found := false
	for _, o := range s.Outputs {
		if o.Type == spec.OutputCassandra && o.Keyspace == keyspace && o.Table == table {
			found, ttl = true, o.TTL
		}
	}
	if !found {
		return nil, nil, 0, fmt.Errorf("spec %s has no cassandra output to %s.%s", s.Name, keyspace, table)
	}
	layout, err := agg.LayoutOf(s)
	if err != nil {
		return nil, nil, 0, err
	}
	cols = map[string]string{}
	for _, c := range sink.Columns(layout) {
		cols[c.CQLName()] = c.CQLType()
	}
	for _, k := range s.Key {
		keys = append(keys, strings.ReplaceAll(k, ".", "_"))
	}
	return keys, cols, ttl, nil
}

func (r *rollupTable) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan, state rollupModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if plan.Spec.IsUnknown() || plan.Keyspace.IsUnknown() || plan.Table.IsUnknown() {
		return
	}
	keys, cols, _, err := derive(plan.Spec.ValueString(), plan.Keyspace.ValueString(), plan.Table.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(tfpath.Root("spec"), "rollup table", err.Error())
		return
	}
	kl, d := types.ListValueFrom(ctx, types.StringType, keys)
	resp.Diagnostics.Append(d...)
	cm, d := types.MapValueFrom(ctx, types.StringType, cols)
	resp.Diagnostics.Append(d...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, tfpath.Root("key_fields"), kl)...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, tfpath.Root("columns"), cm)...)
	if req.State.Raw.IsNull() {
		return
	}
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	var oldKeys []string
	var oldCols map[string]string
	state.KeyFields.ElementsAs(ctx, &oldKeys, false)
	state.Columns.ElementsAs(ctx, &oldCols, false)
	if !slices.Equal(oldKeys, keys) {
		resp.RequiresReplace = append(resp.RequiresReplace, tfpath.Root("key_fields"))
	}
	for c, t := range cols {
		if old, ok := oldCols[c]; ok && old != t {
			resp.RequiresReplace = append(resp.RequiresReplace, tfpath.Root("columns"))
		}
	}
}

func (r *rollupTable) apply(ctx context.Context, m *rollupModel, prior *rollupModel) diag.Diagnostics {
	var d diag.Diagnostics
	sess, err := r.c.cassandra()
	if err != nil {
		d.AddError("cassandra", err.Error())
		return d
	}
	defer sess.Close()
	ks, tb := m.Keyspace.ValueString(), m.Table.ValueString()
	keys, cols, specTTL, err := derive(m.Spec.ValueString(), ks, tb)
	if err != nil {
		d.AddAttributeError(tfpath.Root("spec"), "rollup table", err.Error())
		return d
	}
	repl := map[string]string{}
	m.Replication.ElementsAs(ctx, &repl, false)
	if len(repl) == 0 {
		repl = map[string]string{"class": "SimpleStrategy", "replication_factor": "1"}
	}
	colNames := make([]string, 0, len(cols))
	for c := range cols {
		colNames = append(colNames, c)
	}
	sort.Strings(colNames)
	columns := make([]sink.Column, 0, len(colNames))
	for _, n := range colNames {
		c, ok := sink.ColumnOfCQL(n, cols[n])
		if !ok {
			d.AddAttributeError(tfpath.Root("spec"), "rollup table", fmt.Sprintf("column %s: type %q is not one liveagg writes", n, cols[n]))
			return d
		}
		columns = append(columns, c)
	}
	stmts := sink.CassandraDDL(sink.CassandraConfig{Keyspace: ks, Table: tb, Replication: repl}, keys, columns)
	if prior != nil {
		// In place: replication, new and dropped columns.
		stmts = []string{fmt.Sprintf("ALTER KEYSPACE %s WITH replication = {%s}", ks, cqlMap(repl))}
		var oldCols map[string]string
		prior.Columns.ElementsAs(ctx, &oldCols, false)
		for _, c := range colNames {
			if _, ok := oldCols[c]; !ok {
				stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s.%s ADD %s %s", ks, tb, c, cols[c]))
			}
		}
		for c := range oldCols {
			if _, ok := cols[c]; !ok {
				stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s.%s DROP %s", ks, tb, c))
			}
		}
	}
	ttl := time.Duration(0)
	if v := m.TTL.ValueString(); v != "" {
		sd, perr := spec.ParseDuration(v) // the spec's own spelling (30d) as well as Go's
		if ttl = sd.Std(); perr != nil || ttl < 0 {
			d.AddAttributeError(tfpath.Root("ttl"), "ttl", fmt.Sprintf("%q is not a duration such as 90d or 2160h", v))
			return d
		}
	} else if specTTL > 0 {
		ttl = specTTL.Std()
	}
	stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s.%s WITH default_time_to_live = %d", ks, tb, int(ttl.Seconds())))
	for _, q := range stmts {
		if err := sess.Query(q).WithContext(ctx).Exec(); err != nil {
			d.AddError("cassandra", fmt.Sprintf("%s: %v", q, err))
			return d
		}
	}
	m.ID = types.StringValue(ks + "." + tb)
	kl, dd := types.ListValueFrom(ctx, types.StringType, keys)
	d.Append(dd...)
	cm, dd := types.MapValueFrom(ctx, types.StringType, cols)
	d.Append(dd...)
	m.KeyFields, m.Columns = kl, cm
	return d
}

func cqlMap(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("'%s': '%s'", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func (r *rollupTable) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m rollupModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.apply(ctx, &m, nil)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *rollupTable) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior rollupModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.apply(ctx, &m, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Read puts the table as Cassandra has it in state: a table dropped, a column added or dropped,
// or a TTL or replication changed out of band all show in the next plan.
func (r *rollupTable) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m rollupModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if m.Keyspace.ValueString() == "" {
		ks, tb, ok := strings.Cut(m.ID.ValueString(), ".")
		if !ok {
			resp.Diagnostics.AddError("import", fmt.Sprintf("%q is not keyspace.table", m.ID.ValueString()))
			return
		}
		m.Keyspace, m.Table = types.StringValue(ks), types.StringValue(tb)
	}
	if m.Spec.IsNull() {
		// Imported: the configuration's spec is usually an aggregation spec's yaml, which is
		// the document stored in the registry. Without it the plan would set spec, a change
		// that changes nothing.
		if doc, ok := r.c.storedSpecWriting(ctx, m.Keyspace.ValueString(), m.Table.ValueString()); ok {
			m.Spec = types.StringValue(doc)
		}
	}
	sess, err := r.c.cassandra()
	if err != nil {
		resp.Diagnostics.AddError("cassandra", err.Error())
		return
	}
	defer sess.Close()
	ks, tb := m.Keyspace.ValueString(), m.Table.ValueString()
	var ttl int
	if err := sess.Query(`SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?`, ks, tb).
		WithContext(ctx).Scan(&ttl); err != nil {
		if errors.Is(err, gocql.ErrNotFound) {
			resp.State.RemoveResource(ctx) // dropped out of band: the next plan creates it
			return
		}
		// A timeout or an auth failure is not a missing table: dropping it from the state
		// would plan to create a table that exists.
		resp.Diagnostics.AddError("cassandra", fmt.Sprintf("read %s.%s: %v", ks, tb, err))
		return
	}
	iter := sess.Query(`SELECT column_name, kind, position, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?`, ks, tb).WithContext(ctx).Iter()
	var name, kind, typ string
	var pos int
	type keyCol struct {
		name string
		pos  int
	}
	var keyCols []keyCol
	cols := map[string]string{}
	for iter.Scan(&name, &kind, &pos, &typ) {
		switch {
		case kind == "partition_key" && name != "window_size":
			keyCols = append(keyCols, keyCol{name, pos})
		case kind == "regular" && name != "window_end":
			cols[name] = typ
		}
	}
	if err := iter.Close(); err != nil {
		resp.Diagnostics.AddError("cassandra", err.Error())
		return
	}
	sort.Slice(keyCols, func(i, j int) bool { return keyCols[i].pos < keyCols[j].pos })
	var keys []string
	for _, k := range keyCols {
		keys = append(keys, k.name)
	}
	var repl map[string]string
	if err := sess.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks).WithContext(ctx).Scan(&repl); err == nil && !m.Replication.IsNull() {
		// Cassandra spells the class in full; keep the configured spelling when it is the same.
		var want map[string]string
		m.Replication.ElementsAs(ctx, &want, false)
		if cls := repl["class"]; strings.HasSuffix(cls, "."+want["class"]) {
			repl["class"] = want["class"]
		}
		rm, d := types.MapValueFrom(ctx, types.StringType, repl)
		resp.Diagnostics.Append(d...)
		m.Replication = rm
	}
	var specTTL spec.Duration
	if ttl > 0 {
		_, _, specTTL, _ = derive(m.Spec.ValueString(), ks, tb)
	}
	m.TTL = refreshTTL(m.TTL, time.Duration(ttl)*time.Second, specTTL.Std())
	kl, d := types.ListValueFrom(ctx, types.StringType, keys)
	resp.Diagnostics.Append(d...)
	cm, d := types.MapValueFrom(ctx, types.StringType, cols)
	resp.Diagnostics.Append(d...)
	m.KeyFields, m.Columns = kl, cm
	m.ID = types.StringValue(ks + "." + tb)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// refreshTTL is the ttl attribute after a read found the table's default_time_to_live to be
// table (specTTL is the spec output's, which applies when the attribute is unset). A stored
// value the table does not have, or one that does not parse, is replaced by the table's, so
// the next plan shows the drift and fixes it.
func refreshTTL(stored types.String, table, specTTL time.Duration) types.String {
	v := stored.ValueString()
	if table > 0 {
		if v == "" && specTTL == table {
			return stored // unset, so the spec output's TTL was applied: that is no drift
		}
		if d, err := stateTTL(v); v == "" || err != nil || d != table {
			return types.StringValue(spec.Duration(table).String())
		}
		return stored
	}
	if stored.IsNull() {
		return stored
	}
	if d, err := stateTTL(v); err != nil || d != 0 {
		return types.StringValue("0s")
	}
	return stored
}

// stateTTL parses a ttl attribute as stored in state. Create and Update reject a ttl that does
// not parse, but state can hold one they never saw (edited state, an import, an older
// provider), so the error is the caller's to act on rather than a zero to mistake for "no TTL".
func stateTTL(s string) (time.Duration, error) {
	d, err := spec.ParseDuration(s)
	return d.Std(), err
}

func (r *rollupTable) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m rollupModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	sess, err := r.c.cassandra()
	if err != nil {
		resp.Diagnostics.AddError("cassandra", err.Error())
		return
	}
	defer sess.Close()
	// The keyspace may hold other tables; only the table goes.
	if err := sess.Query(fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", m.Keyspace.ValueString(), m.Table.ValueString())).WithContext(ctx).Exec(); err != nil {
		resp.Diagnostics.AddError("cassandra", err.Error())
	}
}

func (r *rollupTable) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, tfpath.Root("id"), req.ID)...)
}
