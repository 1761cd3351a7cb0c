// Package state keeps idsync's snapshot and run history in a bbolt file.
//
// The file holds three buckets: meta (the schema version), sinks (one nested bucket per
// sink, identity id -> sync.Entry in the binary layout of codec.go) and runs (big-endian run id -> JSON of
// sync.RunSummary). Writes from concurrent callers are group-committed: each one returns
// when it is durable, and writes that arrive together share one transaction and fsync.
package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	dsync "github.com/idsync/idsync/sync"
)

// ErrLocked is returned, wrapped, by Open when another process holds the file's lock.
var ErrLocked = errors.New("state file is locked by another idsync")

// errClosed is returned by every method called after Close.
var errClosed = errors.New("state: store closed")

// Defaults for the zero Options.
const (
	DefaultLockTimeout  = time.Second
	DefaultHistoryLimit = 100
)

// Options configure Open.
type Options struct {
	// LockTimeout is how long Open waits for the file's lock; zero or less means
	// DefaultLockTimeout. bbolt would wait for ever on zero: a second idsync must fail
	// promptly instead.
	LockTimeout time.Duration
	// ReadOnly opens the file with a shared lock for inspection; every write fails.
	ReadOnly bool
	// HistoryLimit is how many run summaries RecordRun keeps; zero or less means
	// DefaultHistoryLimit.
	HistoryLimit int
}

var (
	bucketMeta  = []byte("meta")
	bucketSinks = []byte("sinks")
	bucketRuns  = []byte("runs")
)

// Store is the bbolt-backed sync.Store. Its methods are safe for concurrent use.
type Store struct {
	db           *bolt.DB
	path         string
	historyLimit int

	// mu guards closed and the sends on reqs, so that Close never closes reqs under
	// a sender.
	mu     gosync.RWMutex
	closed bool
	reqs   chan request
	// stopped is closed when the committer has answered every request and returned.
	stopped chan struct{}
	// commits counts write transactions the committer ran, for tests and benchmarks.
	commits atomic.Uint64

	closeOnce gosync.Once
	closeErr  error
}

var _ dsync.Store = (*Store)(nil)

// Open opens the state file at path, creating it (mode 0600) if it does not exist; its
// directory must exist. It brings the file's schema up to date, and starts the
// committer that Close stops. A file locked by another process makes Open fail with
// an error that wraps ErrLocked.
func Open(path string, opt Options) (*Store, error) {
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = DefaultLockTimeout
	}
	if opt.HistoryLimit <= 0 {
		opt.HistoryLimit = DefaultHistoryLimit
	}
	if dir := filepath.Dir(path); !isDir(dir) {
		return nil, fmt.Errorf("state: open %s: directory %s does not exist: %w", path, dir, fs.ErrNotExist)
	}
	// The freelist is rebuilt on open rather than written by every commit: commits
	// are the hot path of a run, opens are rare.
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opt.LockTimeout, ReadOnly: opt.ReadOnly,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &lockedError{path: path, waited: opt.LockTimeout}
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	if err := upgrade(db, opt.ReadOnly); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s := &Store{
		db:           db,
		path:         path,
		historyLimit: opt.HistoryLimit,
		reqs:         make(chan request, maxBatch),
		stopped:      make(chan struct{}),
	}
	go s.commitLoop()
	return s, nil
}

func isDir(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

// Close waits for pending writes to commit, stops the committer and closes the file,
// releasing its lock. Calls after the first return the first one's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.reqs)
		s.mu.Unlock()
		<-s.stopped
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("state: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// Path returns the path the store was opened with.
func (s *Store) Path() string { return s.path }

// view runs fn in a read transaction, or returns errClosed after Close.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	return s.db.View(fn)
}

// lockedError says which file is locked; it unwraps to ErrLocked and bbolt's timeout.
type lockedError struct {
	path   string
	waited time.Duration
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("state %s: locked by another idsync process (waited %s)", e.path, e.waited)
}

func (e *lockedError) Unwrap() []error { return []error{ErrLocked, berrors.ErrTimeout} }
