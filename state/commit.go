package state

import bolt "go.etcd.io/bbolt"

// maxBatch bounds how many writes share one transaction.
const maxBatch = 1000

// request is one write waiting for the committer. apply must fail only for reasons that
// would fail any write (the disk, the file): callers validate their input first, since
// one failed apply fails every write in its transaction.
type request struct {
	apply func(tx *bolt.Tx) error
	done  chan error // buffered, so the committer never waits for a caller
}

// write queues apply for the committer and waits until its transaction has committed.
//
// This is group commit rather than bbolt's DB.Batch: Batch waits MaxBatchDelay for
// company, which costs every write that delay when few writers are active. The committer
// waits for nothing; writes queue up by themselves while it is in fsync.
func (s *Store) write(apply func(tx *bolt.Tx) error) error {
	req := request{apply: apply, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	s.reqs <- req
	s.mu.RUnlock()
	return <-req.done
}

// commitLoop is the committer: it waits for a write, takes every other write already
// queued (up to maxBatch), applies them in order in one transaction and gives each the
// transaction's result. It returns when Close has closed reqs and every write is
// answered.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	batch := make([]request, 0, maxBatch)
	for req := range s.reqs {
		batch = append(batch[:0], req)
	drain:
		for len(batch) < maxBatch {
			select {
			case req, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, req)
			default:
				break drain
			}
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
		for i := range batch {
			batch[i].done <- err
			batch[i] = request{}
		}
	}
}
