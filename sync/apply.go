package sync

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
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
	// invited is set when the operation's entry now holds an invitation to deliver.
	invited bool
}

// apply carries out one sink's plan. An identity's operations run in phase order, one
// after the other; different identities run concurrently, up to the sink's concurrency,
// and never wait for each other. Every outcome is committed to the snapshot at once, and
// an operation counts as applied only once its entry is durable. A failed operation is
// recorded on its entry and ends that identity's chain; the others go on. When ctx
// ends, no new operation starts, and those in flight get DrainTimeout to finish and be
// recorded.
//
// snap holds the snapshot entries of the plan's identities (a Differ's Plan gives
// them); an identity without one is new. The error is for what stops the whole sink:
// the snapshot could not be written.
func (e *Engine) apply(ctx context.Context, s SinkSpec, plan Plan, snap map[string]Entry) (SinkSummary, error) {
	sum := SinkSummary{Sink: s.Name, Planned: plan.Counts()}
	if plan.Empty() {
		return sum, e.deliver(ctx, s, plan.Invites, nil, &sum)
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
			c := newCommitter(e.store, s.Name, results)
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
	var settled atomic.Int64
	stopProgress := e.progress(s.Name, len(plan.Ops), &settled)
	invites, invitees := plan.Invites, map[string]Identity{}
	for r := range results {
		settled.Add(1)
		if r.invited {
			invites = append(invites, r.op.ID)
			invitees[r.op.ID] = r.op.Want
		}
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
	stopProgress()
	sum.Applied, sum.Failed, sum.Skipped = nilIfEmpty(sum.Applied), nilIfEmpty(sum.Failed), nilIfEmpty(sum.Skipped)
	select {
	case err := <-fatal:
		return sum, err
	default:
	}
	if err := e.deliver(dispatch, s, invites, invitees, &sum); err != nil {
		return sum, err
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

// applyChain runs one identity's operations in order. Each outcome is handed to the
// snapshot as soon as the sink answers, and reported (counted applied) only once it is
// durable; the identity's next operation does not wait for that commit, but overlaps
// it (see committer). It returns an error when the sink can go on no longer: the
// snapshot cannot be written, or the sink said ErrStopSink.
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
		op.Invite = op.Kind == CreateUser && s.Inviter != nil
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
			// A failure is reported at once, for the circuit breaker; its record in the
			// snapshot is for the next run.
			results <- opResult{op: op, err: err, entries: added()}
			for _, rest := range chain[i+1:] {
				results <- opResult{op: rest, skipped: true}
			}
			if perr := c.commit(entry, false, nil); perr != nil {
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
		n := added()
		if op.Kind == DeleteUser {
			n = -1
		}
		if err := c.commit(entry, op.Kind == DeleteUser, &opResult{op: op, entries: n, invited: out.Invite != nil && op.Invite}); err != nil {
			// The sink did it but the snapshot may not know: stop, so that the next
			// run starts from what was recorded and adopts what was not.
			for _, rest := range chain[i+1:] {
				results <- opResult{op: rest, skipped: true}
			}
			return fmt.Errorf("commit %s: %w", op, err)
		}
	}
	return nil
}

// asyncStore is a Store that can queue a write and return at once, applying writes in
// the order they were queued; each channel receives its write's result once it is
// durable. state.Store is one. The engine finds it by type assertion.
type asyncStore interface {
	PutAsync(sink string, e Entry) <-chan error
	DeleteAsync(sink, id string) <-chan error
}

// maxPending bounds one worker's commits in flight, through an asyncStore: a store
// slower than the sink holds the worker back rather than let unrecorded operations
// pile up. A store that gathers writes for 8 ms (state's commitDelay) sees a worker
// make two or three requests of 2-4 ms meanwhile, and more while it syncs: 8 leaves
// room. A store without queued writes gets one commit in flight, written by
// a goroutine, so that an identity's writes cannot overtake each other.
const maxPending = 8

// committer writes one worker's entries to the snapshot and reports each operation
// once its entry is durable. Commits stay in flight while the worker's next operations
// run: an identity's next operation, or the next identity's, overlaps its last commit,
// and a store with queued writes can gather many workers' writes into one transaction.
// Writes are queued in the worker's order, so an identity's later entry is never
// overwritten by an earlier one. A failed commit reports its operation failed ("applied,
// but the snapshot could not record it") and stops the sink: the run fails, and the
// next one adopts what the snapshot missed.
type committer struct {
	store   Store
	async   asyncStore // nil when the store cannot queue writes
	sink    string
	results chan<- opResult
	pending []pendingCommit // oldest first
}

// pendingCommit is a commit in flight, and what to report once it is durable (nil for
// nothing).
type pendingCommit struct {
	done <-chan error
	r    *opResult
}

func newCommitter(store Store, sink string, results chan<- opResult) *committer {
	async, _ := store.(asyncStore)
	return &committer{store: store, async: async, sink: sink, results: results}
}

// commit writes e (or deletes it), and reports r (if not nil) once that is durable. It
// returns at once unless the worker already has as many commits in flight as it may,
// and returns the error of a commit found failed (r is then reported failed too).
func (c *committer) commit(e Entry, del bool, r *opResult) error {
	limit := maxPending
	if c.async == nil {
		limit = 1
	}
	if err := c.reap(limit - 1); err != nil {
		c.report(r, err)
		return err
	}
	var done <-chan error
	switch {
	case c.async != nil && del:
		done = c.async.DeleteAsync(c.sink, e.ID)
	case c.async != nil:
		done = c.async.PutAsync(c.sink, e)
	default:
		ch := make(chan error, 1)
		go func() {
			if del {
				ch <- c.store.Delete(c.sink, e.ID)
				return
			}
			ch <- c.store.Put(c.sink, e)
		}()
		done = ch
	}
	c.pending = append(c.pending, pendingCommit{done: done, r: r})
	return nil
}

// wait returns when every commit in flight is durable (or failed), with the first
// failure.
func (c *committer) wait() error { return c.reap(0) }

// reap reports the commits in flight that have finished, oldest first, waiting for the
// oldest while more than keep are in flight. It returns the first failure.
func (c *committer) reap(keep int) error {
	var first error
	for len(c.pending) > 0 {
		p := c.pending[0]
		var err error
		if len(c.pending) > keep {
			err = <-p.done
		} else {
			select {
			case err = <-p.done:
			default:
				return first
			}
		}
		c.pending[0] = pendingCommit{}
		c.pending = c.pending[1:]
		if err != nil && first == nil {
			first = fmt.Errorf("commit: %w", err)
		}
		c.report(p.r, err)
	}
	return first
}

// report sends r, made a failure when its commit failed: the sink did it, but the
// snapshot does not know.
func (c *committer) report(p *opResult, commitErr error) {
	if p == nil {
		return
	}
	r := *p
	if commitErr != nil {
		r.entries = 0
		if r.err == nil {
			r.err = fmt.Errorf("applied, but the snapshot could not record it: %w", commitErr)
		}
	}
	c.results <- r
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
	if out.Invite != nil && op.Invite {
		e.Invite, e.InviteLapsed = &PendingInvite{Invite: *out.Invite}, time.Time{}
	}
}

func nilIfEmpty(m map[OpKind]int) map[OpKind]int {
	if len(m) == 0 {
		return nil
	}
	return m
}
