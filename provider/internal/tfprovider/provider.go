// Package tfprovider is the liveagg Terraform provider: Kafka topics, aggregation specs (checked
// at plan time by the engine's own spec package and stored in the spec registry workers load
// them from), Cassandra rollup tables derived from specs, and a fleet plan data source.
package tfprovider

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/gocql/gocql"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/twmb/franz-go/pkg/kgo"

	wconfig "github.com/liveagg/liveagg/workers/config"
	"github.com/liveagg/liveagg/workers/sink"
)

var _ provider.Provider = (*liveaggProvider)(nil)

// New returns the provider factory for providerserver.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &liveaggProvider{version: version} }
}

type liveaggProvider struct{ version string }

// clients is what resources get from a configured provider. Clients are made on first use, so
// a plan that touches only specs needs no Kafka, and one that touches only topics no S3.
type clients struct {
	brokers   []string
	kafkaOpts []kgo.Opt
	registry  string // s3://bucket/prefix
	s3        *s3.Client
	// cass is the Cassandra connection in the worker config's terms, so the provider and the
	// workers log in, encrypt and verify the same way.
	cass   wconfig.Cassandra
	awsCfg func(context.Context) (aws.Config, error)
}

func (c *clients) cassandra() (*gocql.Session, error) {
	if len(c.cass.Hosts) == 0 {
		return nil, fmt.Errorf("the provider has no cassandra hosts: set cassandra.hosts or LIVEAGG_CASSANDRA_HOSTS")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := c.cass.Conn(ctx, c.awsCfg)
	if err != nil {
		return nil, err
	}
	// Amazon Keyspaces takes LOCAL_QUORUM and no QUORUM; on one data centre they are the same.
	consistency := gocql.Quorum
	if c.cass.Keyspaces {
		consistency = gocql.LocalQuorum
	}
	return sink.NewCassandraSessionWith(ctx, conn, sink.WithTimeouts(30*time.Second, 10*time.Second), sink.WithConsistency(consistency))
}

func (c *clients) kafka(extra ...kgo.Opt) (*kgo.Client, error) {
	if len(c.brokers) == 0 {
		return nil, fmt.Errorf("the provider has no kafka bootstrap servers: set kafka.bootstrap_servers or LIVEAGG_KAFKA_BROKERS")
	}
	return kgo.NewClient(append(slices.Clip(c.kafkaOpts), extra...)...)
}

type providerModel struct {
	Kafka     *kafkaModel     `tfsdk:"kafka"`
	Registry  *registryModel  `tfsdk:"spec_registry"`
	Cassandra *cassandraModel `tfsdk:"cassandra"`
}

type kafkaModel struct {
	Servers       types.List   `tfsdk:"bootstrap_servers"`
	TLS           types.Bool   `tfsdk:"tls"`
	CAFile        types.String `tfsdk:"ca_file"`
	SASLMechanism types.String `tfsdk:"sasl_mechanism"`
	SASLUsername  types.String `tfsdk:"sasl_username"`
	SASLPassword  types.String `tfsdk:"sasl_password"`
	AWSRegion     types.String `tfsdk:"aws_region"`
}

type registryModel struct {
	Location types.String `tfsdk:"location"`
	Region   types.String `tfsdk:"region"`
	Endpoint types.String `tfsdk:"endpoint"`
}

type cassandraModel struct {
	Hosts      types.List   `tfsdk:"hosts"`
	Username   types.String `tfsdk:"username"`
	Password   types.String `tfsdk:"password"`
	TLS        types.Bool   `tfsdk:"tls"`
	CAFile     types.String `tfsdk:"ca_file"`
	ServerName types.String `tfsdk:"server_name"`
	Keyspaces  types.Bool   `tfsdk:"keyspaces"`
}

func (p *liveaggProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "liveagg"
	resp.Version = p.version
}

func (p *liveaggProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Declares liveagg's own objects: Kafka topics, aggregation specs (validated at plan time by the engine's spec package, stored in the spec registry the workers load from), Cassandra rollup tables derived from specs, and fleet sizing. Every setting can also come from an environment variable.",
		Blocks: map[string]schema.Block{
			"kafka": schema.SingleNestedBlock{
				MarkdownDescription: "Where the Kafka cluster is and how to authenticate.",
				Attributes: map[string]schema.Attribute{
					"bootstrap_servers": schema.ListAttribute{ElementType: types.StringType, Optional: true, MarkdownDescription: "Broker addresses, `host:port` (env `LIVEAGG_KAFKA_BROKERS`, comma-separated)."},
					"tls":               schema.BoolAttribute{Optional: true, MarkdownDescription: "Connect with TLS (env `LIVEAGG_KAFKA_TLS`)."},
					"ca_file":           schema.StringAttribute{Optional: true, MarkdownDescription: "PEM file of the CA that signed the brokers' certificates; the system roots when unset (env `LIVEAGG_KAFKA_CA_FILE`)."},
					"sasl_mechanism":    schema.StringAttribute{Optional: true, MarkdownDescription: "SASL mechanism: `scram-sha-256`, `scram-sha-512` or `aws-msk-iam` (env `LIVEAGG_KAFKA_SASL_MECHANISM`)."},
					"sasl_username":     schema.StringAttribute{Optional: true, MarkdownDescription: "SCRAM user (env `LIVEAGG_KAFKA_SASL_USERNAME`)."},
					"sasl_password":     schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "SCRAM password (env `LIVEAGG_KAFKA_SASL_PASSWORD`)."},
					"aws_region":        schema.StringAttribute{Optional: true, MarkdownDescription: "Region for AWS MSK IAM authentication."},
				},
			},
			"spec_registry": schema.SingleNestedBlock{
				MarkdownDescription: "The S3 location specs are stored in, which workers load and watch. The bucket must exist before a spec is stored: when the same configuration creates it, make every `liveagg_aggregation_spec` depend on the bucket (modules/pipeline's `spec_registry` input does), or the first apply fails with `NoSuchBucket`.",
				Attributes: map[string]schema.Attribute{
					"location": schema.StringAttribute{Optional: true, MarkdownDescription: "`s3://bucket/prefix` (env `LIVEAGG_SPEC_REGISTRY`)."},
					"region":   schema.StringAttribute{Optional: true, MarkdownDescription: "The bucket's region (env `AWS_REGION`)."},
					"endpoint": schema.StringAttribute{Optional: true, MarkdownDescription: "S3 endpoint override for an S3-compatible store such as moto or MinIO (env `LIVEAGG_AWS_ENDPOINT`)."},
				},
			},
			"cassandra": schema.SingleNestedBlock{
				MarkdownDescription: "The Cassandra cluster rollup tables live in.",
				Attributes: map[string]schema.Attribute{
					"hosts":       schema.ListAttribute{ElementType: types.StringType, Optional: true, MarkdownDescription: "Contact points, `host` or `host:port` (env `LIVEAGG_CASSANDRA_HOSTS`, comma-separated)."},
					"username":    schema.StringAttribute{Optional: true, MarkdownDescription: "User for password authentication (env `LIVEAGG_CASSANDRA_USERNAME`)."},
					"password":    schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Password (env `LIVEAGG_CASSANDRA_PASSWORD`)."},
					"tls":         schema.BoolAttribute{Optional: true, MarkdownDescription: "Connect with TLS, verifying each node's certificate (env `LIVEAGG_CASSANDRA_TLS=true`)."},
					"ca_file":     schema.StringAttribute{Optional: true, MarkdownDescription: "PEM file of the CA that signed the nodes' certificates; the system roots when unset (env `LIVEAGG_CASSANDRA_CA_FILE`)."},
					"server_name": schema.StringAttribute{Optional: true, MarkdownDescription: "The name every node's certificate must carry; by default the address each connection dials, or with `keyspaces` the first host's name (env `LIVEAGG_CASSANDRA_SERVER_NAME`)."},
					"keyspaces":   schema.BoolAttribute{Optional: true, MarkdownDescription: "Amazon Keyspaces: TLS on port 9142, `LOCAL_QUORUM`, and SigV4 authentication with the provider's AWS credentials and region unless `username` and `password` (service-specific credentials) are set (env `LIVEAGG_CASSANDRA_KEYSPACES=true`). Rollup tables in Keyspaces need `replication = { class = \"SingleRegionStrategy\" }`."},
				},
			},
		},
	}
}

