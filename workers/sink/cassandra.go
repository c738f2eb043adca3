package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/emit"
)

// CassandraConfig says where and how to write rows.
type CassandraConfig struct {
	Keyspace string
	Table    string
	// Replication is the keyspace's replication map, used only when creating the keyspace
	// (default SimpleStrategy, replication_factor 1).
	Replication map[string]string
	// TTL expires rows (0 keeps them).
	TTL time.Duration
	// Concurrency bounds the writes in flight per sink (default 128): beyond it Write blocks,
	// which is the backpressure that pauses consumption.
	Concurrency int
	// MaxBackoff caps the wait between retries of a write that failed for a passing reason
	// (timeout, overload, no replica reachable): such writes are retried until Cassandra
	// takes them, with backoff doubling from 50 ms up to this (default 5s).
	MaxBackoff time.Duration
	// ColumnWait is how long NewCassandra waits for columns missing from an existing table
	// (default 2m; negative: not at all): after a spec change adds an aggregation, the apply
	// that stored the spec alters the table next, and a worker restarting on the new spec
	// before that should wait for it, not halt.
	ColumnWait time.Duration
}

// Cassandra writes one row per (series, window) with prepared upserts, so a replayed window
// overwrites itself. The table is created if missing:
//
//	PRIMARY KEY ((<key fields>, window_size), window_start)
//
// with a column per value, typed by Column.CQLType.
type Cassandra struct {
	s       *gocql.Session
	cfg     CassandraConfig
	insert  string
	columns []Column
	obs     Observer
}

// Column is a value column of a rollup table.
type Column struct {
	Name string
	Kind agg.ColumnKind
}

// Columns lists the value columns of a spec's layout, in the order windows carry them.
func Columns(l *agg.Layout) []Column {
	out := make([]Column, len(l.Columns()))
	for i, name := range l.Columns() {
		out[i] = Column{Name: name, Kind: l.ColumnKinds()[i]}
	}
	return out
}

// CQLName is the column's name in CQL: dots of nested fields become underscores.
func (c Column) CQLName() string { return cqlName(c.Name) }

// ColumnOfCQL is the column a table with this CQL type holds (ok false for a type no liveagg
// column has), for tools that read the types back from a table or a plan.
func ColumnOfCQL(name, cqlType string) (Column, bool) {
	for _, k := range []agg.ColumnKind{agg.ColumnReal, agg.ColumnInteger, agg.ColumnText} {
		if c := (Column{Name: name, Kind: k}); c.CQLType() == cqlType {
			return c, true
		}
	}
	return Column{}, false
}

// CQLType is the column's CQL type: bigint for count and distinct, text for text, double for
// every other value. The Terraform provider's rollup table uses the same.
func (c Column) CQLType() string {
	switch c.Kind {
	case agg.ColumnInteger:
		return "bigint"
	case agg.ColumnText:
		return "text"
	}
	return "double"
}

// NewCassandra creates the keyspace and table if needed and prepares the upsert. The session
// should use token-aware routing (see NewCassandraSession).
func NewCassandra(ctx context.Context, s *gocql.Session, cfg CassandraConfig, keyFields []string, columns []Column) (*Cassandra, error) {
	if len(keyFields) == 0 || len(columns) == 0 {
		return nil, fmt.Errorf("cassandra sink %s.%s: a table needs key fields and value columns (got %v and %v)", cfg.Keyspace, cfg.Table, keyFields, columns)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 128
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if len(cfg.Replication) == 0 {
		cfg.Replication = map[string]string{"class": "SimpleStrategy", "replication_factor": "1"}
	}
	ddl := CassandraDDL(cfg, keyFields, columns)
	for _, q := range ddl {
		if err := s.Query(q).WithContext(ctx).Exec(); err != nil {
			return nil, fmt.Errorf("cassandra sink: %s: %w", firstWords(q), err)
		}
	}
	wait := cfg.ColumnWait
	if wait == 0 {
		wait = 2 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		err := checkColumns(ctx, s, cfg, keyFields, columns)
		if err == nil {
			break
		}
		if !errors.Is(err, errColumnsMissing) || !time.Now().Before(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(2 * time.Second):
		}
	}
	cols := append(cqlNames(keyFields), "window_size", "window_start", "window_end")
	for _, c := range columns {
		cols = append(cols, c.CQLName())
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",")
	insert := fmt.Sprintf("INSERT INTO %s.%s (%s) VALUES (%s)", cfg.Keyspace, cfg.Table, strings.Join(cols, ","), marks)
	if cfg.TTL > 0 {
		insert += fmt.Sprintf(" USING TTL %d", int(cfg.TTL.Seconds()))
	}
	return &Cassandra{s: s, cfg: cfg, insert: insert, columns: columns, obs: nopObserver{}}, nil
}

// ErrSchemaMismatch is returned by NewCassandra when the table exists with a column of another
// type than the spec writes, or still without one after CassandraConfig.ColumnWait (a spec
// changed under an existing table). Every row would be refused, so the worker stops at start
// and says which column; a restart does not fix it (the provider's liveagg_rollup_table alters
// the columns in place).
var ErrSchemaMismatch = errors.New("cassandra table does not match the spec")

// errColumnsMissing marks an ErrSchemaMismatch of missing columns only, which an ALTER on its
// way may fix.
var errColumnsMissing = errors.New("columns missing")

// checkColumns compares an existing table's columns with what the sink writes.
func checkColumns(ctx context.Context, s *gocql.Session, cfg CassandraConfig, keyFields []string, columns []Column) error {
	want := map[string]string{"window_size": "int", "window_start": "timestamp", "window_end": "timestamp"}
	for _, k := range cqlNames(keyFields) {
		want[k] = "text"
	}
	for _, c := range columns {
		want[c.CQLName()] = c.CQLType()
	}
	have := map[string]string{}
	iter := s.Query(`SELECT column_name, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?`,
		cfg.Keyspace, cfg.Table).WithContext(ctx).Iter()
	var name, typ string
	for iter.Scan(&name, &typ) {
		have[name] = typ
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("cassandra sink %s.%s: read its columns: %w", cfg.Keyspace, cfg.Table, err)
	}
	var problems []string
	missingOnly := true
	for _, n := range slices.Sorted(maps.Keys(want)) {
		switch got, ok := have[n]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("column %s is missing (the spec writes %s)", n, want[n]))
		case got != want[n]:
			problems = append(problems, fmt.Sprintf("column %s is %s, the spec writes %s", n, got, want[n]))
			missingOnly = false
		}
	}
	switch {
	case len(problems) == 0:
		return nil
	case missingOnly:
		return fmt.Errorf("%w: %s.%s: %s (%w)", ErrSchemaMismatch, cfg.Keyspace, cfg.Table, strings.Join(problems, "; "), errColumnsMissing)
	}
	return fmt.Errorf("%w: %s.%s: %s", ErrSchemaMismatch, cfg.Keyspace, cfg.Table, strings.Join(problems, "; "))
}

