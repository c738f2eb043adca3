package partial_test

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/liveagg/liveagg/workers/partial"
)

func TestMarkerRoundTrip(t *testing.T) {
	for _, m := range []partial.Marker{
		{Group: "l1/raw", Source: 0, Sources: 1, Watermark: 0},
		{Group: "spec-a/topic.with.dots", Source: 63, Sources: 64, Watermark: 1767225600000},
		{Group: "s/t", Source: 2, Sources: 3, Watermark: -5},
		{Group: "s/t", Source: 2, Sources: 3, Watermark: math.MaxInt64},
	} {
		v := partial.AppendMarker(nil, m)
		if !partial.IsMarker(v) {
			t.Fatalf("%+v: not recognised as a marker", m)
		}
		got, err := partial.ParseMarker(v)
		if err != nil || got != m {
			t.Errorf("%+v: parsed %+v, %v", m, got, err)
		}
		for i := range len(v) - 1 {
			if _, err := partial.ParseMarker(v[:i]); err == nil {
				t.Errorf("%+v truncated to %d bytes: parsed", m, i)
			}
		}
	}
	bad := partial.AppendMarker(nil, partial.Marker{Group: "s/t", Source: 5, Sources: 3})
	if _, err := partial.ParseMarker(bad); !errors.Is(err, partial.ErrBad) {
		t.Errorf("source 5 of 3: %v", err)
	}
	if partial.IsMarker([]byte("lap\x01...")) {
		t.Error("a partial taken for a marker")
	}
}

// TestWatermarksTakeTheMinimumOfEverySource: nothing until every source of every group has
// reported; then the slowest source's watermark; markers never move a source back; a group that
// grows waits for its new sources; and the tracker survives a checkpoint round trip.
func TestWatermarksTakeTheMinimumOfEverySource(t *testing.T) {
	ws := partial.NewWatermarks()
	check := func(step string, want int64, wantOK bool) {
		t.Helper()
		got, ok := ws.Min()
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("%s: min %d %v, want %d %v", step, got, ok, want, wantOK)
		}
	}
	check("empty", 0, false)
	ws.Observe(partial.Marker{Group: "a/t", Source: 0, Sources: 3, Watermark: 100})
	ws.Observe(partial.Marker{Group: "a/t", Source: 2, Sources: 3, Watermark: 300})
	check("one source silent", 0, false)
	if w := ws.Waiting(); !slices.Equal(w, []string{"a/t/1"}) {
		t.Errorf("waiting for %v, want a/t/1", w)
	}
	ws.Observe(partial.Marker{Group: "a/t", Source: 1, Sources: 3, Watermark: 200})
	check("all reported", 100, true)
	ws.Observe(partial.Marker{Group: "a/t", Source: 0, Sources: 3, Watermark: 50}) // a replay's older marker
	check("older marker", 100, true)
	ws.Observe(partial.Marker{Group: "a/t", Source: 0, Sources: 3, Watermark: 400})
	check("slowest moved", 200, true)
	ws.Observe(partial.Marker{Group: "b/u", Source: 0, Sources: 1, Watermark: 150})
	check("second group", 150, true)
	ws.Observe(partial.Marker{Group: "b/u", Source: 1, Sources: 2, Watermark: 900}) // b/u grew to 2 partitions
	check("grown group, all reported", 150, true)
	ws.Observe(partial.Marker{Group: "a/t", Source: 3, Sources: 4, Watermark: 1000})
	b, err := json.Marshal(ws)
	if err != nil {
		t.Fatal(err)
	}
	back := partial.NewWatermarks()
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	ws = back
	check("restored", 150, true)
	if err := json.Unmarshal([]byte(`{"a/t": null}`), partial.NewWatermarks()); err == nil {
		t.Error("a damaged tracker restored")
	}
}
