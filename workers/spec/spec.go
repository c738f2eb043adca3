// Package spec defines liveagg's aggregation spec: what to read, how to key and window it, what
// to compute, and where to write it. One package parses and validates specs for the worker, the
// Terraform provider and the CLI alike, so a spec that passes `terraform plan` is exactly a spec a
// worker accepts.
//
// Specs are YAML or JSON (one schema; JSON is read as YAML). Parsing is strict: unknown fields are
// errors, and every error names the field path and what is allowed, for example
// `aggregations[2].field: required for sum`. Parse returns all the errors it finds, not the first.
//
// This package knows nothing of Kafka, S3 or Cassandra clients; it only describes them.
package spec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Spec is one aggregation pipeline level.
type Spec struct {
	// Name identifies the spec in checkpoints, consumer groups, tables and metrics.
	Name string `yaml:"name,omitempty"`
	// Input is what to read.
	Input Input `yaml:"input,omitempty"`
	// Key lists the record fields whose values identify a series.
	Key []string `yaml:"key,omitempty"`
	// Windows are the tumbling window sizes computed at once for every series.
	Windows []Duration `yaml:"windows,omitempty"`
	// AllowedLateness is how far behind the newest event time a record may be and still count.
	AllowedLateness Duration `yaml:"allowed_lateness,omitempty"`
	// Aggregations are the functions computed per (series, window).
	Aggregations []Aggregation `yaml:"aggregations,omitempty"`
	// Outputs receive every closed window.
	Outputs []Output `yaml:"outputs,omitempty"`
	// Version numbers the spec's stored revisions: the provider writes 1 when it creates a
	// spec and one more on every change it stores. Checkpoints record the version (and the
	// document) that wrote them, so a worker can tell a checkpoint of an older revision, which
	// it carries over by the rule of Diff, from one of a newer revision, which it must not
	// touch. 0 means unversioned (a spec written by hand that never set it).
	Version int `yaml:"version,omitempty"`
	// OnIncompatibleChange is how workers take over from checkpoints of an earlier revision
	// whose state cannot be carried over (see Diff): ChangeFromOffsets (the default when
	// empty) or ChangeBackfill.
	OnIncompatibleChange string `yaml:"on_incompatible_change,omitempty"`
}

// Input describes the records a spec reads.
type Input struct {
	// Topic is the Kafka topic to consume.
	Topic string `yaml:"topic,omitempty"`
	// Format is FormatJSON (raw events) or FormatPartials (partial states from a lower level).
	Format string `yaml:"format,omitempty"`
	// TimeField is the event-time field of a JSON record (dotted for nested objects).
	TimeField string `yaml:"time_field,omitempty"`
	// TimeUnit is how TimeField is written: s, ms, us, ns (numbers) or rfc3339 (strings).
	TimeUnit string `yaml:"time_unit,omitempty"`
	// MaxFutureSkew bounds how far a record's event time may run ahead of its Kafka log
	// timestamp. A far-future record would otherwise drag the watermark forward and make every
	// later record late. Checked against the log timestamp, not the wall clock, so a replay
	// decides exactly as the first run did.
	MaxFutureSkew Duration `yaml:"max_future_skew,omitempty"`
	// MaxRecordBytes rejects larger records before parsing them.
	MaxRecordBytes int `yaml:"max_record_bytes,omitempty"`
	// PartitionedBy declares the fields the topic's producers key records by: every record's
	// Kafka key is the canonical key of these fields (see CanonicalKey), so one series is on
	// one partition. Empty means unknown. A spec with final outputs is only right when the
	// input is partitioned by a subset of its key: the worker checks every record against
	// the declaration and dead-letters the ones that contradict it as mis_keyed.
	PartitionedBy []string `yaml:"partitioned_by,omitempty"`
	// IdleTimeout, if set, lets a partition with nothing more to read advance its watermark by
	// the wall clock once it has been quiet that long, so its last windows close without
	// waiting for its next record. 0 (the default) waits for records. Not for format partials,
	// whose watermark follows its sources'.
	IdleTimeout Duration `yaml:"idle_timeout,omitempty"`
}

// HasFinalOutputs says whether the spec writes final values anywhere (not only partials).
func (s *Spec) HasFinalOutputs() bool {
	for _, o := range s.Outputs {
		if !o.Partial {
			return true
		}
	}
	return false
}

// Input formats.
const (
	FormatJSON     = "json"
	FormatPartials = "partials"
)

// Time units of Input.TimeUnit.
const (
	UnitSeconds = "s"
	UnitMillis  = "ms"
	UnitMicros  = "us"
	UnitNanos   = "ns"
	UnitRFC3339 = "rfc3339"
)

// Aggregation is one function computed per (series, window).
type Aggregation struct {
	// Name is the output column; it defaults to "count" or "<fn>_<field>".
	Name string `yaml:"name,omitempty"`
	// Fn is the function: count, sum, min, max, avg, last, distinct or quantiles.
	Fn string `yaml:"fn,omitempty"`
	// Field is the record field the function reads (not for count).
	Field string `yaml:"field,omitempty"`
	// Precision is the HyperLogLog precision of distinct (4-18; default 14: about 0.8 % error).
	Precision int `yaml:"precision,omitempty"`
	// RelativeAccuracy is the DDSketch relative error of quantiles (default 0.01).
	RelativeAccuracy float64 `yaml:"relative_accuracy,omitempty"`
	// Quantiles are the ranks quantiles reports (default 0.5, 0.9, 0.99).
	Quantiles []float64 `yaml:"quantiles,omitempty"`
	// Type is what last keeps: TypeNumber (the default when empty) or TypeText, the field's
	// value as text (strings as they are; numbers and booleans as their JSON text).
	Type string `yaml:"type,omitempty"`
}

