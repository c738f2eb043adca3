package spec

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// How workers take over from checkpoints of an earlier revision whose state cannot be carried
// over (Spec.OnIncompatibleChange).
const (
	// ChangeFromOffsets starts the new revision at the old revision's checkpointed offsets.
	// Its first windows are rebuilt from the log (see Diff), so every window it writes is whole.
	ChangeFromOffsets = "from_offsets"
	// ChangeBackfill starts the new revision at the earliest retained offset and recomputes
	// every window the topic still holds. It can only be honoured while the topic still holds
	// every record the old revision read.
	ChangeBackfill = "backfill"
)

// IncompatibleChanges are the allowed values of Spec.OnIncompatibleChange, default first.
var IncompatibleChanges = []string{ChangeFromOffsets, ChangeBackfill}

// Action is what the workers of a spec do with checkpoints of an earlier revision, in the words
// the provider's plan and `liveagg spec diff` use.
type Action string

// Actions, from the least to the most disruptive.
const (
	// ActionNone: nothing the state depends on changed; the workers restore and go on.
	ActionNone Action = "carry state over unchanged"
	// ActionMigrate: the state is migrated in place at restart, aggregation by aggregation.
	ActionMigrate Action = "migrate in place"
	// ActionFromOffsets: a new version starts at the old version's checkpointed offsets,
	// its first windows rebuilt from the log.
	ActionFromOffsets Action = "new version from offsets"
	// ActionBackfill: a new version recomputes everything from the earliest retained offset.
	ActionBackfill Action = "backfill"
	// ActionNewSpec: the name or input topic changed, so checkpoints are looked for elsewhere:
	// the spec starts afresh, from the start of its topic.
	ActionNewSpec Action = "new spec"
)

// Change is one difference between two revisions, with what it does to the state.
type Change struct {
	// Field is the spec path that changed (aggregations name their column).
	Field string
	// What says how, in a few words: "1m,1h -> 5m,1h".
	What string
	// Effect is the Action this change alone needs.
	Effect Action
	// Note explains the effect, for a plan or a diff.
	Note string
}

// Plan is the rule applied to a change of spec: what each difference does and what the
// workers do about them all (the most disruptive effect).
type Plan struct {
	Action  Action
	Changes []Change
	// Added and Removed are the aggregations (by column name) whose state starts or is dropped
	// at a migration; Kept maps every carried new aggregation's index to its old index.
	Added, Removed []string
	Kept           map[int]int
}

func (p *Plan) add(c Change) {
	p.Changes = append(p.Changes, c)
	if rank(c.Effect) > rank(p.Action) {
		p.Action = c.Effect
	}
}

func rank(a Action) int {
	return slices.Index([]Action{ActionNone, ActionMigrate, ActionFromOffsets, ActionBackfill, ActionNewSpec}, a)
}

// aggIdentity is what an aggregation's state is made of: two aggregations with the same
// identity keep the same state, whatever their names and reported ranks.
func aggIdentity(a Aggregation) string {
	id := a.Fn + ":" + a.Field
	switch a.Fn {
	case FnLast:
		id += ":" + a.valueType()
	case FnDistinct:
		id += fmt.Sprintf(":p%d", a.Precision)
	case FnQuantiles:
		id += fmt.Sprintf(":a%g", a.RelativeAccuracy)
	}
	return id
}

func (a Aggregation) valueType() string {
	if a.Type == "" {
		return TypeNumber
	}
	return a.Type
}