// CassandraDDL returns the statements that create a sink's keyspace and table; the Terraform
// provider's rollup table uses the same.
func CassandraDDL(cfg CassandraConfig, keyFields []string, columns []Column) []string {
	// Sorted, class first, so the statement is the same every time (it is generated into files).
	var repl []string
	for k, v := range cfg.Replication {
		repl = append(repl, fmt.Sprintf("'%s': '%s'", k, v))
	}
	sort.Slice(repl, func(i, j int) bool {
		ci, cj := strings.HasPrefix(repl[i], "'class'"), strings.HasPrefix(repl[j], "'class'")
		if ci != cj {
			return ci
		}
		return repl[i] < repl[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s.%s (", cfg.Keyspace, cfg.Table)
	for _, k := range cqlNames(keyFields) {
		fmt.Fprintf(&b, "%s text, ", k)
	}
	b.WriteString("window_size int, window_start timestamp, window_end timestamp, ")
	for _, c := range columns {
		fmt.Fprintf(&b, "%s %s, ", c.CQLName(), c.CQLType())
	}
	fmt.Fprintf(&b, "PRIMARY KEY ((%s, window_size), window_start)) WITH CLUSTERING ORDER BY (window_start DESC)",
		strings.Join(cqlNames(keyFields), ", "))
	return []string{
		fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {%s}", cfg.Keyspace, strings.Join(repl, ", ")),
		b.String(),
	}
}

func cqlName(s string) string { return strings.ReplaceAll(s, ".", "_") }

func cqlNames(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = cqlName(s)
	}
	return out
}

func firstWords(q string) string {
	if i := strings.Index(q, "("); i > 0 {
		return q[:i]
	}
	return q
}

// Name implements Sink.
func (c *Cassandra) Name() string { return "cassandra:" + c.cfg.Keyspace + "." + c.cfg.Table }

// Close implements Sink (the session belongs to the caller).
func (c *Cassandra) Close() error { return nil }

// Observe implements Observable.
func (c *Cassandra) Observe(o Observer) { c.obs = o }

// Open implements Sink.
func (c *Cassandra) Open(context.Context, PartitionKey, string) (Writer, error) {
	retry := &retryPolicy{name: c.Name(), obs: c.obs, min: 50 * time.Millisecond, max: c.cfg.MaxBackoff}
	return &cassandraWriter{c: c, f: newInflight(c.cfg.Concurrency, retry)}, nil
}

type cassandraWriter struct {
	c *Cassandra
	f *inflight
}

func (w *cassandraWriter) Write(ctx context.Context, win *emit.Window) error {
	if err := w.f.firstErr(); err != nil {
		return err
	}
	if len(win.Columns) != len(w.c.columns) {
		return fmt.Errorf("cassandra sink %s.%s: window has columns %v, the table %v", w.c.cfg.Keyspace, w.c.cfg.Table, win.Columns, w.c.columns)
	}
	for i := range win.Rows {
		args := make([]any, 0, len(win.KeyFields)+3+len(win.Columns))
		for _, k := range win.Rows[i].Key {
			args = append(args, k)
		}
		args = append(args, int(win.Size/1000), time.UnixMilli(win.Start), time.UnixMilli(win.End()))
		t := 0
		for j, c := range w.c.columns {
			v := win.Rows[i].Values[j]
			switch c.Kind {
			case agg.ColumnInteger:
				args = append(args, int64(v))
			case agg.ColumnText:
				args = append(args, win.Rows[i].Texts[t])
				t++
			default:
				args = append(args, v)
			}
		}
		row := i
		reject := func(err error) []Rejection {
			return []Rejection{{Sink: w.c.Name(), Window: win, Row: row, Err: err}}
		}
		if err := w.f.goWrite(ctx, func() error { return w.c.exec(ctx, args) }, reject); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cassandra) exec(ctx context.Context, args []any) error {
	if err := c.s.Query(c.insert, args...).WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fmt.Errorf("cassandra sink %s.%s: %w", c.cfg.Keyspace, c.cfg.Table, err)
	}
	return nil
}

func (w *cassandraWriter) Flush(context.Context) (string, error) { return "", w.f.wait() }

// TakeRejections implements Rejecter.
func (w *cassandraWriter) TakeRejections() []Rejection { return w.f.takeRejections() }

func (w *cassandraWriter) Close() error {
	_ = w.f.wait()
	return nil
}