// Value types of Aggregation.Type.
const (
	TypeNumber = "number"
	TypeText   = "text"
)

// IsText says whether the aggregation keeps text rather than a number.
func (a Aggregation) IsText() bool { return a.Type == TypeText }

// Aggregation functions.
const (
	FnCount     = "count"
	FnSum       = "sum"
	FnMin       = "min"
	FnMax       = "max"
	FnAvg       = "avg"
	FnLast      = "last"
	FnDistinct  = "distinct"
	FnQuantiles = "quantiles"
)

// Output is a destination for closed windows.
type Output struct {
	// Type is cassandra, s3, kafka, file or stdout.
	Type string `yaml:"type,omitempty"`
	// Partial emits mergeable partial states for a next level instead of final values.
	Partial bool `yaml:"partial,omitempty"`
	// Key re-keys partial states by this subset of the spec's key (only with Partial).
	Key []string `yaml:"key,omitempty"`
	// Keyspace and Table name the Cassandra table (type cassandra).
	Keyspace string `yaml:"keyspace,omitempty"`
	Table    string `yaml:"table,omitempty"`
	// TTL expires Cassandra rows (type cassandra; 0 keeps them).
	TTL Duration `yaml:"ttl,omitempty"`
	// URL is s3://bucket/prefix (type s3).
	URL string `yaml:"url,omitempty"`
	// Topic is the Kafka topic (type kafka).
	Topic string `yaml:"topic,omitempty"`
	// Path is a folder for newline-delimited JSON files (type file).
	Path string `yaml:"path,omitempty"`
}

// Output types.
const (
	OutputCassandra = "cassandra"
	OutputS3        = "s3"
	OutputKafka     = "kafka"
	OutputFile      = "file"
	OutputStdout    = "stdout"
)

// Allowed values, in the order error messages list them. The provider builds its validators
// and descriptions from these same lists.
var (
	Formats      = []string{FormatJSON, FormatPartials}
	TimeUnits    = []string{UnitSeconds, UnitMillis, UnitMicros, UnitNanos, UnitRFC3339}
	Functions    = []string{FnCount, FnSum, FnMin, FnMax, FnAvg, FnLast, FnDistinct, FnQuantiles}
	ValueTypes   = []string{TypeNumber, TypeText}
	OutputTypes  = []string{OutputCassandra, OutputS3, OutputKafka, OutputFile, OutputStdout}
	PartialTypes = []string{OutputKafka}
)

// Defaults applied by Parse to fields left empty.
const (
	DefaultTimeUnit         = UnitMillis
	DefaultMaxFutureSkew    = Duration(time.Hour)
	DefaultMaxRecordBytes   = 1 << 20
	DefaultPrecision        = 14
	DefaultRelativeAccuracy = 0.01
	// MaxWindow bounds window sizes: state keeps event-time offsets within a window in 32 bits
	// of milliseconds, and a week is already far beyond what in-memory rollups are for.
	MaxWindow = Duration(7 * 24 * time.Hour)
)

// DefaultQuantiles are the ranks of a quantiles aggregation that names none.
var DefaultQuantiles = []float64{0.5, 0.9, 0.99}

// Duration is a time.Duration written as "30s", "1m", "15m", "1h" or "1d".
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Millis returns d in whole milliseconds.
func (d Duration) Millis() int64 { return time.Duration(d).Milliseconds() }

// String formats d the way ParseDuration reads it back, preferring whole days, hours, minutes.
func (d Duration) String() string {
	td := time.Duration(d)
	switch {
	case td == 0:
		return "0s"
	case td%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	case td%time.Hour == 0:
		return strconv.FormatInt(int64(td/time.Hour), 10) + "h"
	case td%time.Minute == 0:
		return strconv.FormatInt(int64(td/time.Minute), 10) + "m"
	case td%time.Second == 0:
		return strconv.FormatInt(int64(td/time.Second), 10) + "s"
	}
	return td.String()
}

// MarshalText writes d as String does, so specs round-trip through YAML and JSON.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ParseDuration reads Go durations ("90s", "1h30m") and whole days ("1d").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q is not a duration (like 30s, 1m, 15m, 1h, 1d)", s)
		}
		return Duration(time.Duration(days) * 24 * time.Hour), nil
	}
	td, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (like 30s, 1m, 15m, 1h, 1d)", s)
	}
	return Duration(td), nil
}

// AggName returns the output column name of a, its Name or the default derived from Fn and Field.
func (a Aggregation) AggName() string {
	if a.Name != "" {
		return a.Name
	}
	if a.Fn == FnCount {
		return FnCount
	}
	return a.Fn + "_" + strings.ReplaceAll(a.Field, ".", "_")
}
