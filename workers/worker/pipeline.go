package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/liveagg/liveagg/workers/agg"
	"github.com/liveagg/liveagg/workers/state"
)

// Pipeline runs the stages of one spec (see spec.Spec.Stages) in one process: a Worker per
// stage, each with its own consumer group, partitions and checkpoints, under one lifecycle. A
// spec whose input is keyed within its key runs as a Pipeline of one stage; one whose input is
// keyed otherwise, or not known to be, runs a first stage that pre-aggregates each input
// partition into partials, re-keyed through the spec's repartition topic, and a second that
// merges them. Every worker of the fleet runs both, so one fleet and one deploy serve the spec.
type Pipeline struct {
	stages []*Worker
}

// NewPipeline returns the pipeline of stages, in pipeline order.
func NewPipeline(stages ...*Worker) *Pipeline { return &Pipeline{stages: stages} }

// Run runs every stage until ctx ends, Drain completes, or a stage fails; a failure stops the
// others (without a final checkpoint, as any failure: the restart replays).
func (p *Pipeline) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errs := make(chan error, len(p.stages))
	for _, w := range p.stages {
		go func() {
			err := w.Run(ctx)
			if err != nil {
				cancel(err)
			}
			errs <- err
		}()
	}
	var first error
	for range p.stages {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Drain drains every stage at once: each checkpoints its partitions and leaves its group.
func (p *Pipeline) Drain(ctx context.Context) error {
	return p.each(func(w *Worker) error { return w.Drain(ctx) })
}

// Checkpoint checkpoints every partition of every stage.
func (p *Pipeline) Checkpoint(ctx context.Context) error {
	return p.each(func(w *Worker) error { return w.Checkpoint(ctx) })
}

func (p *Pipeline) each(f func(*Worker) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.stages))
	for i, w := range p.stages {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(w) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status reports the first stage's identity and every stage's partitions and sinks.
func (p *Pipeline) Status() Status {
	s := p.stages[0].Status()
	if len(p.stages) == 1 {
		return s
	}
	s.Stages = []StageStatus{p.stages[0].stageStatus()}
	for _, w := range p.stages[1:] {
		ws := w.Status()
		s.Stages = append(s.Stages, w.stageStatus())
		s.Draining = s.Draining || ws.Draining
		s.Partitions = append(s.Partitions, ws.Partitions...)
		s.Sinks = append(s.Sinks, ws.Sinks...)
	}
	return s
}

// Totals sums the stages' totals, except records: the pipeline's records are its input's, the
// first stage's, so that time per record is the whole pipeline's cost of a raw record.
func (p *Pipeline) Totals() Totals {
	t := p.stages[0].Totals()
	t.DeadLetteredByReason = maps.Clone(t.DeadLetteredByReason)
	for _, w := range p.stages[1:] {
		wt := w.Totals()
		t.DeadLettered += wt.DeadLettered
		t.SinkErrors += wt.SinkErrors
		t.IdleAdvances += wt.IdleAdvances
		t.Busy += wt.Busy
		for r, n := range wt.DeadLetteredByReason {
			if t.DeadLetteredByReason == nil {
				t.DeadLetteredByReason = map[string]int64{}
			}
			t.DeadLetteredByReason[r] += n
		}
	}
	return t
}

// StageStatus names one stage of a pipeline in the status.
type StageStatus struct {
	Stage int    `json:"stage"`
	Topic string `json:"topic"`
	Group string `json:"group"`
}

func (w *Worker) stageStatus() StageStatus {
	return StageStatus{Stage: w.cfg.Stage, Topic: w.cfg.Spec.Input.Topic, Group: w.cfg.Group}
}

// StageGroup is the consumer group of a pipeline's stage: the spec's group for the first stage
// (the one lag alarms and the autoscaler watch, on the input topic), with a suffix after it.
func StageGroup(group string, stage int) string {
	if stage <= 1 {
		return group
	}
	return fmt.Sprintf("%s.stage%d", group, stage)
}

// ranInOneStage says whether a checkpoint's state was written by the spec the worker's stage
// derives from, run in one stage: a checkpoint from before the spec ran in two.
func (w *Worker) ranInOneStage(snapshot []byte) bool {
	src := w.cfg.Source
	if w.cfg.Stage != 1 || src == nil {
		return false
	}
	layout, err := agg.LayoutOf(src)
	if err != nil {
		return false
	}
	fp, ok := state.SnapshotFingerprint(snapshot)
	return ok && fp == state.Fingerprint(src, layout)
}
