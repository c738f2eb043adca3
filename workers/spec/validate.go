package spec

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	nameRE  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	fieldRE = regexp.MustCompile(`^[^.\s][^\s]*$`)
	cqlRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)
)

// ApplyDefaults fills the fields a spec author may leave out. Parse calls it; Validate assumes it.
func (s *Spec) ApplyDefaults() {
	if s.Input.Format == "" {
		s.Input.Format = FormatJSON
	}
	if s.Input.Format == FormatJSON && s.Input.TimeUnit == "" {
		s.Input.TimeUnit = DefaultTimeUnit
	}
	if s.Input.MaxFutureSkew == 0 {
		s.Input.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if s.Input.MaxRecordBytes == 0 {
		s.Input.MaxRecordBytes = DefaultMaxRecordBytes
	}
	for i := range s.Aggregations {
		a := &s.Aggregations[i]
		switch a.Fn {
		case FnDistinct:
			if a.Precision == 0 {
				a.Precision = DefaultPrecision
			}
		case FnQuantiles:
			if a.RelativeAccuracy == 0 {
				a.RelativeAccuracy = DefaultRelativeAccuracy
			}
			if len(a.Quantiles) == 0 {
				a.Quantiles = slices.Clone(DefaultQuantiles)
			}
		}
		if a.Name == "" {
			a.Name = a.AggName()
		}
	}
}

// Validate checks every rule a worker relies on and returns all violations as Errors.
func (s *Spec) Validate() error {
	var errs Errors
	switch {
	case s.Name == "":
		errs.add("name", "required: lowercase letters, digits, - and _, starting with a letter")
	case !nameRE.MatchString(s.Name):
		errs.add("name", "%q must be 1-64 lowercase letters, digits, - and _, starting with a letter", s.Name)
	}
	if s.Version < 0 {
		errs.add("version", "must not be negative")
	}
	if c := s.OnIncompatibleChange; c != "" && !slices.Contains(IncompatibleChanges, c) {
		errs.add("on_incompatible_change", "%q is not %s", c, oneOf(IncompatibleChanges))
	}
	s.validateInput(&errs)
	validateKey(&errs, "key", s.Key, true)
	s.validatePartitioning(&errs)
	s.validateWindows(&errs)
	switch lat := s.AllowedLateness.Std(); {
	case lat < 0:
		errs.add("allowed_lateness", "must not be negative")
	case lat > 24*time.Hour:
		errs.add("allowed_lateness", "%s is more than 1d: state would hold a day of windows open", s.AllowedLateness)
	case lat%time.Millisecond != 0:
		errs.add("allowed_lateness", "must be whole milliseconds")
	}
	s.validateAggregations(&errs)
	s.validateColumns(&errs)
	s.validateOutputs(&errs)
	return errs.err()
}

func (s *Spec) validateInput(errs *Errors) {
	in := s.Input
	switch {
	case in.Topic == "":
		errs.add("input.topic", "required: the Kafka topic to read")
	case !topicRE.MatchString(in.Topic):
		errs.add("input.topic", "%q is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)", in.Topic)
	}
	if !slices.Contains(Formats, in.Format) {
		errs.add("input.format", "%q is not supported: %s", in.Format, oneOf(Formats))
	}
	if in.Format == FormatJSON {
		switch {
		case in.TimeField == "":
			errs.add("input.time_field", "required for format json: the event-time field")
		case !fieldRE.MatchString(in.TimeField):
			errs.add("input.time_field", "%q is not a field name (dotted for nested fields, no spaces)", in.TimeField)
		}
		if !slices.Contains(TimeUnits, in.TimeUnit) {
			errs.add("input.time_unit", "%q is not supported: %s", in.TimeUnit, oneOf(TimeUnits))
		}
	}
	if in.Format == FormatPartials {
		if in.TimeField != "" {
			errs.add("input.time_field", "not allowed for format partials: event time is each partial's window")
		}
		if in.TimeUnit != "" {
			errs.add("input.time_unit", "not allowed for format partials")
		}
	}
	if in.MaxFutureSkew < 0 {
		errs.add("input.max_future_skew", "must not be negative")
	}
	switch {
	case in.IdleTimeout < 0:
		errs.add("input.idle_timeout", "must not be negative")
	case in.IdleTimeout > 0 && in.IdleTimeout < Duration(time.Second):
		errs.add("input.idle_timeout", "%s is too short to tell a quiet partition from a busy one: at least 1s", in.IdleTimeout)
	case in.IdleTimeout > 0 && in.Format == FormatPartials:
		errs.add("input.idle_timeout", "not for format partials: the watermark of a level reading partials follows its sources' markers, which idle sources keep sending")
	}
	if in.MaxRecordBytes < 0 || in.MaxRecordBytes > 64<<20 {
		errs.add("input.max_record_bytes", "%d is out of range: 1 to 67108864 (64 MiB)", in.MaxRecordBytes)
	}
}

// validatePartitioning checks the declared input partitioning. Any partitioning is right: a
// spec whose partitioning is not within its key runs in two stages (see Stages).
func (s *Spec) validatePartitioning(errs *Errors) {
	in := s.Input
	if len(in.PartitionedBy) == 0 {
		return
	}
	if in.Format == FormatPartials {
		errs.add("input.partitioned_by", "not for format partials: a level that reads partials merges them by the partials' key")
		return
	}
	validateKey(errs, "input.partitioned_by", in.PartitionedBy, false)
}

func validateKey(errs *Errors, path string, key []string, required bool) {
	if len(key) == 0 {
		if required {
			errs.add(path, "required: at least one field that identifies a series")
		}
		return
	}
	seen := map[string]bool{}
	for i, k := range key {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !fieldRE.MatchString(k):
			errs.add(p, "%q is not a field name (dotted for nested fields, no spaces)", k)
		case seen[k]:
			errs.add(p, "%q is listed twice", k)
		}
		seen[k] = true
	}
}

