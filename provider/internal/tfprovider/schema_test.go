package tfprovider

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	dschema "github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	pschema "github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/liveagg/liveagg/workers/spec"
)

// TestEveryAttributeHasADescription: the docs are generated from the schema, so an attribute
// without a description is an undocumented attribute. Descriptions are Markdown, which the docs
// and editors render (a plain Description is not sent when a Markdown one is).
func TestEveryAttributeHasADescription(t *testing.T) {
	ctx := context.Background()
	p := New("test")()
	var ps provider.SchemaResponse
	p.Schema(ctx, provider.SchemaRequest{}, &ps)
	for name, b := range ps.Schema.Blocks {
		sb := b.(pschema.SingleNestedBlock)
		if sb.MarkdownDescription == "" {
			t.Errorf("provider block %s has no description", name)
		}
		for an, a := range sb.Attributes {
			if a.GetMarkdownDescription() == "" {
				t.Errorf("provider %s.%s has no description", name, an)
			}
		}
	}
	for _, f := range p.Resources(ctx) {
		r := f()
		var md resource.MetadataResponse
		r.Metadata(ctx, resource.MetadataRequest{ProviderTypeName: "liveagg"}, &md)
		var sr resource.SchemaResponse
		r.Schema(ctx, resource.SchemaRequest{}, &sr)
		if sr.Schema.MarkdownDescription == "" {
			t.Errorf("%s has no description", md.TypeName)
		}
		for an, a := range sr.Schema.Attributes {
			if a.GetMarkdownDescription() == "" {
				t.Errorf("%s.%s has no description", md.TypeName, an)
			}
		}
		for bn, b := range sr.Schema.Blocks {
			var attrs map[string]rschema.Attribute
			switch b := b.(type) {
			case rschema.SingleNestedBlock:
				attrs = b.Attributes
			case rschema.ListNestedBlock:
				attrs = b.NestedObject.Attributes
			}
			if b.GetMarkdownDescription() == "" {
				t.Errorf("%s block %s has no description", md.TypeName, bn)
			}
			for an, a := range attrs {
				if a.GetMarkdownDescription() == "" {
					t.Errorf("%s.%s.%s has no description", md.TypeName, bn, an)
				}
			}
		}
	}
	for _, f := range p.DataSources(ctx) {
		d := f()
		var md datasource.MetadataResponse
		d.Metadata(ctx, datasource.MetadataRequest{ProviderTypeName: "liveagg"}, &md)
		var sr datasource.SchemaResponse
		d.Schema(ctx, datasource.SchemaRequest{}, &sr)
		if sr.Schema.MarkdownDescription == "" {
			t.Errorf("%s has no description", md.TypeName)
		}
		for an, a := range sr.Schema.Attributes {
			if a.GetMarkdownDescription() == "" {
				t.Errorf("%s.%s has no description", md.TypeName, an)
			}
		}
		var _ dschema.Schema = sr.Schema
	}
}

