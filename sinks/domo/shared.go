package domo

import (
	"context"
	"errors"
	gosync "sync"
)

// shared is a value that the sink's concurrent workers load once and share: the
// OAuth token, the index of users by email. The first worker that needs it loads it
// while the others wait for that load, never a second one; a failed load is not kept.
type shared[T any] struct {
	mu      gosync.Mutex
	val     T
	gen     int // counts the loads that succeeded; the value's version
	valid   bool
	loading *load[T]
}

// load is one load in flight.
type load[T any] struct {
	done chan struct{}
	val  T
	gen  int
	err  error
}

// get returns the value and its version, loading it when there is none or fresh says
// it is stale (fresh may be nil). A worker whose context ends stops waiting; if the
// worker that was loading gave up so, a waiting one loads it in its place.
func (s *shared[T]) get(ctx context.Context, fresh func(T) bool, loadFn func(context.Context) (T, error)) (T, int, error) {
	for {
		s.mu.Lock()
		if s.valid && (fresh == nil || fresh(s.val)) {
			v, gen := s.val, s.gen
			s.mu.Unlock()
			return v, gen, nil
		}
		if l := s.loading; l != nil {
			s.mu.Unlock()
			select {
			case <-l.done:
			case <-ctx.Done():
				var zero T
				return zero, 0, ctx.Err()
			}
			if l.err != nil && ctx.Err() == nil && (errors.Is(l.err, context.Canceled) || errors.Is(l.err, context.DeadlineExceeded)) {
				continue
			}
			return l.val, l.gen, l.err
		}
		l := &load[T]{done: make(chan struct{})}
		s.loading = l
		s.mu.Unlock()

		v, err := loadFn(ctx)
		s.mu.Lock()
		if err == nil {
			s.gen++
			s.val, s.valid = v, true
		}
		l.val, l.gen, l.err = v, s.gen, err
		s.loading = nil
		s.mu.Unlock()
		close(l.done)
		return v, l.gen, err
	}
}

// current returns the value if one is loaded, without loading it.
func (s *shared[T]) current() (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.val, s.valid
}

// drop forgets the value of version gen, so that the next get loads it again. A newer
// version, loaded by another worker since, is kept.
func (s *shared[T]) drop(gen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == gen {
		s.valid = false
	}
}