// Diff applies the rule for changing a running spec from old to new. Both must be valid.
//
//   - The name and the input topic place checkpoints: changing either is a new spec.
//   - The key, the window sizes and the input format shape the state (which series, which
//     windows): a change to any of them is incompatible, handled as new.OnIncompatibleChange
//     says (ActionFromOffsets by default, or ActionBackfill). So is a change of
//     input.partitioned_by that changes the number of stages, but for one stage becoming two
//     over a single window size, whose state becomes the first stage's as it is.
//   - Aggregations are matched by what their state is (function, field, text or number,
//     precision, relative accuracy), not by name or position: matched ones carry their state,
//     removed ones drop it, added ones start at the switch (ActionMigrate). An added
//     aggregation whose state depends on the window's record count or latest time — last,
//     quantiles, and avg of a field no kept sum or avg already sums — cannot start mid-window
//     and makes the change incompatible.
//   - Everything else (lateness, outputs, names, ranks of quantiles, time_unit, skew and size
//     limits) leaves the state as it is (ActionNone).
func Diff(old, new *Spec) Plan {
	p := Plan{Action: ActionNone, Kept: map[int]int{}}
	incompatible := ActionFromOffsets
	if new.OnIncompatibleChange == ChangeBackfill {
		incompatible = ActionBackfill
	}
	if old.Name != new.Name {
		p.add(Change{Field: "name", What: old.Name + " -> " + new.Name, Effect: ActionNewSpec,
			Note: "checkpoints, consumer group and progress topic are named by the spec: the spec starts afresh from the start of its topic"})
	}
	if old.Input.Topic != new.Input.Topic {
		p.add(Change{Field: "input.topic", What: old.Input.Topic + " -> " + new.Input.Topic, Effect: ActionNewSpec,
			Note: "checkpoints are kept per input topic: the spec starts afresh from the start of the new topic"})
	}
	incompat := func(field, what, why string) {
		p.add(Change{Field: field, What: what, Effect: incompatible, Note: why})
	}
	if !slices.Equal(old.Key, new.Key) {
		incompat("key", list(old.Key)+" -> "+list(new.Key), "series are identified by the key: the state cannot be carried over")
	}
	if ow, nw := durations(old.Windows), durations(new.Windows); ow != nw {
		incompat("windows", ow+" -> "+nw, "the state is kept per window size: it cannot be carried over")
	}
	if old.Input.Format != new.Input.Format {
		incompat("input.format", old.Input.Format+" -> "+new.Input.Format, "the state is built from another kind of input")
	}
	if !slices.Equal(old.Input.PartitionedBy, new.Input.PartitionedBy) {
		what := list(old.Input.PartitionedBy) + " -> " + list(new.Input.PartitionedBy)
		oldTwo, newTwo := old.NeedsRepartition(), new.NeedsRepartition()
		switch {
		case oldTwo == newTwo:
			// The declaration is not part of any stage's state: the workers restore it as is.
			// If the producers re-keyed too, no per-partition state is right for the windows
			// open at the change; the docs say to run such a spec in two stages.
			p.add(Change{Field: "input.partitioned_by", What: what, Effect: ActionNone,
				Note: fmt.Sprintf("%s before and after: each partition's state restores as it is", map[bool]string{false: "one stage", true: "two stages"}[newTwo])})
		case newTwo && len(old.Windows) == 1 && old.Windows[0] == new.PartialWindow():
			p.add(Change{Field: "input.partitioned_by", What: what, Effect: ActionNone,
				Note: "one stage becomes two: each partition's state becomes the first stage's as it is; the second stage starts with the windows open at the switch"})
		default:
			incompat("input.partitioned_by", what, "one stage becomes two or two one: the stages keep other state, rebuilt from the log")
		}
	}
	diffAggregations(&p, old, new, incompatible)
	same := func(field, a, b string) {
		if a != b {
			p.add(Change{Field: field, What: a + " -> " + b, Effect: ActionNone, Note: "not part of the state"})
		}
	}
	same("allowed_lateness", old.AllowedLateness.String(), new.AllowedLateness.String())
	same("input.time_field", old.Input.TimeField, new.Input.TimeField)
	same("input.time_unit", old.Input.TimeUnit, new.Input.TimeUnit)
	same("input.max_future_skew", old.Input.MaxFutureSkew.String(), new.Input.MaxFutureSkew.String())
	same("input.max_record_bytes", fmt.Sprint(old.Input.MaxRecordBytes), fmt.Sprint(new.Input.MaxRecordBytes))
	same("on_incompatible_change", cmpOr(old.OnIncompatibleChange), cmpOr(new.OnIncompatibleChange))
	if ob, nb := outputsText(old), outputsText(new); ob != nb {
		p.add(Change{Field: "outputs", What: ob + " -> " + nb, Effect: ActionNone, Note: "outputs are not part of the state"})
	}
	return p
}