func TestSpecPathToAttribute(t *testing.T) {
	for in, want := range map[string]string{
		"aggregations[2].field": "aggregation[2].field",
		"outputs[0].key[1]":     "output[0].key[1]",
		"input.topic":           "input.topic",
		"windows[1]":            "windows[1]",
		"name":                  "name",
	} {
		if got := specPath(in).String(); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

// validateSpec runs the provider's ValidateResourceConfig, as plan does, on an aggregation
// spec with these aggregations (attribute values by name; the rest null), and returns the
// errors as "attribute path: detail".
func validateSpec(t *testing.T, aggs ...map[string]tftypes.Value) []string {
	t.Helper()
	ctx := context.Background()
	var sr resource.SchemaResponse
	newAggregationSpec().Schema(ctx, resource.SchemaRequest{}, &sr)
	typ := sr.Schema.Type().TerraformType(ctx).(tftypes.Object)
	object := func(t tftypes.Object, vals map[string]tftypes.Value) tftypes.Value {
		all := map[string]tftypes.Value{}
		for name, at := range t.AttributeTypes {
			all[name] = tftypes.NewValue(at, nil)
			if v, ok := vals[name]; ok {
				all[name] = v
			}
		}
		return tftypes.NewValue(t, all)
	}
	str := func(s string) tftypes.Value { return tftypes.NewValue(tftypes.String, s) }
	strs := func(ss ...string) tftypes.Value {
		var vs []tftypes.Value
		for _, s := range ss {
			vs = append(vs, str(s))
		}
		return tftypes.NewValue(tftypes.List{ElementType: tftypes.String}, vs)
	}
	list := func(name string, elems ...map[string]tftypes.Value) tftypes.Value {
		lt := typ.AttributeTypes[name].(tftypes.List)
		var vs []tftypes.Value
		for _, e := range elems {
			vs = append(vs, object(lt.ElementType.(tftypes.Object), e))
		}
		return tftypes.NewValue(lt, vs)
	}
	config := object(typ, map[string]tftypes.Value{
		"name": str("s"), "key": strs("org"), "windows": strs("1m"),
		"input":       object(typ.AttributeTypes["input"].(tftypes.Object), map[string]tftypes.Value{"topic": str("raw"), "time_field": str("ts")}),
		"aggregation": list("aggregation", aggs...),
		"output":      list("output", map[string]tftypes.Value{"type": str("stdout")}),
	})
	dv, err := tfprotov6.NewDynamicValue(typ, config)
	if err != nil {
		t.Fatal(err)
	}
	server, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := server.ValidateResourceConfig(ctx, &tfprotov6.ValidateResourceConfigRequest{TypeName: "liveagg_aggregation_spec", Config: &dv})
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, d := range resp.Diagnostics {
		if d.Severity == tfprotov6.DiagnosticSeverityError {
			errs = append(errs, fmt.Sprintf("%v: %s", d.Attribute, d.Detail))
		}
	}
	return errs
}

// A value outside one of the spec package's lists fails validation once, on its attribute,
// with the allowed values from that list; what only the engine checks still fails on its
// attribute too.
func TestSpecValidationNamesTheAttribute(t *testing.T) {
	str := func(s string) tftypes.Value { return tftypes.NewValue(tftypes.String, s) }
	count := map[string]tftypes.Value{"fn": str(spec.FnCount)}
	for _, tc := range []struct {
		name string
		aggs []map[string]tftypes.Value
		want string
	}{
		{"fn outside spec.Functions", []map[string]tftypes.Value{count, {"fn": str("median"), "field": str("v")}},
			`AttributeName("aggregation").ElementKeyInt(1).AttributeName("fn"): Attribute aggregation[1].fn value must be one of: ["` + strings.Join(spec.Functions, `" "`) + `"], got: "median"`},
		{"type outside spec.ValueTypes", []map[string]tftypes.Value{{"fn": str(spec.FnLast), "field": str("v"), "type": str("json")}},
			`AttributeName("aggregation").ElementKeyInt(0).AttributeName("type"): Attribute aggregation[0].type value must be one of: ["` + strings.Join(spec.ValueTypes, `" "`) + `"], got: "json"`},
		{"engine only: a name like a key column", []map[string]tftypes.Value{count, {"fn": str(spec.FnSum), "field": str("v"), "name": str("org")}},
			`AttributeName("aggregation").ElementKeyInt(1).AttributeName("name"): aggregations[1].name: "org" is also the column of key field "org"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := validateSpec(t, tc.aggs...)
			if len(errs) != 1 || !strings.HasPrefix(errs[0], tc.want) {
				t.Fatalf("errors %q, want one starting %q", errs, tc.want)
			}
		})
	}
	if errs := validateSpec(t, count); len(errs) != 0 {
		t.Fatalf("a valid spec: %q", errs)
	}
}

// Every allowed value and default the spec package declares is in the docs: they are built
// from its lists, so this fails only if an attribute stops using them.
func TestSpecDocsListTheSpecPackagesValues(t *testing.T) {
	ctx := context.Background()
	var sr resource.SchemaResponse
	newAggregationSpec().Schema(ctx, resource.SchemaRequest{}, &sr)
	desc := func(block, attr string) string {
		switch b := sr.Schema.Blocks[block].(type) {
		case rschema.SingleNestedBlock:
			return b.Attributes[attr].GetMarkdownDescription()
		case rschema.ListNestedBlock:
			return b.NestedObject.Attributes[attr].GetMarkdownDescription()
		}
		return ""
	}
	for _, tc := range []struct {
		block, attr string
		want        []string
	}{
		{"input", "format", spec.Formats},
		{"input", "time_unit", append(slices.Clone(spec.TimeUnits), spec.DefaultTimeUnit)},
		{"input", "max_future_skew", []string{spec.DefaultMaxFutureSkew.String()}},
		{"input", "max_record_bytes", []string{strconv.Itoa(spec.DefaultMaxRecordBytes)}},
		{"aggregation", "fn", spec.Functions},
		{"aggregation", "type", spec.ValueTypes},
		{"aggregation", "precision", []string{strconv.Itoa(spec.DefaultPrecision)}},
		{"aggregation", "relative_accuracy", []string{strconv.FormatFloat(spec.DefaultRelativeAccuracy, 'g', -1, 64)}},
		{"aggregation", "quantiles", []string{"`0.5`, `0.9`, `0.99`"}},
		{"output", "type", spec.OutputTypes},
		{"output", "partial", spec.PartialTypes},
	} {
		d := desc(tc.block, tc.attr)
		for _, w := range tc.want {
			if !strings.Contains(d, w) {
				t.Errorf("%s.%s: %q does not mention %s", tc.block, tc.attr, d, w)
			}
		}
	}
}
