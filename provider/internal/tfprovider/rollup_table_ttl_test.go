package tfprovider

import (
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/types"
)

func TestRefreshTTL(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name           string
		stored         types.String
		table, specTTL time.Duration
		want           types.String
	}{
		{"unset, table has none", types.StringNull(), 0, 0, types.StringNull()},
		{"unset, table has the spec's", types.StringNull(), 90 * day, 90 * day, types.StringNull()},
		{"unset, table has another", types.StringNull(), 30 * day, 90 * day, types.StringValue("30d")},
		{"set, table agrees", types.StringValue("2160h"), 90 * day, 0, types.StringValue("2160h")},
		{"set, table differs", types.StringValue("90d"), 30 * day, 0, types.StringValue("30d")},
		{"set, table has none", types.StringValue("90d"), 0, 0, types.StringValue("0s")},
		{"zero, table has none", types.StringValue("0s"), 0, 0, types.StringValue("0s")},
		// A stored value that does not parse is drift, whatever the table has: it used to
		// read as "no TTL" and stay in state when the table had none.
		{"unparseable, table has one", types.StringValue("soon"), 30 * day, 0, types.StringValue("30d")},
		{"unparseable, table has none", types.StringValue("soon"), 0, 0, types.StringValue("0s")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refreshTTL(tc.stored, tc.table, tc.specTTL); !got.Equal(tc.want) {
				t.Errorf("refreshTTL(%v, %v, %v) = %v, want %v", tc.stored, tc.table, tc.specTTL, got, tc.want)
			}
		})
	}
}
