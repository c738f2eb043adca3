package tfprovider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/liveagg/liveagg/workers/topics"
)

var (
	_ resource.ResourceWithConfigure   = (*kafkaTopic)(nil)
	_ resource.ResourceWithImportState = (*kafkaTopic)(nil)
	_ planmodifier.Int64               = partitionsOnlyGrow{}
)

type kafkaTopic struct{ c *clients }

func newKafkaTopic() resource.Resource { return &kafkaTopic{} }

type kafkaTopicModel struct {
	ID                types.String `tfsdk:"id"`
	Name              types.String `tfsdk:"name"`
	Partitions        types.Int64  `tfsdk:"partitions"`
	ReplicationFactor types.Int64  `tfsdk:"replication_factor"`
	Config            types.Map    `tfsdk:"config"`
}

func (r *kafkaTopic) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_kafka_topic"
}

func (r *kafkaTopic) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A Kafka topic: a pipeline's raw input, an intermediate topic of partial states, or an output. Partitions can grow in place but never shrink (Kafka cannot); configs change in place; a topic changed outside Terraform shows as drift.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The topic name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"name": schema.StringAttribute{Required: true, MarkdownDescription: "Topic name (1-249 of a-z, A-Z, 0-9, `.`, `_` and `-`). Changing it creates a new topic.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"partitions": schema.Int64Attribute{Required: true, MarkdownDescription: "Partition count. It may grow in place; a smaller value fails the plan, since Kafka cannot remove partitions and a spec's state is per partition.",
				Validators:    []validator.Int64{int64validator.AtLeast(1)},
				PlanModifiers: []planmodifier.Int64{partitionsOnlyGrow{}}},
			"replication_factor": schema.Int64Attribute{Optional: true, Computed: true, MarkdownDescription: "Replicas of each partition (the broker's default when unset). Changing it creates a new topic.",
				Validators:    []validator.Int64{int64validator.AtLeast(1)},
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown(), int64planmodifier.RequiresReplace()}},
			"config": schema.MapAttribute{ElementType: types.StringType, Optional: true, MarkdownDescription: "Topic configs set on the topic, such as `retention.ms` or `cleanup.policy`; others keep the broker's defaults. Changed in place. An imported topic reads back every config set on the topic (not the broker's defaults), which the configuration then manages: one it leaves out is removed from the topic."},
		},
	}
}

// partitionsOnlyGrow fails a plan that shrinks a topic.
type partitionsOnlyGrow struct{}

func (partitionsOnlyGrow) Description(context.Context) string {
	return "partitions can only grow"
}
func (m partitionsOnlyGrow) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}
func (partitionsOnlyGrow) PlanModifyInt64(_ context.Context, req planmodifier.Int64Request, resp *planmodifier.Int64Response) {
	if req.StateValue.IsNull() || req.PlanValue.IsUnknown() || req.PlanValue.IsNull() {
		return
	}
	if req.PlanValue.ValueInt64() < req.StateValue.ValueInt64() {
		resp.Diagnostics.AddAttributeError(req.Path, "partitions cannot shrink",
			fmt.Sprintf("the topic has %d partitions and the configuration asks for %d: Kafka cannot remove partitions, and every partition's aggregation state and checkpoints would be orphaned. Keep %d or more, or create a topic under a new name.",
				req.StateValue.ValueInt64(), req.PlanValue.ValueInt64(), req.StateValue.ValueInt64()))
	}
}

func (r *kafkaTopic) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*clients); ok {
		r.c = c
	}
}

