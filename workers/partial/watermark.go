package partial

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
)

// A watermark marker is the other record of a partials topic. A level writing partials sends,
// with every checkpoint, one marker to every partition of the topic: "source S has emitted
// every window that ends at or before W". A next level closes a window only when every source
// has passed its end, so partials that reach it out of order (one input partition lagging, a
// restart replaying) are never late: event time is merged by windows, not by arrival.
//
// A marker's value, version 1:
//
//	"law" magic, version byte 1
//	uvarint len, source group: the writing spec and its input topic, "spec/topic"
//	uvarint  source partition;  uvarint sources in the group (the input's partition count)
//	varint   watermark, Unix ms
//
// The source's partials are in the same partition before its marker (one producer, one
// transaction), so by the time a reader sees the marker it has seen them all.
const markerMagic = "law"

// Marker says that one source has emitted every window ending at or before Watermark.
type Marker struct {
	// Group names the writing level and the topic it reads ("spec/topic"); Source is its
	// partition of that topic and Sources the topic's partition count.
	Group     string
	Source    int32
	Sources   int32
	Watermark int64
}

// IsMarker says whether a partials topic record is a watermark marker rather than a partial.
func IsMarker(v []byte) bool { return len(v) >= 4 && string(v[:3]) == markerMagic }

// AppendMarker appends m's encoding to dst.
func AppendMarker(dst []byte, m Marker) []byte {
	dst = append(dst, markerMagic...)
	dst = append(dst, Version)
	dst = binary.AppendUvarint(dst, uint64(len(m.Group)))
	dst = append(dst, m.Group...)
	dst = binary.AppendUvarint(dst, uint64(m.Source))
	dst = binary.AppendUvarint(dst, uint64(m.Sources))
	return binary.AppendVarint(dst, m.Watermark)
}

// ParseMarker decodes a marker.
func ParseMarker(v []byte) (Marker, error) {
	var m Marker
	if !IsMarker(v) {
		return m, fmt.Errorf("%w: not a watermark marker", ErrBad)
	}
	if v[3] != Version {
		return m, fmt.Errorf("%w: watermark marker version %d, this build reads %d", ErrBad, v[3], Version)
	}
	b := v[4:]
	group, b, err := chunk(b)
	if err != nil {
		return m, fmt.Errorf("watermark marker group: %w", err)
	}
	src, n := binary.Uvarint(b)
	if n <= 0 {
		return m, fmt.Errorf("%w: watermark marker: truncated source", ErrBad)
	}
	b = b[n:]
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return m, fmt.Errorf("%w: watermark marker: truncated source count", ErrBad)
	}
	b = b[n:]
	wm, n := binary.Varint(b)
	if n <= 0 || n != len(b) {
		return m, fmt.Errorf("%w: watermark marker: bad watermark", ErrBad)
	}
	if count == 0 || count > math.MaxInt32 || src >= count {
		return m, fmt.Errorf("%w: watermark marker: source %d of %d", ErrBad, src, count)
	}
	return Marker{Group: string(group), Source: int32(src), Sources: int32(count), Watermark: wm}, nil
}

// Watermarks is what a partition reading partials knows of its sources: each source's newest
// watermark. Its minimum is the partition's watermark. It is part of the partition's checkpoint,
// so a replay decides window closes from the same knowledge as the first run did.
type Watermarks struct {
	groups map[string]*sourceGroup
}

type sourceGroup struct {
	// At is each source's watermark; unknown is noWatermark.
	At []int64 `json:"at"`
}

const noWatermark = math.MinInt64

// NewWatermarks returns a tracker that knows no source yet.
func NewWatermarks() *Watermarks { return &Watermarks{groups: map[string]*sourceGroup{}} }

// Observe records a marker. A source's watermark only moves forward: a marker replayed by a
// restarted source, or an older one read late, changes nothing. A group that grew (partitions
// were added to its topic) waits for its new sources too.
func (ws *Watermarks) Observe(m Marker) {
	g := ws.groups[m.Group]
	if g == nil {
		g = &sourceGroup{}
		ws.groups[m.Group] = g
	}
	for len(g.At) < int(m.Sources) {
		g.At = append(g.At, noWatermark)
	}
	if m.Watermark > g.At[m.Source] {
		g.At[m.Source] = m.Watermark
	}
}

// Min returns the smallest watermark over every source of every group seen, and false while
// any of them has not reported yet: a window closes only once everything that could add to it
// has said it will not.
func (ws *Watermarks) Min() (int64, bool) {
	if len(ws.groups) == 0 {
		return 0, false
	}
	low := int64(math.MaxInt64)
	for _, g := range ws.groups {
		for _, at := range g.At {
			if at == noWatermark {
				return 0, false
			}
			low = min(low, at)
		}
	}
	return low, true
}

// Waiting lists the sources that hold the minimum back (those that never reported, or those at
// the minimum), for status pages: "spec/topic/partition".
func (ws *Watermarks) Waiting() []string {
	low, ok := ws.Min()
	var out []string
	for _, name := range slices.Sorted(maps.Keys(ws.groups)) {
		for p, at := range ws.groups[name].At {
			if at == noWatermark || (ok && at == low) {
				out = append(out, fmt.Sprintf("%s/%d", name, p))
			}
		}
	}
	return out
}

// MarshalJSON encodes the tracker for a checkpoint.
func (ws *Watermarks) MarshalJSON() ([]byte, error) { return json.Marshal(ws.groups) }

// UnmarshalJSON restores a tracker from a checkpoint.
func (ws *Watermarks) UnmarshalJSON(b []byte) error {
	groups := map[string]*sourceGroup{}
	if err := json.Unmarshal(b, &groups); err != nil {
		return fmt.Errorf("source watermarks: %w", err)
	}
	for name, g := range groups {
		if g == nil {
			return fmt.Errorf("source watermarks: group %q is empty", name)
		}
	}
	ws.groups = groups
	return nil
}