func (s *Spec) validateWindows(errs *Errors) {
	if len(s.Windows) == 0 {
		errs.add("windows", "required: at least one tumbling window size, like [1m, 15m]")
	}
	seen := map[Duration]bool{}
	for i, w := range s.Windows {
		p := fmt.Sprintf("windows[%d]", i)
		switch d := w.Std(); {
		case d <= 0:
			errs.add(p, "must be positive")
		case d%time.Second != 0:
			errs.add(p, "%s must be whole seconds", w)
		case w > MaxWindow:
			errs.add(p, "%s is longer than the maximum window %s", w, MaxWindow)
		case seen[w]:
			errs.add(p, "%s is listed twice", w)
		case (24*time.Hour)%d != 0 && d%(24*time.Hour) != 0:
			errs.add(p, "%s must divide a day evenly (or be whole days), so windows align to midnight UTC", w)
		}
		seen[w] = true
	}
}

func (s *Spec) validateAggregations(errs *Errors) {
	if len(s.Aggregations) == 0 {
		errs.add("aggregations", "required: at least one of %s", strings.Join(Functions, ", "))
	}
	names := map[string]int{}
	for i, a := range s.Aggregations {
		p := fmt.Sprintf("aggregations[%d]", i)
		if !slices.Contains(Functions, a.Fn) {
			if a.Fn == "" {
				errs.add(p+".fn", "required: %s", oneOf(Functions))
			} else {
				errs.add(p+".fn", "%q is not supported: %s", a.Fn, oneOf(Functions))
			}
			continue
		}
		switch {
		case a.Fn == FnCount && a.Field != "":
			errs.add(p+".field", "not allowed for count: count counts records")
		case a.Fn != FnCount && a.Field == "":
			errs.add(p+".field", "required for %s", a.Fn)
		case a.Field != "" && !fieldRE.MatchString(a.Field):
			errs.add(p+".field", "%q is not a field name (dotted for nested fields, no spaces)", a.Field)
		}
		switch {
		case a.Type != "" && !slices.Contains(ValueTypes, a.Type):
			errs.add(p+".type", "%q is not supported: %s", a.Type, oneOf(ValueTypes))
		case a.Type == TypeText && a.Fn != FnLast:
			errs.add(p+".type", "text is only for last; %s computes numbers", a.Fn)
		}
		if a.Fn != FnDistinct && a.Precision != 0 {
			errs.add(p+".precision", "only for distinct")
		}
		if a.Fn == FnDistinct && (a.Precision < 4 || a.Precision > 18) {
			errs.add(p+".precision", "%d is out of range: 4 to 18 (14 gives about 0.8 %% error)", a.Precision)
		}
		if a.Fn != FnQuantiles && (a.RelativeAccuracy != 0 || len(a.Quantiles) != 0) {
			if a.RelativeAccuracy != 0 {
				errs.add(p+".relative_accuracy", "only for quantiles")
			}
			if len(a.Quantiles) != 0 {
				errs.add(p+".quantiles", "only for quantiles")
			}
		}
		if a.Fn == FnQuantiles {
			if ra := a.RelativeAccuracy; !(ra > 0 && ra <= 0.5) || math.IsNaN(ra) {
				errs.add(p+".relative_accuracy", "%v is out of range: more than 0 and at most 0.5 (0.01 is 1 %%)", ra)
			}
			seen := map[float64]bool{}
			for j, q := range a.Quantiles {
				qp := fmt.Sprintf("%s.quantiles[%d]", p, j)
				switch {
				case !(q >= 0 && q <= 1):
					errs.add(qp, "%v is out of range: 0 to 1", q)
				case seen[q]:
					errs.add(qp, "%v is listed twice", q)
				}
				seen[q] = true
			}
		}
		switch {
		case !cqlRE.MatchString(a.Name):
			errs.add(p+".name", "%q must be 1-48 lowercase letters, digits and _, starting with a letter (it becomes a column)", a.Name)
		case a.Name == "count" && a.Fn != FnCount, reserved[a.Name]:
			errs.add(p+".name", "%q is reserved for liveagg's own columns", a.Name)
		default:
			if j, dup := names[a.Name]; dup {
				errs.add(p+".name", "%q is already the name of aggregations[%d]; give one a name", a.Name, j)
			}
		}
		names[a.Name] = i
	}
}

