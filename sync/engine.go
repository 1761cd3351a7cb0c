package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// SourceSpec is a configured source.
type SourceSpec struct {
	Name   string
	Source Source
}

// SinkSpec is a configured sink and how the engine drives it.
type SinkSpec struct {
	Name string
	Sink Sink
	// Concurrency is how many identities are applied at once; default 4.
	Concurrency int
	// Safety holds this sink's limits.
	Safety Safety
	// DeleteAfter turns on delete_user for accounts idsync disabled that long ago.
	DeleteAfter time.Duration
	// BreakAfter opens the sink's circuit after that many operations failed in a
	// row: nothing more is sent to it in this run, and what was not attempted is
	// retried in the next. 0 turns the breaker off.
	BreakAfter int
	// Inviter, when set, delivers the invitations the sink gives for new accounts
	// (onboarding: email); create_user operations then ask the sink for one.
	Inviter Inviter
}

// Options tunes an Engine.
type Options struct {
	// Safety holds the run-wide limits (min_source_ratio).
	Safety Safety
	// DrainTimeout is how long operations in flight may go on once the run's context
	// is cancelled, so that what a sink has done is recorded; default 30s.
	DrainTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics, when set, receive the engine's measurements.
	Metrics *Metrics
	// ProgressEvery is how often a long apply phase reports its progress; default 5s.
	ProgressEvery time.Duration
	// Progress, when set, receives the reports instead of the log (a terminal's
	// progress bar).
	Progress func(Progress)
}

// Engine runs: read, merge, plan, guard, apply, record.
type Engine struct {
	sources []SourceSpec
	sinks   []SinkSpec
	store   Store
	opt     Options
	log     *slog.Logger
	// drifted holds, per sink, the identities the last Verify found changed by hand,
	// until an operation on them succeeds: the repair.
	drifted map[string]map[string]bool
}

// New returns an engine. It does no I/O.
func New(sources []SourceSpec, sinks []SinkSpec, store Store, opt Options, log *slog.Logger) *Engine {
	if opt.DrainTimeout <= 0 {
		opt.DrainTimeout = 30 * time.Second
	}
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = 5 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	names := make([]string, len(sinks))
	for i := range sinks {
		if sinks[i].Concurrency <= 0 {
			sinks[i].Concurrency = 4
		}
		names[i] = sinks[i].Name
	}
	opt.Metrics.sinks(names)
	return &Engine{sources: sources, sinks: sinks, store: store, opt: opt, log: log}
}

// RunOptions are one run's choices.
type RunOptions struct {
	// DryRun stops after the guards: no sink is written, nothing is recorded.
	DryRun bool
	// AcceptGuard applies the run even though a safety limit tripped.
	AcceptGuard bool
	// FullRead reads incremental sources in full, as if they had no mark.
	FullRead bool
	// Approve, when set, sees the report with its plans and guards before anything is
	// applied; an error stops the run there, with nothing applied (--apply-plan checks
	// that the plan is the one reviewed).
	Approve func(*Report) error
}

// Report is what a run did, or, for a dry run, would do.
type Report struct {
	Summary RunSummary
	// Plans has one plan per sink, in configuration order.
	Plans []Plan
	// Problems lists the invalid identities' problems; Unanchored the rows without an
	// id, which stop absent people from being disabled in this run.
	Problems   []string
	Unanchored []string
}

// Held reports whether a guard held the run.
func (r *Report) Held() bool { return len(r.Summary.Guards) > 0 && !r.Summary.Accepted }

