//go:build integration

package sink

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/agg"
)

// A table that exists with a column of another type than the spec writes, or without one of
// its columns, is refused at start with the column named, instead of every row failing later.
func TestCassandraRefusesATableOfAnotherShape(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	sess, err := NewCassandraSessionWith(ctx, CassandraConn{Hosts: testenv.CassandraHosts(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ks := strings.ReplaceAll(testenv.Name(t, "schema"), "-", "_")
	cfg := CassandraConfig{Keyspace: ks, Table: "rollup"}
	numberLast := []Column{{Name: "count", Kind: agg.ColumnInteger}, {Name: "last_status", Kind: agg.ColumnReal}}
	if _, err := NewCassandra(ctx, sess, cfg, []string{"k"}, numberLast); err != nil {
		t.Fatalf("a new table: %v", err)
	}
	if _, err := NewCassandra(ctx, sess, cfg, []string{"k"}, numberLast); err != nil {
		t.Fatalf("the same table again: %v", err)
	}
	for _, tc := range []struct {
		name    string
		columns []Column
		want    string
	}{
		{"a column of another type", []Column{{Name: "count", Kind: agg.ColumnInteger}, {Name: "last_status", Kind: agg.ColumnText}}, "column last_status is double, the spec writes text"},
		{"a missing column", []Column{{Name: "count", Kind: agg.ColumnInteger}, {Name: "last_status", Kind: agg.ColumnReal}, {Name: "sum_v", Kind: agg.ColumnReal}}, "column sum_v is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCassandra(ctx, sess, cfg, []string{"k"}, tc.columns)
			if !errors.Is(err, ErrSchemaMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewCassandra = %v, want ErrSchemaMismatch saying %q", err, tc.want)
			}
		})
	}
}
