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
// its columns (once ColumnWait is over), is refused at start with the column named, instead of
// every row failing later; a column added while the sink waits is taken.
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
			noWait := cfg
			noWait.ColumnWait = -1
			_, err := NewCassandra(ctx, sess, noWait, []string{"k"}, tc.columns)
			if !errors.Is(err, ErrSchemaMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewCassandra = %v, want ErrSchemaMismatch saying %q", err, tc.want)
			}
		})
	}
	// A column the table lacks but that an ALTER on its way adds (the apply that added an
	// aggregation alters the table after storing the spec): the sink waits for it.
	t.Run("a missing column added meanwhile", func(t *testing.T) {
		waiting := cfg
		waiting.ColumnWait = time.Minute
		added := make(chan error, 1)
		go func() {
			time.Sleep(3 * time.Second)
			added <- sess.Query("ALTER TABLE " + ks + ".rollup ADD max_v double").WithContext(ctx).Exec()
		}()
		withMax := append(numberLast[:len(numberLast):len(numberLast)], Column{Name: "max_v", Kind: agg.ColumnReal})
		if _, err := NewCassandra(ctx, sess, waiting, []string{"k"}, withMax); err != nil {
			t.Fatalf("NewCassandra = %v, want it to wait for the column", err)
		}
		if err := <-added; err != nil {
			t.Fatal(err)
		}
	})
}