// Run does one run. It returns an error when the run failed: a source could not be
// read whole, the snapshot could not be read or written, or ctx ended it. A run held by
// a guard, or with failed operations, is not an error: the report says so.
func (e *Engine) Run(ctx context.Context, ro RunOptions) (*Report, error) {
	rep := &Report{Summary: RunSummary{Started: e.opt.Now(), Sources: make(map[string]int)}}
	marks, err := e.run(ctx, ro, rep)
	sum := &rep.Summary
	sum.Finished = e.opt.Now()
	// The reads' marks count once every planned operation is applied: what failed
	// must be read again, as a change, next time.
	if err == nil && marks != nil && !ro.DryRun && !rep.Held() && !incomplete(sum) {
		sum.Marks = marks
	}
	switch {
	case err != nil:
		sum.Result, sum.Error = ResultFailed, err.Error()
	case ro.DryRun:
		sum.Result = ResultDryRun
	case rep.Held():
		sum.Result = ResultHeld
	case incomplete(sum) || undelivered(sum):
		sum.Result = ResultPartial
	default:
		sum.Result = ResultSuccess
	}
	log := e.log.With("result", sum.Result, "duration", sum.Finished.Sub(sum.Started).Round(time.Millisecond))
	if err != nil {
		log.Error("run failed", "err", err)
	} else {
		log.Info("run finished", "identities", sum.Identities, "held_identities", sum.Held, "failed_ops", sum.FailedOps())
	}
	if !ro.DryRun {
		start := e.opt.Now()
		if rerr := e.store.RecordRun(*sum); rerr != nil {
			err = errors.Join(err, fmt.Errorf("record run: %w", rerr))
		}
		e.opt.Metrics.phase("record", start, e.opt.Now())
	}
	e.opt.Metrics.runEnded(sum)
	return rep, err
}

// undelivered reports invitations that failed or expired: the run needs a look.
func undelivered(s *RunSummary) bool {
	for _, k := range s.Sinks {
		if k.Invitations["failed"] > 0 || k.Invitations["expired"] > 0 {
			return true
		}
	}
	return false
}

func incomplete(s *RunSummary) bool {
	for _, k := range s.Sinks {
		if len(k.Failed) > 0 || len(k.Skipped) > 0 {
			return true
		}
	}
	return false
}

// run does the run's work into rep, and returns the marks of its incremental reads.
func (e *Engine) run(ctx context.Context, ro RunOptions, rep *Report) (map[string]json.RawMessage, error) {
	sum := &rep.Summary
	runs, err := e.store.Runs(0)
	if err != nil {
		return nil, fmt.Errorf("read run history: %w", err)
	}
	marks := lastMarks(runs)
	sum.Marks = marks // carried forward unless this run applies everything
	reads := make([]SourceRead, 0, len(e.sources))
	m := e.opt.Metrics
	start := e.opt.Now()
	var newMarks map[string]json.RawMessage
	for _, s := range e.sources {
		prev := marks[s.Name]
		if ro.FullRead {
			prev = nil
		}
		if sz, ok := s.Source.(Sizer); ok {
			sz.Expect(lastRead(runs, s.Name))
		}
		ids, delta, mark, err := e.read(ctx, s, prev)
		m.sourceRead(s.Name, len(ids), delta, err)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		if delta {
			sum.Delta = true
			e.log.Info("source read: changes since the last read only", "source", s.Name, "identities", len(ids))
		} else {
			e.log.Info("source read", "source", s.Name, "identities", len(ids))
		}
		if mark != nil {
			if newMarks == nil {
				newMarks = maps.Clone(marks)
			}
			if newMarks == nil {
				newMarks = make(map[string]json.RawMessage)
			}
			newMarks[s.Name] = mark
		}
		sum.Sources[s.Name] = len(ids)
		reads = append(reads, SourceRead{Source: s.Name, Identities: ids})
	}
	m.phase("read", start, e.opt.Now())
	start = e.opt.Now()
	desired := Merge(reads)
	sum.Identities, sum.Held = desired.Valid, len(desired.Identities)-desired.Valid
	rep.Problems, rep.Unanchored = desired.Problems, desired.Unanchored
	if len(desired.Problems) > 0 {
		e.log.Warn("identities held: present but invalid, left as they are", "count", len(desired.Problems))
	}
	if !desired.Complete {
		e.log.Warn("some rows have no id: nobody is disabled for being absent in this run", "rows", len(desired.Unanchored))
	}

	if !sum.Delta { // a delta of a few changes, or none, is no sign of a bad read
		sum.Guards = CheckSources(reads, desired.Valid, lastGood(runs), e.opt.Safety)
	}
	// needs holds, per sink, the snapshot entries its plan is about: the snapshot is
	// read an entry at a time, and the rest is dropped as soon as it is compared.
	needs := make([]map[string]Entry, len(e.sinks))
	for i, s := range e.sinks {
		d := NewDiffer(checked(s, desired.Identities), DiffOptions{
			Schema: s.Sink.Schema(), Complete: desired.Complete && !sum.Delta, DeleteAfter: s.DeleteAfter, Now: sum.Started,
			Delta: sum.Delta,
		})
		err := e.store.Entries(s.Name, func(en Entry) error {
			d.Add(en)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sink %s: read snapshot: %w", s.Name, err)
		}
		plan, need := d.Plan()
		needs[i] = need
		plan.Sink = s.Name
		m.plan(&plan, d.Entries())
		rep.Plans = append(rep.Plans, plan)
		sum.Guards = append(sum.Guards, CheckPlan(&plan, s.Safety)...)
	}
	for _, g := range sum.Guards {
		e.log.Warn("safety limit tripped", "guard", g.Guard, "scope", g.Scope, "got", g.Got, "limit", g.Limit)
	}
	m.trips(sum.Guards)
	m.phase("plan", start, e.opt.Now())
	if len(sum.Guards) > 0 && ro.AcceptGuard {
		sum.Accepted = true
		e.log.Warn("safety limits overridden for this run (--accept-guard)")
	}
	if ro.DryRun || rep.Held() {
		for _, p := range rep.Plans {
			sum.Sinks = append(sum.Sinks, SinkSummary{Sink: p.Sink, Planned: p.Counts()})
		}
		return newMarks, nil
	}

	if ro.Approve != nil {
		if err := ro.Approve(rep); err != nil {
			return nil, err
		}
	}

	start = e.opt.Now()
	defer func() { m.phase("apply", start, e.opt.Now()) }()
	results := make(chan sinkResult, len(e.sinks))
	for i, s := range e.sinks {
		go func() {
			ss, err := e.apply(ctx, s, rep.Plans[i], needs[i])
			results <- sinkResult{i, ss, err}
		}()
	}
	sum.Sinks = make([]SinkSummary, len(e.sinks))
	var errs []error
	for range e.sinks {
		r := <-results
		sum.Sinks[r.i] = r.summary
		if r.err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", e.sinks[r.i].Name, r.err))
		}
	}
	return newMarks, errors.Join(errs...)
}

