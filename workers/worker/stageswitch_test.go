package worker

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/partial"
	"github.com/liveagg/liveagg/workers/record"
	"github.com/liveagg/liveagg/workers/spec"
)

// TestWrittenRowFindsTheSecondStagePartition: after two stages became one, a row counts as
// written by the partition of the repartition topic its series' partials went to, which the
// first stage chose by hashing the partial's key: the rule must agree with that key, for keys
// of one field and of several, and only for the second stage's window sizes.
func TestWrittenRowFindsTheSecondStagePartition(t *testing.T) {
	const parts = 6
	topic := spec.RepartitionTopic("s")
	for _, fields := range [][]string{{"k"}, {"org", "site", "floor"}} {
		t.Run(strings.Join(fields, ","), func(t *testing.T) {
			ss := &secondStage{topic: topic, partitions: parts, written: map[int32]int64{}, windows: map[int64]bool{60_000: true},
				part: kgo.StickyKeyPartitioner(nil).ForTopic(topic)}
			// Partition p has written windows ending up to p minutes in.
			for p := range int32(parts) {
				ss.written[p] = int64(p) * 60_000
			}
			render := partial.Renderer(1, fields)
			outbox := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
			for i := range 200 {
				vals := make([]string, len(fields))
				for j := range vals {
					vals[j] = fmt.Sprintf("v%d-%d", j, i*7+j)
				}
				win := &emit.Window{Size: 60_000, KeyFields: fields, Rows: []emit.Row{{Key: vals}}, States: [][]byte{nil}}
				key, _ := render(win, 0, nil, nil)
				p := int64(outbox.Partition(&kgo.Record{Key: key}, parts))
				stateKey := []byte(strings.Join(vals, string(record.KeySep)))
				for end := int64(60_000); end <= parts*60_000; end += 60_000 {
					if got, want := ss.writtenRow(60_000, end, stateKey), end <= p*60_000; got != want {
						t.Fatalf("series %v (partition %d), window ending %d: written %v, want %v", vals, p, end, got, want)
					}
				}
				if ss.writtenRow(120_000, 120_000, stateKey) {
					t.Fatalf("a window size the second stage did not have counted as written")
				}
			}
		})
	}
}

// TestSecondStageProgressUnknown: without the repartition topic nothing counts as written and
// the rebuild goes by the first stage alone; with a second-stage partition that wrote nothing,
// it reaches back to the start of the log.
func TestSecondStageProgressUnknown(t *testing.T) {
	gone := &secondStage{written: map[int32]int64{}, windows: map[int64]bool{60_000: true}, min: math.MaxInt64}
	if gone.writtenRow(60_000, 60_000, []byte("k")) {
		t.Error("a row counted as written without a second stage to have written it")
	}
	if got := gone.rebuildFrom(120_000); got != 120_000 {
		t.Errorf("rebuildFrom = %d, want the first stage's 120000", got)
	}
	silent := &secondStage{written: map[int32]int64{0: 60_000, 1: math.MinInt64}, min: math.MinInt64}
	if got := silent.rebuildFrom(120_000); got != 0 {
		t.Errorf("rebuildFrom = %d, want 0: a partition of the second stage never wrote", got)
	}
	ahead := &secondStage{written: map[int32]int64{0: 60_000, 1: 90_000}, min: 60_000}
	if got := ahead.rebuildFrom(120_000); got != 60_000 {
		t.Errorf("rebuildFrom = %d, want the second stage's 60000", got)
	}
}