// validateColumns rejects an aggregation whose output column is also another column of the
// same row: a key field's (dots become underscores, as stores name columns), a window column,
// or one another aggregation writes (quantiles writes <name>_p50 and so on). Such a spec would
// otherwise pass and its Cassandra output fail mid-apply on a duplicate column.
func (s *Spec) validateColumns(errs *Errors) {
	owner := map[string]string{}
	for _, k := range s.Key {
		owner[strings.ReplaceAll(k, ".", "_")] = fmt.Sprintf("the column of key field %q", k)
	}
	for _, c := range []string{"window_size", "window_start", "window_end"} {
		owner[c] = "liveagg's own window column"
	}
	named := map[string]bool{}
	for i, a := range s.Aggregations {
		// An unknown fn, a malformed, reserved or repeated name: validateAggregations said so.
		if !slices.Contains(Functions, a.Fn) || !cqlRE.MatchString(a.Name) || reserved[a.Name] || named[a.Name] {
			continue
		}
		named[a.Name] = true
		cols := []string{a.Name}
		if a.Fn == FnQuantiles {
			cols = cols[:0]
			for _, q := range a.Quantiles {
				// As agg.QuantileSuffix names ranks: 0.5 is p50, 0.999 p99_9.
				cols = append(cols, a.Name+"_p"+strings.ReplaceAll(strconv.FormatFloat(q*100, 'f', -1, 64), ".", "_"))
			}
		}
		for _, c := range cols {
			if o, taken := owner[c]; taken {
				what := fmt.Sprintf("%q", a.Name)
				if c != a.Name {
					what = fmt.Sprintf("%q writes the column %s, which", a.Name, c)
				}
				errs.add(fmt.Sprintf("aggregations[%d].name", i), "%s is also %s: a row cannot have two columns of one name; give the aggregation another name", what, o)
				break
			}
		}
		for _, c := range cols {
			if _, taken := owner[c]; !taken {
				owner[c] = fmt.Sprintf("a column of aggregations[%d]", i)
			}
		}
	}
}