func (r *kafkaTopic) admin() (*kadm.Client, func(), error) {
	cl, err := r.c.kafka(kgo.MetadataMinAge(250 * time.Millisecond)) // so a re-ask is a real ask
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

func (r *kafkaTopic) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m kafkaTopicModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	adm, done, err := r.admin()
	if err != nil {
		resp.Diagnostics.AddError("kafka", err.Error())
		return
	}
	defer done()
	configs := map[string]*string{}
	var cfg map[string]string
	resp.Diagnostics.Append(m.Config.ElementsAs(ctx, &cfg, false)...)
	for k, v := range cfg {
		configs[k] = &v
	}
	rf := int16(-1)
	if !m.ReplicationFactor.IsNull() && !m.ReplicationFactor.IsUnknown() {
		rf = int16(m.ReplicationFactor.ValueInt64())
	}
	res, err := adm.CreateTopic(ctx, int32(m.Partitions.ValueInt64()), rf, configs, m.Name.ValueString())
	if err == nil {
		err = res.Err
	}
	if err != nil {
		resp.Diagnostics.AddError("create topic "+m.Name.ValueString(), err.Error())
		return
	}
	// A topic just created can be missing from the brokers' metadata for a moment; reading
	// it as gone would leave its replication factor unknown after apply.
	var d diag.Diagnostics
	_, err = topics.Await(ctx, r.c.kafkaOpts, m.Name.ValueString(), 30*time.Second, func(kadm.TopicDetail) error {
		if d = r.read(ctx, adm, &m, false); d.HasError() || m.ID.ValueString() != "" {
			return nil
		}
		return topics.ErrNotListed
	})
	resp.Diagnostics.Append(d...)
	if err != nil {
		resp.Diagnostics.AddError("create topic "+m.Name.ValueString(), "created, but: "+err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// importedKey marks, in private state, a topic ImportState has just put in state, whose first
// Read takes every config set on the topic.
const importedKey = "imported"

// read fills m from the broker; it leaves m.ID empty if the topic is gone. It reads back the
// configs the resource manages (the keys of m.Config), or with allSet, as after an import, when
// no keys are known yet, every config set on the topic.
func (r *kafkaTopic) read(ctx context.Context, adm *kadm.Client, m *kafkaTopicModel, allSet bool) (d diag.Diagnostics) {
	name := m.Name.ValueString()
	if name == "" {
		name = m.ID.ValueString()
	}
	td, err := adm.ListTopics(ctx, name)
	if err != nil {
		d.AddError("describe topic "+name, err.Error())
		return
	}
	t, ok := td[name]
	if !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition) {
		m.ID = types.StringValue("")
		return
	}
	if t.Err != nil {
		d.AddError("describe topic "+name, t.Err.Error())
		return
	}
	m.ID, m.Name = types.StringValue(name), types.StringValue(name)
	m.Partitions = types.Int64Value(int64(len(t.Partitions)))
	m.ReplicationFactor = types.Int64Value(int64(t.Partitions.NumReplicas()))
	// Only the configs the resource manages are read back, so broker defaults are not drift;
	// a managed config changed out of band is. An imported topic manages none yet: it takes
	// the ones set on the topic (not the broker's defaults nor its static configuration),
	// which is what a configuration that created it would have set.
	var managed map[string]string
	if !m.Config.IsNull() {
		m.Config.ElementsAs(ctx, &managed, false)
	}
	if len(managed) > 0 || allSet {
		rc, err := adm.DescribeTopicConfigs(ctx, name)
		if err != nil {
			d.AddError("describe topic configs "+name, err.Error())
			return
		}
		got := map[string]string{}
		if c, err := rc.On(name, nil); err == nil {
			for _, e := range c.Configs {
				_, ok := managed[e.Key]
				if allSet && e.Source == kmsg.ConfigSourceDynamicTopicConfig {
					ok = true
				}
				if ok && e.Value != nil {
					got[e.Key] = *e.Value
				}
			}
		}
		mv, diags := types.MapValueFrom(ctx, types.StringType, got)
		d = append(d, diags...)
		m.Config = mv
		if allSet && len(managed) == 0 && len(got) == 0 {
			m.Config = types.MapNull(types.StringType) // as a configuration without config has it
		}
	}
	return d
}

func (r *kafkaTopic) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m kafkaTopicModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	adm, done, err := r.admin()
	if err != nil {
		resp.Diagnostics.AddError("kafka", err.Error())
		return
	}
	defer done()
	imported, d := req.Private.GetKey(ctx, importedKey)
	resp.Diagnostics.Append(d...)
	resp.Diagnostics.Append(r.read(ctx, adm, &m, imported != nil)...)
	if m.ID.ValueString() == "" {
		resp.State.RemoveResource(ctx)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
	if imported != nil && !resp.Diagnostics.HasError() {
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, importedKey, nil)...) // from now on, the managed keys only
	}
}

func (r *kafkaTopic) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state kafkaTopicModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	adm, done, err := r.admin()
	if err != nil {
		resp.Diagnostics.AddError("kafka", err.Error())
		return
	}
	defer done()
	name := plan.Name.ValueString()
	if want := plan.Partitions.ValueInt64(); want > state.Partitions.ValueInt64() {
		res, err := adm.UpdatePartitions(ctx, int(want), name)
		if err == nil {
			if r, e := res.On(name, nil); e == nil {
				err = r.Err
			}
		}
		if err != nil {
			resp.Diagnostics.AddError("grow topic "+name, err.Error())
			return
		}
		// New partitions reach every broker's metadata shortly after.
		if _, err := topics.Await(ctx, r.c.kafkaOpts, name, 15*time.Second, func(t kadm.TopicDetail) error {
			if int64(len(t.Partitions)) < want {
				return fmt.Errorf("%d of its %d partitions listed", len(t.Partitions), want)
			}
			return nil
		}); err != nil {
			resp.Diagnostics.AddError("grow topic "+name, "grown, but: "+err.Error())
			return
		}
	}
	var before, after map[string]string
	state.Config.ElementsAs(ctx, &before, false)
	plan.Config.ElementsAs(ctx, &after, false)
	var alters []kadm.AlterConfig
	for k, v := range after {
		if before[k] != v {
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
		}
	}
	if len(alters) > 0 {
		res, err := adm.AlterTopicConfigs(ctx, alters, name)
		if err == nil {
			for _, r := range res {
				if r.Err != nil {
					err = fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
				}
			}
		}
		if err != nil {
			resp.Diagnostics.AddError("alter topic configs "+name, err.Error())
			return
		}
		// Brokers apply config changes asynchronously: wait until they describe them.
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			got := plan
			if d := r.read(ctx, adm, &got, false); d.HasError() || got.Config.Equal(plan.Config) {
				break
			}
		}
	}
	resp.Diagnostics.Append(r.read(ctx, adm, &plan, false)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *kafkaTopic) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m kafkaTopicModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	adm, done, err := r.admin()
	if err != nil {
		resp.Diagnostics.AddError("kafka", err.Error())
		return
	}
	defer done()
	res, err := adm.DeleteTopics(ctx, m.Name.ValueString())
	if err == nil {
		if r, e := res.On(m.Name.ValueString(), nil); e == nil && r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			err = r.Err
		}
	}
	if err != nil {
		resp.Diagnostics.AddError("delete topic "+m.Name.ValueString(), err.Error())
	}
}

func (r *kafkaTopic) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("config"), types.MapNull(types.StringType))...)
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, importedKey, []byte("true"))...)
}
