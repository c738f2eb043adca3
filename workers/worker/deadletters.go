package worker

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// deadLetterLog makes dead letters loud without flooding the log: per reason, the first dead
// letter is logged at once and then at most one line a minute, each with how many went since
// the last line and one sample (partition, offset, a truncated preview and the detail).
// Operators learn from the log, not only from the dead-letter topic's headers, that a producer
// is sending records that cannot be used.
type deadLetterLog struct {
	every time.Duration
	mu    sync.Mutex
	by    map[string]*reasonLog
}

type reasonLog struct {
	last    time.Time
	skipped int64
	total   int64 // over the worker's life, for the CloudWatch publisher's deltas
}

// totals returns the dead letters per reason over the worker's life.
func (d *deadLetterLog) totals() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int64, len(d.by))
	for reason, r := range d.by {
		out[reason] = r.total
	}
	return out
}

func newDeadLetterLog(every time.Duration) *deadLetterLog {
	return &deadLetterLog{every: every, by: map[string]*reasonLog{}}
}

// previewBytes caps the sample of a record shown in the log.
const previewBytes = 120

// note records one dead letter and logs it if its reason has not been logged for a while.
func (d *deadLetterLog) note(log *slog.Logger, reason, preview string, partition int32, offset int64, detail string) {
	now := time.Now()
	d.mu.Lock()
	r := d.by[reason]
	if r == nil {
		r = &reasonLog{}
		d.by[reason] = r
	}
	r.total++
	if !r.last.IsZero() && now.Sub(r.last) < d.every {
		r.skipped++
		d.mu.Unlock()
		return
	}
	skipped := r.skipped
	r.last, r.skipped = now, 0
	d.mu.Unlock()
	if len(preview) > previewBytes {
		preview = preview[:previewBytes] + "..."
	}
	log.Warn("dead-lettered", "reason", reason, "more_since_last_line", skipped,
		"sample_partition", partition, "sample_offset", offset, "detail", detail,
		"sample", strings.ToValidUTF8(preview, "\uFFFD"))
}
