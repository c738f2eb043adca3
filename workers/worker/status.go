package worker

import (
	"slices"
	"strings"
	"time"
)

// PartitionStatus is what the admin API reports per owned partition.
type PartitionStatus struct {
	// Stage and Topic say which stage of a two-stage pipeline the partition is of (0 and the
	// input topic's name are omitted for a one-stage spec).
	Stage        int    `json:"stage,omitempty"`
	Topic        string `json:"topic,omitempty"`
	Partition    int32  `json:"partition"`
	Generation   int64  `json:"generation"`
	RestoredFrom int64  `json:"restored_from_offset"`
	NextOffset   int64  `json:"next_offset"`
	Lag          int64  `json:"lag"`
	Records      int64  `json:"records"`
	// BusySeconds is the time the partition's owner spent applying records (decode, state,
	// emitting windows): with Records, the partition's cost per record.
	BusySeconds  float64 `json:"busy_seconds"`
	DeadLettered int64   `json:"dead_lettered"`
	// MisKeyed counts records whose Kafka key contradicts input.partitioned_by, dead-lettered
	// as mis_keyed.
	MisKeyed int64 `json:"mis_keyed"`
	// RowsRejected counts output rows a sink refused for good, dead-lettered as sink_rejected.
	RowsRejected   int64 `json:"rows_rejected"`
	WindowsEmitted int64 `json:"windows_emitted"`
	Series         int   `json:"series"`
	Slots          int   `json:"slots"`
	StateBytes     int64 `json:"state_bytes"`
	Watermark      int64 `json:"watermark_ms"`
	// IdleAdvances counts the times the partition, idle, had its watermark advanced by the
	// wall clock (input.idle_timeout).
	IdleAdvances int64 `json:"idle_advances,omitempty"`
	// WaitingFor lists, for a partition reading partials, the sources whose watermark holds
	// its windows open ("spec/topic/partition"): those that never reported, or the slowest.
	WaitingFor            []string  `json:"waiting_for,omitempty"`
	Checkpoints           int64     `json:"checkpoints"`
	LastCheckpoint        time.Time `json:"last_checkpoint"`
	LastCheckpointOffset  int64     `json:"last_checkpoint_offset"`
	LastCheckpointBytes   int64     `json:"last_checkpoint_bytes"`
	LastCheckpointSeconds float64   `json:"last_checkpoint_seconds"`
	// LastCheckpointPauseSeconds is how long the checkpoint stopped consumption (sink flush
	// and snapshot); the upload runs in the background.
	LastCheckpointPauseSeconds float64 `json:"last_checkpoint_pause_seconds"`
	OffsetLost                 string  `json:"offset_lost,omitempty"`
}

// Status is the worker's state as the admin API reports it.
type Status struct {
	WorkerID   string            `json:"worker_id"`
	Spec       string            `json:"spec"`
	Group      string            `json:"group"`
	Draining   bool              `json:"draining"`
	Partitions []PartitionStatus `json:"partitions"`
	// Stages lists the stages of a spec run in two stages (empty for one).
	Stages []StageStatus `json:"stages,omitempty"`
	// Sinks lists sinks that have failed a write since the worker started, and whether they
	// are holding consumption back now.
	Sinks []SinkStatus `json:"sinks,omitempty"`
}

// Status snapshots the worker's partitions.
func (w *Worker) Status() Status {
	w.mu.Lock()
	s := Status{WorkerID: w.cfg.WorkerID, Spec: w.cfg.Spec.Name, Group: w.cfg.Group, Draining: w.draining}
	owners := make([]*owner, 0, len(w.owners))
	for _, o := range w.owners {
		owners = append(owners, o)
	}
	lag := map[int32]int64{}
	for p, l := range w.lag {
		lag[p] = l
	}
	w.mu.Unlock()
	for _, o := range owners {
		o.mu.Lock()
		ps := o.stat
		o.mu.Unlock()
		ps.Lag = lag[ps.Partition]
		s.Partitions = append(s.Partitions, ps)
	}
	if w.cfg.Stage > 0 {
		for i := range s.Partitions {
			s.Partitions[i].Stage, s.Partitions[i].Topic = w.cfg.Stage, w.cfg.Spec.Input.Topic
		}
	}
	slices.SortFunc(s.Partitions, func(a, b PartitionStatus) int { return int(a.Partition - b.Partition) })
	s.Sinks = w.health.status()
	slices.SortFunc(s.Sinks, func(a, b SinkStatus) int { return strings.Compare(a.Name, b.Name) })
	return s
}
