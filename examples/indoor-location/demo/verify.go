package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/spec"
)

// verify reads back every rollup the workers wrote and every dead letter, compares them with
// the recomputation, and writes one sorted rollup file per rollup spec.
func verify(ctx context.Context, o Options, specs []*spec.Spec, ref *reference, kopts []kgo.Opt, partsDir string) (*Result, error) {
	res := &Result{ExpectedDead: ref.dead, Windows: len(ref.rows), PerSpec: map[string]int{}}
	seen := map[rowID]int{}
	var top map[rowID]map[string]float64
	for _, s := range specs {
		if !hasRollupOutput(s) {
			continue
		}
		var quantiles []float64
		accuracy := 0.01
		for _, a := range s.Aggregations {
			if a.Fn == spec.FnQuantiles {
				quantiles, accuracy = a.Quantiles, a.RelativeAccuracy
			}
		}
		largest := slices.Max(rollupOf(s).sizes)
		emitted := map[rowID]map[string]float64{}
		var lines [][]byte
		paths, _ := filepath.Glob(filepath.Join(partsDir, s.Name+"-*.jsonl"))
		for _, path := range paths {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				line := slices.Clone(sc.Bytes())
				lines = append(lines, line)
				id, vals, err := parseRow(line, s)
				if err != nil {
					return nil, fmt.Errorf("demo: %s: %w", path, err)
				}
				seen[id]++
				if id.Size == largest {
					emitted[id] = vals
				}
				if seen[id] > 1 {
					res.Duplicated++
					res.note(fmt.Sprintf("%v emitted %d times", id, seen[id]))
					continue
				}
				want := ref.rows[id]
				if want == nil {
					res.Unexpected++
					res.note(fmt.Sprintf("%v emitted but not expected (count %v)", id, vals["count"]))
					continue
				}
				if d := checkRow(id, vals, want, accuracy, quantiles); len(d) > 0 {
					res.Wrong++
					for _, x := range d {
						res.note(x)
					}
				} else {
					res.PerSpec[s.Name]++
				}
			}
		}
		// One sorted file per spec: the same seed and size always give the same bytes,
		// whatever the crashes interrupted.
		slices.SortFunc(lines, bytes.Compare)
		out := filepath.Join(o.Out, s.Name+".jsonl")
		if err := os.WriteFile(out, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		res.Files = append(res.Files, out)
		top = emitted // the last rollup spec is the coarsest: org rollups
	}
	for id := range ref.rows {
		if seen[id] == 0 {
			res.Lost++
			res.note(fmt.Sprintf("%v never emitted", id))
		}
	}
	dead, err := readDeadLetters(ctx, kopts)
	if err != nil {
		return nil, err
	}
	res.DeadLetters = dead
	for _, s := range specs {
		for _, o := range s.Outputs {
			if o.Partial {
				n, b, err := topicSize(ctx, kopts, o.Topic)
				if err != nil {
					return nil, err
				}
				res.Partials += n
				res.PartialBytes += b
			}
		}
	}
	res.Top = topRows(top, 8)
	return res, nil
}

func (r *Result) note(d string) {
	if len(r.Differences) < 10 {
		r.Differences = append(r.Differences, d)
	}
}

// parseRow reads one emitted JSON row with encoding/json, independently of the engine.
func parseRow(line []byte, s *spec.Spec) (rowID, map[string]float64, error) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return rowID{}, nil, fmt.Errorf("row %q: %w", line, err)
	}
	str := func(k string) string { v, _ := m[k].(string); return v }
	start, err := time.Parse(time.RFC3339, str("window_start"))
	if err != nil {
		return rowID{}, nil, fmt.Errorf("row %q: window_start: %w", line, err)
	}
	size, err := time.ParseDuration(str("window_size"))
	if err != nil {
		return rowID{}, nil, fmt.Errorf("row %q: window_size: %w", line, err)
	}
	vals := make([]string, len(s.Key))
	for i, k := range s.Key {
		vals[i] = str(k)
	}
	id := rowID{Spec: str("spec"), Key: strings.Join(vals, "/"), Size: size.Milliseconds(), Start: start.UnixMilli()}
	nums := map[string]float64{}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			nums[k] = f
		}
	}
	return id, nums, nil
}

// readDeadLetters counts the committed records of the dead-letter topic by their reason
// header: exactly-once covers dead letters too, so the counts must match exactly.
func readDeadLetters(ctx context.Context, kopts []kgo.Opt) (map[string]int64, error) {
	counts := map[string]int64{}
	err := readTopic(ctx, kopts, dlqTopic, func(r *kgo.Record) {
		reason := "unknown"
		for _, h := range r.Headers {
			if h.Key == "liveagg-reason" {
				reason = string(h.Value)
			}
		}
		switch reason {
		case "late", "bad_partial":
		default:
			reason = "malformed" // wrong type, missing field, bad JSON: all malformed input
		}
		counts[reason]++
	})
	return counts, err
}

// topicSize counts a topic's committed records and their key and value bytes.
func topicSize(ctx context.Context, kopts []kgo.Opt, topic string) (n, size int64, err error) {
	err = readTopic(ctx, kopts, topic, func(r *kgo.Record) {
		n++
		size += int64(len(r.Key) + len(r.Value))
	})
	return n, size, err
}

func readTopic(ctx context.Context, kopts []kgo.Opt, topic string, each func(*kgo.Record)) error {
	cl, err := kgo.NewClient(append(kopts, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fs.NumRecords() == 0 {
			return nil
		}
		fs.EachRecord(each)
	}
}

// topRows picks the n emitted rollups with the most records.
func topRows(rows map[rowID]map[string]float64, n int) []TopRow {
	ids := make([]rowID, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b rowID) int {
		if ca, cb := rows[a]["count"], rows[b]["count"]; ca != cb {
			if ca > cb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.String(), b.String())
	})
	var out []TopRow
	for _, id := range ids[:min(n, len(ids))] {
		v := rows[id]
		out = append(out, TopRow{Key: id.Key, Window: fmtTime(id.Start) + " +" + fmtSize(id.Size),
			Count: int64(v["count"]), Devices: v["distinct_device"], P50RSSI: v["quantiles_rssi_p50"]})
	}
	return out
}

func fmtTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04") }
func fmtSize(ms int64) string { return spec.Duration(time.Duration(ms) * time.Millisecond).String() }