type sinkResult struct {
	i       int
	summary SinkSummary
	err     error
}

// read reads one source: a delta when the source can give one and it is the only
// source (a merge of several sources needs every source's whole view of a person), and
// the mark of the read for next time.
func (e *Engine) read(ctx context.Context, s SourceSpec, mark json.RawMessage) (ids []Identity, delta bool, next json.RawMessage, err error) {
	ds, ok := s.Source.(DeltaSource)
	if !ok || len(e.sources) > 1 {
		ids, err = s.Source.Read(ctx)
		return ids, false, nil, err
	}
	d, err := ds.ReadDelta(ctx, mark)
	if err != nil {
		return nil, false, nil, err
	}
	return d.Identities, !d.Full, d.Mark, nil
}

// lastMarks returns the incremental sources' marks of the newest run, which carries
// them forward.
func lastMarks(runs []RunSummary) map[string]json.RawMessage {
	if len(runs) == 0 {
		return nil
	}
	return runs[0].Marks
}

// lastRead returns how many identities source gave the newest run that read it
// whole, 0 when none did.
func lastRead(runs []RunSummary, source string) int {
	for _, r := range runs {
		if n, ok := r.Sources[source]; ok && !r.Delta {
			return n
		}
	}
	return 0
}

// lastGood returns the valid identities of the last run that applied its plan after a
// full read.
func lastGood(runs []RunSummary) int {
	for _, r := range runs {
		if (r.Result == ResultSuccess || r.Result == ResultPartial) && !r.Delta {
			return r.Identities
		}
	}
	return 0
}

// checked returns the desired identities as the sink may take them: those its Checker
// refuses are marked with its problems, so that this sink holds them. The map is
// copied only when something is refused.
func checked(s SinkSpec, desired map[string]*Identity) map[string]*Identity {
	c, ok := s.Sink.(Checker)
	if !ok {
		return desired
	}
	var out map[string]*Identity
	for id, w := range desired {
		if !w.Valid() {
			continue
		}
		problems := c.Check(w)
		if len(problems) == 0 {
			continue
		}
		if out == nil {
			out = maps.Clone(desired)
		}
		want := *w // the other sinks' identity stays as it is
		want.Problems = slices.Clip(want.Problems)
		for _, p := range problems {
			want.Problems = append(want.Problems, want.Where()+": sink "+s.Name+": "+p)
		}
		out[id] = &want
	}
	if out == nil {
		return desired
	}
	return out
}
