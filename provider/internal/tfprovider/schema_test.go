package tfprovider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	dschema "github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	pschema "github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
)

// TestEveryAttributeHasADescription: the docs are generated from the schema, so an attribute
// without a description is an undocumented attribute.
func TestEveryAttributeHasADescription(t *testing.T) {
	ctx := context.Background()
	p := New("test")()
	var ps provider.SchemaResponse
	p.Schema(ctx, provider.SchemaRequest{}, &ps)
	for name, b := range ps.Schema.Blocks {
		sb := b.(pschema.SingleNestedBlock)
		if sb.Description == "" {
			t.Errorf("provider block %s has no description", name)
		}
		for an, a := range sb.Attributes {
			if a.GetDescription() == "" {
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
		if sr.Schema.Description == "" {
			t.Errorf("%s has no description", md.TypeName)
		}
		for an, a := range sr.Schema.Attributes {
			if a.GetDescription() == "" {
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
			if b.GetDescription() == "" {
				t.Errorf("%s block %s has no description", md.TypeName, bn)
			}
			for an, a := range attrs {
				if a.GetDescription() == "" {
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
		for an, a := range sr.Schema.Attributes {
			if a.GetDescription() == "" {
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
