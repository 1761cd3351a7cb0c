package sync

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// maxReportedErrors caps the per-operation errors a run summary keeps; the counts are
// always complete.
const maxReportedErrors = 1000

// opResult is what a worker reports of one operation.
type opResult struct {
	op      Op
	err     error // the sink's error: the operation failed
	skipped bool  // not attempted
	// entries is how the operation changed the number of entries in the snapshot:
	// 1 for the first write of a new identity, -1 for a delete.
	entries int
}

// apply carries out one sink's plan. An identity's operations run in phase order, one
// after the other; different identities run concurrently, up to the sink's concurrency,
// and never wait for each other. Every success is committed to the snapshot before that
// identity's next operation. A failed operation is recorded on its entry and ends that
// identity's chain; the others go on. When ctx ends, no new operation starts, and those
// in flight get DrainTimeout to finish and be recorded.
//
// snap holds the snapshot entries of the plan's identities (a Differ's Plan gives
// them); an identity without one is new. The error is for what stops the whole sink:
// the snapshot could not be written.
func (e *Engine) apply(ctx context.Context, s SinkSpec, plan Plan, snap map[string]Entry) (SinkSummary, error) {
	sum := SinkSummary{Sink: s.Name, Planned: plan.Counts()}
	if plan.Empty() {
		return sum, nil
	}
	log := e.log.With("sink", s.Name)
	chains := chainsOf(plan.Ops)

	// dispatch ends on ctx or on a snapshot failure; exec outlives it by DrainTimeout.
	dispatch, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	exec, cancelExec := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelExec()
	defer context.AfterFunc(dispatch, func() { time.AfterFunc(e.opt.DrainTimeout, cancelExec) })()

	jobs := make(chan []Op)
	results := make(chan opResult, s.Concurrency)
	fatal := make(chan error, s.Concurrency)
	done := make(chan struct{})
	for range s.Concurrency {
		go func() {
			defer func() { done <- struct{}{} }()
			c := &committer{store: e.store, sink: s.Name}
			fail := func(err error) {
				select {
				case fatal <- err:
				default: // one is enough
				}
				stop(err)
			}
			for chain := range jobs {
				entry, known := snap[chain[0].ID]
				if err := e.applyChain(dispatch, exec, s, chain, entry, !known, c, results); err != nil {
					fail(err)
				}
			}
			if err := c.wait(); err != nil {
				fail(err)
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i, chain := range chains {
			select {
			case jobs <- chain:
			case <-dispatch.Done():
				for _, c := range chains[i:] {
					for _, op := range c {
						results <- opResult{op: op, skipped: true}
					}
				}
				return
			}
		}
	}()
	go func() {
		for range s.Concurrency {
			<-done
		}
		close(results)
	}()

	sum.Applied, sum.Failed, sum.Skipped = map[OpKind]int{}, map[OpKind]int{}, map[OpKind]int{}
	m := e.opt.Metrics
	inARow := 0 // operations failed in a row, for the circuit breaker
	for r := range results {
		m.snapshotSize(s.Name, r.entries)
		switch {
		case r.skipped:
			sum.Skipped[r.op.Kind]++
			m.operation(s.Name, r.op.Kind, "skipped")
		case r.err != nil:
			sum.Failed[r.op.Kind]++
			m.operation(s.Name, r.op.Kind, "failure")
			if inARow++; inARow == s.BreakAfter {
				log.Error("circuit breaker open: no more operations for this sink in this run", "failed_in_a_row", inARow)
				m.breakerTrip(s.Name)
				stop(fmt.Errorf("%d operations failed in a row: %w", inARow, ErrCircuitOpen))
			}
			if len(sum.Errors) < maxReportedErrors {
				sum.Errors = append(sum.Errors, OpError{ID: r.op.ID, Kind: r.op.Kind, Error: r.err.Error()})
			}
			log.Warn("operation failed", "op", r.op, "err", r.err)
		default:
			sum.Applied[r.op.Kind]++
			m.operation(s.Name, r.op.Kind, "success")
			inARow = 0
			if drifted := e.drifted[s.Name]; drifted[r.op.ID] {
				delete(drifted, r.op.ID)
				m.driftRepaired(s.Name)
			}
		}
	}
	sum.Applied, sum.Failed, sum.Skipped = nilIfEmpty(sum.Applied), nilIfEmpty(sum.Failed), nilIfEmpty(sum.Skipped)
	select {
	case err := <-fatal:
		return sum, err
	default:
	}
	if err := context.Cause(dispatch); errors.Is(err, ErrCircuitOpen) {
		return sum, err
	} else if err != nil {
		return sum, fmt.Errorf("run interrupted: %w", err)
	}
	return sum, nil
}

// chainsOf groups a sorted plan's operations by identity, keeping phase order, and
// orders the chains by their first operation: creates start first, disables last.
func chainsOf(ops []Op) [][]Op {
	index := make(map[string]int)
	var chains [][]Op
	for _, op := range ops {
		i, ok := index[op.ID]
		if !ok {
			i = len(chains)
			index[op.ID] = i
			chains = append(chains, nil)
		}
		chains[i] = append(chains[i], op)
	}
	return chains
}

// applyChain runs one identity's operations in order. Each success is committed to the
// snapshot before the identity's next operation starts; the commit of its last
// operation is left in flight, to overlap the next identity's first request, and
// waited for before the worker's next commit. It returns an error when the sink can go
// on no longer: the snapshot cannot be written, or the sink said ErrStopSink.
func (e *Engine) applyChain(dispatch, exec context.Context, s SinkSpec, chain []Op, entry Entry, isNew bool, c *committer, results chan<- opResult) error {
	entry.ID = chain[0].ID
	// added is 1 for the first write of an identity the snapshot did not have.
	added := func() int {
		if isNew {
			isNew = false
			return 1
		}
		return 0
	}
	for i, op := range chain {
		if dispatch.Err() != nil {
			for _, rest := range chain[i:] {
				results <- opResult{op: rest, skipped: true}
			}
			return nil
		}
		// An earlier operation of the chain may have changed the entry: carry its ids
		// and what it last applied.
		op.UserID, op.ProfileRef = entry.UserID, entry.ProfileRef
		switch op.Kind {
		case UpdateUser:
			op.Have = entry.User
		case UpdateProfile, EnableUser, DisableUser:
			op.Have = entry.Profile
		}
		out, err := s.Sink.Apply(exec, op)
		if err != nil {
			entry.LastError, entry.LastErrorAt = fmt.Sprintf("%s: %v", op.Kind, err), e.opt.Now()
			entry.Failures++
			if errors.Is(err, ErrNotFound) && op.Kind != CreateProfile && op.Kind != CreateUser && op.Kind != UpdateProfile {
				// The account was deleted behind idsync's back: forget it, so that
				// the next run creates it again if the person is still there.
				entry.User, entry.UserID, entry.DisabledAt = nil, "", time.Time{}
				e.log.Warn("the account no longer exists: it is created again on the next run if the person is active", "sink", s.Name, "op", op)
			}
			results <- opResult{op: op, err: err, entries: added()}
			for _, rest := range chain[i+1:] {
				results <- opResult{op: rest, skipped: true}
			}
			if perr := c.commit(entry, false, true); perr != nil {
				return fmt.Errorf("record error of %s: %w", op, perr)
			}
			if errors.Is(err, ErrStopSink) {
				return err
			}
			return nil
		}
		if out.Adopted {
			e.log.Warn("adopted an existing account", "sink", s.Name, "op", op, "user_id", out.UserID)
		}
		record(&entry, op, out, s.Sink.Schema(), e.opt.Now())
		last := i == len(chain)-1
		if err := c.commit(entry, op.Kind == DeleteUser, last); err != nil {
			// The sink did it but the snapshot does not know: stop, so that the next
			// run starts from what was recorded and adopts what was not.
			results <- opResult{op: op, err: fmt.Errorf("applied, but the snapshot could not record it: %w", err)}
			return fmt.Errorf("commit %s: %w", op, err)
		}
		n := added()
		if op.Kind == DeleteUser {
			n = -1
		}
		results <- opResult{op: op, entries: n}
	}
	return nil
}

// committer writes one worker's entries to the snapshot, keeping at most one commit
// in flight. A failed commit in flight surfaces at the worker's next commit or at its
// end, and stops the sink: the run fails, and the next one adopts what the snapshot
// missed.
type committer struct {
	store   Store
	sink    string
	pending chan error // the commit in flight, if any
}

// commit writes e (or deletes it). It first waits for the commit in flight. With
// async it returns at once and leaves this commit in flight; otherwise it returns when
// e is durable.
func (c *committer) commit(e Entry, del, async bool) error {
	if err := c.wait(); err != nil {
		return err
	}
	write := func() error {
		if del {
			return c.store.Delete(c.sink, e.ID)
		}
		return c.store.Put(c.sink, e)
	}
	if !async {
		return write()
	}
	done := make(chan error, 1)
	c.pending = done
	go func() { done <- write() }()
	return nil
}

// wait returns when the commit in flight is durable, with its error.
func (c *committer) wait() error {
	if c.pending == nil {
		return nil
	}
	err := <-c.pending
	c.pending = nil
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// record updates an entry after a successful operation.
func record(e *Entry, op Op, out Outcome, s Schema, now time.Time) {
	if out.UserID != "" {
		e.UserID = out.UserID
	}
	if out.ProfileRef != "" {
		e.ProfileRef = out.ProfileRef
	}
	switch op.Kind {
	case CreateProfile:
		p := Project(op.Want, s.Profile)
		e.Profile = &p
	case CreateUser:
		u := Project(op.Want, s.User)
		e.User, e.Adopted, e.DisabledAt = &u, out.Adopted, time.Time{}
		if s.Profile != 0 && e.Profile != nil {
			e.Profile.Active = true
		}
	case UpdateProfile:
		p := Project(op.Want, s.Profile)
		e.Profile = &p
	case UpdateUser:
		u := Project(op.Want, s.User)
		e.User = &u
	case EnableUser, DisableUser:
		active := op.Kind == EnableUser
		e.User.Active = active
		if e.Profile != nil {
			e.Profile.Active = active
		}
		e.DisabledAt = time.Time{}
		if !active {
			e.DisabledAt = now
		}
	}
	e.LastError, e.LastErrorAt, e.Failures = "", time.Time{}, 0
	e.LastOp, e.LastOpAt = op.Kind, now
}

func nilIfEmpty(m map[OpKind]int) map[OpKind]int {
	if len(m) == 0 {
		return nil
	}
	return m
}