func diffAggregations(p *Plan, old, new *Spec, incompatible Action) {
	used := make([]bool, len(old.Aggregations))
	sums := map[string]bool{} // fields a kept sum or avg already sums
	var added []int
	for i, a := range new.Aggregations {
		id := aggIdentity(a)
		j := slices.IndexFunc(old.Aggregations, func(o Aggregation) bool { return aggIdentity(o) == id })
		for j >= 0 && used[j] {
			k := slices.IndexFunc(old.Aggregations[j+1:], func(o Aggregation) bool { return aggIdentity(o) == id })
			if k < 0 {
				j = -1
				break
			}
			j += 1 + k
		}
		if j < 0 {
			added = append(added, i)
			continue
		}
		used[j] = true
		p.Kept[i] = j
		if a.Fn == FnSum || a.Fn == FnAvg {
			sums[a.Field] = true
		}
		o := old.Aggregations[j]
		if o.AggName() != a.AggName() {
			p.add(Change{Field: "aggregations." + a.AggName(), What: "renamed from " + o.AggName(), Effect: ActionNone,
				Note: "a column's name is not part of the state"})
		}
		if j != i {
			p.add(Change{Field: "aggregations." + a.AggName(), What: fmt.Sprintf("moved from position %d to %d", j+1, i+1), Effect: ActionMigrate,
				Note: "its state moves with it"})
		}
		if a.Fn == FnQuantiles && !slices.Equal(a.Quantiles, o.Quantiles) {
			p.add(Change{Field: "aggregations." + a.AggName() + ".quantiles", What: floatList(o.Quantiles) + " -> " + floatList(a.Quantiles),
				Effect: ActionNone, Note: "the sketch is the same; open windows report the new ranks"})
		}
	}
	for _, i := range added {
		a := new.Aggregations[i]
		p.Added = append(p.Added, a.AggName())
		switch {
		case a.Fn == FnLast || a.Fn == FnQuantiles || (a.Fn == FnAvg && !sums[a.Field]):
			p.add(Change{Field: "aggregations." + a.AggName(), What: "added (" + a.Fn + ")", Effect: incompatible,
				Note: "its state depends on the whole window's records, so it cannot start mid-window: the windows open at the switch are rebuilt"})
		case a.Fn == FnCount:
			p.add(Change{Field: "aggregations." + a.AggName(), What: "added (count)", Effect: ActionMigrate,
				Note: "every count is the window's record count: it covers windows open at the switch whole"})
		default:
			p.add(Change{Field: "aggregations." + a.AggName(), What: "added (" + a.Fn + ")", Effect: ActionMigrate,
				Note: "in windows open at the switch it holds the records read after the switch; later windows are whole"})
		}
	}
	for j, o := range old.Aggregations {
		if !used[j] {
			p.Removed = append(p.Removed, o.AggName())
			p.add(Change{Field: "aggregations." + o.AggName(), What: "removed (" + o.Fn + ")", Effect: ActionMigrate,
				Note: "its state is dropped"})
		}
	}
}

func cmpOr(c string) string {
	if c == "" {
		return ChangeFromOffsets
	}
	return c
}

func list(v []string) string { return "[" + strings.Join(v, ",") + "]" }

func durations(ds []Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.String())
	}
	return strings.Join(s, ",")
}

func floatList(fs []float64) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprint(f))
	}
	return "[" + strings.Join(s, ",") + "]"
}