// reserved are output columns liveagg writes besides the aggregations.
var reserved = map[string]bool{"series": true, "window_start": true, "window_end": true, "window_size": true, "spec": true}

func (s *Spec) validateOutputs(errs *Errors) {
	if len(s.Outputs) == 0 {
		errs.add("outputs", "required: at least one of %s", strings.Join(OutputTypes, ", "))
	}
	for i, o := range s.Outputs {
		p := fmt.Sprintf("outputs[%d]", i)
		if !slices.Contains(OutputTypes, o.Type) {
			if o.Type == "" {
				errs.add(p+".type", "required: %s", oneOf(OutputTypes))
			} else {
				errs.add(p+".type", "%q is not supported: %s", o.Type, oneOf(OutputTypes))
			}
			continue
		}
		need := func(field, val, what string) {
			if val == "" {
				errs.add(p+"."+field, "required for %s: %s", o.Type, what)
			}
		}
		forbid := func(field string, set bool) {
			if set {
				errs.add(p+"."+field, "not allowed for %s", o.Type)
			}
		}
		forbid("keyspace", o.Type != OutputCassandra && o.Keyspace != "")
		forbid("table", o.Type != OutputCassandra && o.Table != "")
		forbid("ttl", o.Type != OutputCassandra && o.TTL != 0)
		forbid("url", o.Type != OutputS3 && o.URL != "")
		forbid("topic", o.Type != OutputKafka && o.Topic != "")
		forbid("path", o.Type != OutputFile && o.Path != "")
		switch o.Type {
		case OutputCassandra:
			need("keyspace", o.Keyspace, "the keyspace")
			need("table", o.Table, "the table")
			if o.Keyspace != "" && !cqlRE.MatchString(o.Keyspace) {
				errs.add(p+".keyspace", "%q must be lowercase letters, digits and _, starting with a letter", o.Keyspace)
			}
			if o.Table != "" && !cqlRE.MatchString(o.Table) {
				errs.add(p+".table", "%q must be lowercase letters, digits and _, starting with a letter", o.Table)
			}
			if o.TTL < 0 {
				errs.add(p+".ttl", "must not be negative")
			}
		case OutputS3:
			need("url", o.URL, "s3://bucket/prefix")
			if o.URL != "" && !s3URLRE.MatchString(o.URL) {
				errs.add(p+".url", "%q is not s3://bucket/prefix", o.URL)
			}
		case OutputKafka:
			need("topic", o.Topic, "the Kafka topic")
			if o.Topic != "" && !topicRE.MatchString(o.Topic) {
				errs.add(p+".topic", "%q is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)", o.Topic)
			}
			if o.Topic != "" && o.Topic == s.Input.Topic {
				errs.add(p+".topic", "%q is the input topic: a spec would read its own output", o.Topic)
			}
		case OutputFile:
			need("path", o.Path, "a folder for .jsonl files")
		}
		if o.Partial {
			if !slices.Contains(PartialTypes, o.Type) {
				errs.add(p+".partial", "partial states go through kafka outputs only (a next level reads them with read_committed)")
			}
			validateKey(errs, p+".key", o.Key, true)
			for j, k := range o.Key {
				if !slices.Contains(s.Key, k) {
					errs.add(fmt.Sprintf("%s.key[%d]", p, j), "%q is not in the spec's key %v: partials re-key by a subset of it", k, s.Key)
				}
			}
		} else if len(o.Key) != 0 {
			errs.add(p+".key", "only for partial outputs (partial: true)")
		}
	}
}

var s3URLRE = regexp.MustCompile(`^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$`)
