package state

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxBatch bounds how many writes share one transaction.
const maxBatch = 1000

// commitDelay is how long a transaction that holds only queued writes (PutAsync,
// DeleteAsync: their callers do not wait) waits for more writes to share it. Every
// transaction costs two fdatasyncs, some 0.1 ms of CPU each on the benchmark machine,
// CPU that a first sync's HTTP requests need: with 2 ms, the committer was a fifth of
// a 10,000-person first sync's CPU profile (0.95 of 4.29 s), with 8 ms a fifteenth
// (0.24 of 3.58 s; bench/run.sh first, CPUPROFILE_DIR). Nobody waits for these writes but the
// report of their operations, so the delay costs a run at most 8 ms at its end. A write
// its caller waits for (Put, Delete, RecordRun) ends the wait at once.
const commitDelay = 8 * time.Millisecond

// request is one write waiting for the committer. apply must fail only for reasons that
// would fail any write (the disk, the file): callers validate their input first, since
// one failed apply fails every write in its transaction.
type request struct {
	apply func(tx *bolt.Tx) error
	done  chan error // buffered, so the committer never waits for a caller
	// op, sink and id name an entry's write in its error: "state: put haplo/42: ...".
	op, sink, id string
	// queued is when a write that nobody waits for was queued; zero for a write
	// whose caller waits.
	queued time.Time
}

// write queues apply for the committer and waits until its transaction has committed.
//
// This is group commit rather than bbolt's DB.Batch: Batch waits MaxBatchDelay for
// company, which costs every write that delay when few writers are active. The committer
// waits for nothing on behalf of a caller that waits; writes queue up by themselves
// while it is in fsync.
func (s *Store) write(apply func(tx *bolt.Tx) error) error {
	return <-s.queue(request{apply: apply}, false)
}

// queue hands req to the committer, behind every write queued before, and returns the
// channel that receives its transaction's result. With later set, nobody waits for the
// result at once: the write may wait up to commitDelay for company.
func (s *Store) queue(req request, later bool) <-chan error {
	req.done = make(chan error, 1)
	if later {
		req.queued = time.Now()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		req.done <- errClosed
		return req.done
	}
	s.reqs <- req
	return req.done
}

// commitLoop is the committer: it waits for a write, takes every other write already
// queued (up to maxBatch), and, when none of them has a caller waiting, waits up to
// commitDelay from the first one's queueing for more. It applies them in order in one
// transaction and gives each the transaction's result. It returns when Close has closed
// reqs and every write is answered.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	batch := make([]request, 0, maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	open := true
	for open {
		req, ok := <-s.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		waited := req.queued.IsZero() // someone waits for this transaction
	drain:
		for len(batch) < maxBatch {
			select {
			case req, ok := <-s.reqs:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, req)
				waited = waited || req.queued.IsZero()
			default:
				break drain
			}
		}
		if d := time.Until(batch[0].queued.Add(commitDelay)); open && !waited && d > 0 {
			timer.Reset(d)
		gather:
			for len(batch) < maxBatch {
				select {
				case req, ok := <-s.reqs:
					if !ok {
						open = false
						break gather
					}
					batch = append(batch, req)
					if req.queued.IsZero() {
						break gather
					}
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, req := range batch {
				if err := req.apply(tx); err != nil {
					return err
				}
			}
			return nil
		})
		s.commits.Add(1)
		for i, req := range batch {
			if err != nil && req.op != "" {
				req.done <- fmt.Errorf("state: %s %s/%s: %w", req.op, req.sink, req.id, err)
			} else {
				req.done <- err
			}
			batch[i] = request{}
		}
	}
}