func strOr(v types.String, env string) string {
	if !v.IsNull() && !v.IsUnknown() && v.ValueString() != "" {
		return v.ValueString()
	}
	return os.Getenv(env)
}

// boolOr is the attribute when set, else whether env is "true".
func boolOr(v types.Bool, env string) bool {
	if !v.IsNull() && !v.IsUnknown() {
		return v.ValueBool()
	}
	return os.Getenv(env) == "true"
}

// hostOnly drops a port from host:port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func listOr(ctx context.Context, v types.List, env string) []string {
	if !v.IsNull() && !v.IsUnknown() {
		var out []string
		v.ElementsAs(ctx, &out, false)
		if len(out) > 0 {
			return out
		}
	}
	if e := os.Getenv(env); e != "" {
		return strings.Split(e, ",")
	}
	return nil
}

func (p *liveaggProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if m.Kafka == nil {
		m.Kafka = &kafkaModel{}
	}
	if m.Registry == nil {
		m.Registry = &registryModel{}
	}
	if m.Cassandra == nil {
		m.Cassandra = &cassandraModel{}
	}
	c := &clients{
		brokers:  listOr(ctx, m.Kafka.Servers, "LIVEAGG_KAFKA_BROKERS"),
		registry: strOr(m.Registry.Location, "LIVEAGG_SPEC_REGISTRY"),
		cass: wconfig.Cassandra{
			Hosts:     listOr(ctx, m.Cassandra.Hosts, "LIVEAGG_CASSANDRA_HOSTS"),
			Username:  strOr(m.Cassandra.Username, "LIVEAGG_CASSANDRA_USERNAME"),
			Password:  strOr(m.Cassandra.Password, "LIVEAGG_CASSANDRA_PASSWORD"),
			Keyspaces: boolOr(m.Cassandra.Keyspaces, "LIVEAGG_CASSANDRA_KEYSPACES"),
		},
	}
	if c.cass.Keyspaces || boolOr(m.Cassandra.TLS, "LIVEAGG_CASSANDRA_TLS") {
		c.cass.TLS = wconfig.CassandraTLS{Enabled: true, CAFile: strOr(m.Cassandra.CAFile, "LIVEAGG_CASSANDRA_CA_FILE"),
			ServerName: strOr(m.Cassandra.ServerName, "LIVEAGG_CASSANDRA_SERVER_NAME")}
		if c.cass.Keyspaces && c.cass.TLS.ServerName == "" && len(c.cass.Hosts) > 0 {
			c.cass.TLS.ServerName = hostOnly(c.cass.Hosts[0])
		}
	}
	// Kafka auth goes through the worker's own config code, so the provider and the workers
	// connect the same way.
	kc := wconfig.Kafka{Brokers: c.brokers, SASL: wconfig.SASL{
		Mechanism: strOr(m.Kafka.SASLMechanism, "LIVEAGG_KAFKA_SASL_MECHANISM"),
		Username:  strOr(m.Kafka.SASLUsername, "LIVEAGG_KAFKA_SASL_USERNAME"),
		Password:  strOr(m.Kafka.SASLPassword, "LIVEAGG_KAFKA_SASL_PASSWORD"),
	}}
	if (!m.Kafka.TLS.IsNull() && m.Kafka.TLS.ValueBool()) || os.Getenv("LIVEAGG_KAFKA_TLS") == "true" {
		kc.TLS = wconfig.TLS{Enabled: true, CAFile: strOr(m.Kafka.CAFile, "LIVEAGG_KAFKA_CA_FILE")}
	}
	region := strOr(m.Registry.Region, "AWS_REGION")
	endpoint := strOr(m.Registry.Endpoint, "LIVEAGG_AWS_ENDPOINT")
	awsLoad := func(ctx context.Context) (aws.Config, error) {
		var opts []func(*config.LoadOptions) error
		if r := region; r != "" {
			opts = append(opts, config.WithRegion(r))
		} else if r := m.Kafka.AWSRegion.ValueString(); r != "" {
			opts = append(opts, config.WithRegion(r))
		}
		return config.LoadDefaultConfig(ctx, opts...)
	}
	c.awsCfg = awsLoad
	if len(c.brokers) > 0 {
		opts, err := kc.ClientOpts(ctx, awsLoad)
		if err != nil {
			resp.Diagnostics.AddError("kafka configuration", err.Error())
			return
		}
		c.kafkaOpts = opts
	}
	if c.registry != "" {
		if !strings.HasPrefix(c.registry, "s3://") {
			resp.Diagnostics.AddAttributeError(pathOf("spec_registry.location"), "spec registry", fmt.Sprintf("%q is not s3://bucket/prefix", c.registry))
			return
		}
		ac, err := awsLoad(ctx)
		if err != nil {
			resp.Diagnostics.AddError("aws configuration", err.Error())
			return
		}
		c.s3 = s3.NewFromConfig(ac, func(o *s3.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
				o.UsePathStyle = true
			}
			o.DisableLogOutputChecksumValidationSkipped = true
		})
	}
	resp.ResourceData = c
	resp.DataSourceData = c
}

func (p *liveaggProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newKafkaTopic, newAggregationSpec, newRollupTable}
}

func (p *liveaggProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{newFleetPlan}
}