func outputsText(s *Spec) string {
	var parts []string
	for _, o := range s.Outputs {
		t := o.Type
		switch o.Type {
		case OutputCassandra:
			t += ":" + o.Keyspace + "." + o.Table
			if o.TTL != 0 {
				t += " ttl " + o.TTL.String()
			}
		case OutputS3:
			t += ":" + o.URL
		case OutputKafka:
			t += ":" + o.Topic
			if o.Partial {
				t += " partial by " + list(o.Key)
			}
		case OutputFile:
			t += ":" + o.Path
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, ", ")
}

// Summary is the plan in one line: the action and why.
func (p Plan) Summary() string {
	var why []string
	for _, c := range p.Changes {
		if c.Effect == p.Action {
			why = append(why, c.Field+" "+c.What)
		}
	}
	if len(why) == 0 {
		return string(p.Action)
	}
	return string(p.Action) + ": " + strings.Join(why, "; ")
}

// History is what a spec's input topic still holds, for Check.
type History struct {
	// Trimmed lists the partitions whose log no longer starts at offset 0: retention (or a
	// deletion) removed records from them.
	Trimmed []int32
	// Retention is how long the topic keeps records; 0 means without limit (or unknown).
	Retention time.Duration
}

// RebuildSpan is how far back in event time a new version started from offsets reads: the old
// version's open windows (its largest window and its lateness behind the newest record), up to
// one whole new window of every size before that (the new windows must start on a common
// boundary), and the skew a record's event time may have ahead of its log time.
func RebuildSpan(old, new *Spec) time.Duration {
	var oldMax time.Duration
	for _, w := range old.Windows {
		oldMax = max(oldMax, w.Std())
	}
	l := int64(1)
	for _, w := range new.Windows {
		l = lcm(l, w.Millis())
	}
	return old.AllowedLateness.Std() + oldMax + time.Duration(l)*time.Millisecond + new.Input.MaxFutureSkew.Std()
}

func lcm(a, b int64) int64 {
	g, x := a, b
	for x != 0 {
		g, x = x, g%x
	}
	return a / g * b
}

// Refuse says why the plan cannot be honoured whatever the input topic holds, or nil. Both
// refusals are of specs whose partials a reader merges (a second stage, or a next level):
//   - a backfill recomputes partials the reader has merged already, and it would count every
//     record twice;
//   - a key change of a spec run in two stages: the second stage would meet partials of both
//     keys, routed to its partitions by different keys, and could not tell which revision
//     wrote them.
func (p Plan) Refuse(old, new *Spec) error {
	twoStages := old.NeedsRepartition() || new.NeedsRepartition()
	switch {
	case p.Action == ActionBackfill && (twoStages || !old.HasFinalOutputs() || !new.HasFinalOutputs()):
		return errors.New("on_incompatible_change: backfill cannot be honoured for a spec whose partials are merged by a second stage or a next level: " +
			"the reader would merge the recomputed partials with those it has already and count every record twice; use on_incompatible_change: from_offsets")
	case p.Action != ActionNewSpec && !slices.Equal(old.Key, new.Key) && twoStages:
		return fmt.Errorf("the key of a spec run in two stages cannot change in place (%s -> %s): give the spec a new name, "+
			"or declare its input's partitioning within the new key first", list(old.Key), list(new.Key))
	}
	return nil
}

// Check says why the plan cannot be honoured with the input topic as it is, or nil when it
// can: what Refuse refuses, a backfill needs every record the old revision read (no partition
// trimmed), and a new version from offsets needs its rebuild span within the topic's retention.
func (p Plan) Check(old, new *Spec, h History) error {
	if err := p.Refuse(old, new); err != nil {
		return err
	}
	switch p.Action {
	case ActionBackfill:
		if len(h.Trimmed) > 0 {
			return fmt.Errorf("on_incompatible_change: backfill cannot be honoured: records of %s partition(s) %v are already gone (their logs no longer start at offset 0), "+
				"so a backfill would rebuild windows without them and overwrite complete ones; use on_incompatible_change: from_offsets, or give the spec a new name",
				new.Input.Topic, h.Trimmed)
		}
	case ActionFromOffsets:
		if need := RebuildSpan(old, new); h.Retention > 0 && h.Retention < need {
			return fmt.Errorf("a new version from offsets rebuilds its first windows from up to %s of records before the switch, and %s keeps %s; "+
				"its first windows would miss records. Raise the topic's retention, choose smaller windows, or give the spec a new name",
				need, new.Input.Topic, h.Retention)
		}
	}
	return nil
}

// Explain says in a sentence what workers do about the plan, with this change's numbers: the
// words the provider's plan and `liveagg spec diff` print.
func (p Plan) Explain(old, next *Spec) string {
	switch p.Action {
	case ActionNone:
		return "workers restart on the new spec and restore their checkpoints as they are."
	case ActionMigrate:
		return "workers restart and migrate each partition's state in place: kept aggregations keep their state, removed ones drop it, " +
			"added ones start empty in the windows open at the switch (holding the records read after it) and are whole from the next window on."
	case ActionFromOffsets:
		text := fmt.Sprintf("a new version starts at each partition's checkpointed offset; the old version's windows still open there are not written, "+
			"and the new version's windows start at the latest boundary common to its sizes before them, rebuilt from up to %s of records before the switch "+
			"so that every window it writes is whole.", RebuildSpan(old, next))
		if old.NeedsRepartition() && !next.NeedsRepartition() {
			text += " Two stages become one: the rebuild also reaches back to where the second stage had written its windows, and leaves out the rows it had written."
		}
		return text
	case ActionBackfill:
		return "a new version starts at the earliest retained offset of every partition and recomputes every window from there; the output sequence goes on."
	}
	return "the spec's checkpoints are looked for under its new name or topic: it starts afresh from the start of its topic."
}
