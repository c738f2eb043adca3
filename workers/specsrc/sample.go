package specsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
)

// Sample is one record checked against a spec: its bytes and where it came from, for messages
// ("records.jsonl:12", "raw/3@1842").
type Sample struct {
	Where string
	Value []byte
}

// SampleReport is what CheckSample found.
type SampleReport struct {
	// Records is how many records were checked.
	Records int
	// Problems says what is wrong with single records, a few per kind, each naming its record.
	Problems []string
	// Absent lists the fields the spec needs that not one readable record has: a spec that
	// names a field its records never carry is wrong, not its records.
	Absent []AbsentField
}

// AbsentField is a field of the spec that no record of a sample has.
type AbsentField struct {
	// Attr is where the spec names it, such as "input.partitioned_by[1]" or "key[0]".
	Attr  string
	Field string
}

func (a AbsentField) String() string {
	return fmt.Sprintf("%s: no record has the field %q", a.Attr, a.Field)
}

// CheckSample decodes each record as a worker would and checks that it has every field the
// spec reads it by: key, time field and input.partitioned_by. The last matters most, since a
// worker never reads those fields of a one-stage spec's records: it trusts the producers to key
// records by them, and a spec that declares a partitioning by a field the records lack
// promises something nobody can keep.
func CheckSample(s *spec.Spec, samples []Sample) (SampleReport, error) {
	var rep SampleReport
	if s.Input.Format != spec.FormatJSON {
		return rep, fmt.Errorf("spec %s reads %s, not JSON records", s.Name, s.Input.Format)
	}
	dec, err := record.NewDecoder(s)
	if err != nil {
		return rep, err
	}
	rec := dec.NewRecord()
	type field struct{ attr, name string }
	var fields []field
	for i, f := range s.Key {
		fields = append(fields, field{fmt.Sprintf("key[%d]", i), f})
	}
	if s.Input.TimeField != "" {
		fields = append(fields, field{"input.time_field", s.Input.TimeField})
	}
	for i, f := range s.Input.PartitionedBy {
		fields = append(fields, field{fmt.Sprintf("input.partitioned_by[%d]", i), f})
	}
	seen := make([]int, len(fields))
	readable := 0
	perKind := map[string]int{}
	report := func(kind, format string, args ...any) {
		if perKind[kind]++; perKind[kind] <= 3 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	for _, smp := range samples {
		rep.Records++
		var doc map[string]any
		if json.Unmarshal(smp.Value, &doc) == nil {
			readable++
			for i, f := range fields {
				if hasField(doc, f.name) {
					seen[i]++
				}
			}
		}
		if err := dec.Decode(smp.Value, 0, rec); err != nil {
			report(string(record.ReasonOf(err)), "%s: %v", smp.Where, err)
			continue
		}
		for i, f := range s.Input.PartitionedBy {
			if slices.Contains(s.Key, f) {
				continue // the decoder read it with the key
			}
			if doc != nil && !hasField(doc, f) {
				report("partitioned_by:"+f, "%s: input.partitioned_by[%d]: the record has no field %q: the producers cannot key records by it", smp.Where, i, f)
			}
		}
	}
	for kind, n := range perKind {
		if n > 3 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%d more records with %s", n-3, kind))
		}
	}
	if readable > 0 {
		for i, f := range fields {
			if seen[i] == 0 {
				rep.Absent = append(rep.Absent, AbsentField{Attr: f.attr, Field: f.name})
			}
		}
	}
	return rep, nil
}

// hasField reports whether a dotted field path names a value in doc.
func hasField(doc map[string]any, path string) bool {
	var v any = doc
	for part := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// SampleRecords is how many of each partition's newest records the plan and `spec explain
// --config` check a spec against.
const SampleRecords = 20

// ReadTopicSample reads up to perPartition of the newest committed records of every partition
// of topic (fewer where transaction markers or aborted records are among them), with a client
// built from opts (the caller's brokers and security). It gives up waiting after a few seconds
// and returns what it has: a sample, not a census. A topic that does not exist yet gives no
// records and no error.
func ReadTopicSample(ctx context.Context, opts []kgo.Opt, topic string, perPartition int) ([]Sample, error) {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	// The last stable offsets: a read_committed reader gets no further.
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list the end offsets of %s: %w", topic, err)
	}
	if errors.Is(ends.Error(), kerr.UnknownTopicOrPartition) {
		return nil, nil
	}
	starts, err := kadm.NewClient(adm).ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list the start offsets of %s: %w", topic, err)
	}
	from := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		s, ok := starts.Lookup(topic, e.Partition)
		if e.Err != nil || !ok || s.Err != nil || e.Offset <= s.Offset {
			return
		}
		from[e.Partition] = kgo.NewOffset().At(max(s.Offset, e.Offset-int64(perPartition)))
		end[e.Partition] = e.Offset
	})
	if len(from) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(append(slices.Clip(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		// Transaction markers too, which may end a partition: they count as read.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []Sample
	for len(end) > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if _, open := end[r.Partition]; !open {
				return
			}
			if !r.Attrs.IsControl() {
				out = append(out, Sample{Where: fmt.Sprintf("%s/%d@%d", topic, r.Partition, r.Offset), Value: r.Value})
			}
			if r.Offset+1 >= end[r.Partition] {
				delete(end, r.Partition)
			}
		})
	}
	return out, nil
}
