package state

import (
	"errors"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	dsync "github.com/idsync/idsync/sync"
)

func TestConcurrentPuts(t *testing.T) {
	const writers, each = 64, 500
	path := tempPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, writers)
	var wg gosync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Put("haplo", fullEntry(fmt.Sprintf("%d-%d", w, i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	commits := s.commits.Load()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	const puts = writers * each
	t.Logf("%d puts in %d transactions", puts, commits)
	if commits > puts/10 {
		t.Errorf("transactions: got %d for %d puts, want at most %d: writes are not sharing transactions", commits, puts, puts/10)
	}

	s = openStore(t, path, Options{})
	got, err := s.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != puts {
		t.Errorf("entries after reopen: got %d, want %d", len(got), puts)
	}
	for w := range writers {
		for i := range each {
			if id := fmt.Sprintf("%d-%d", w, i); got[id].ID != id {
				t.Fatalf("entry %s: got %+v, want it present", id, got[id])
			}
		}
	}
}

// TestFailedTransactionFailsEveryWrite holds the committer in a transaction while
// writes queue, so that they share the next one, then makes one of them fail.
func TestFailedTransactionFailsEveryWrite(t *testing.T) {
	s := openStore(t, tempPath(t), Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.write(func(*bolt.Tx) error { close(entered); <-release; return nil })
	}()
	<-entered

	const queued = 10
	boom := errors.New("boom")
	errs := make(chan error, queued)
	for i := range queued {
		go func() {
			if i == queued/2 {
				errs <- s.write(func(*bolt.Tx) error { return boom })
				return
			}
			errs <- s.Put("haplo", fullEntry(fmt.Sprint(i)))
		}()
	}
	// The committer is held; wait for the other writes to queue.
	for deadline := time.Now().Add(10 * time.Second); len(s.reqs) < queued; {
		if time.Now().After(deadline) {
			t.Fatalf("queued writes: got %d, want %d", len(s.reqs), queued)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatalf("holding write: %v", err)
	}
	for range queued {
		if err := <-errs; !errors.Is(err, boom) {
			t.Errorf("write in the failed transaction: got %v, want %v", err, boom)
		}
	}
	got, err := s.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("entries after the failed transaction: got %d, want 0", len(got))
	}
}

// TestCloseDuringWrites: writes racing Close either commit or fail with errClosed; none
// panics, and every write that returned nil is in the file.
func TestCloseDuringWrites(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var (
		wg        gosync.WaitGroup
		mu        gosync.Mutex
		committed []string
		unknown   []error
	)
	started := make(chan struct{}, writers)
	for w := range writers {
		wg.Go(func() {
			started <- struct{}{}
			for i := 0; ; i++ {
				id := fmt.Sprintf("%d-%d", w, i)
				err := s.Put("haplo", dsync.Entry{ID: id})
				mu.Lock()
				switch {
				case err == nil:
					committed = append(committed, id)
				case !errors.Is(err, errClosed):
					unknown = append(unknown, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	for range writers {
		<-started
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, err := range unknown {
		t.Errorf("Put racing Close: got %v, want nil or %v", err, errClosed)
	}

	s = openStore(t, path, Options{})
	got, err := s.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d puts committed before Close", len(committed))
	for _, id := range committed {
		if _, ok := got[id]; !ok {
			t.Errorf("entry %s: Put returned nil but it is not in the file", id)
		}
	}
}

// TestPutAsync: queued writes are applied in the order they were queued, so an
// identity's later entry wins; writes queued together share transactions; and a write
// after Close fails at once.
func TestPutAsync(t *testing.T) {
	s := openStore(t, tempPath(t), Options{})
	const n = 50
	var done []<-chan error
	for i := range n {
		e := fullEntry("1")
		e.Failures = i
		done = append(done, s.PutAsync("haplo", e))
		done = append(done, s.PutAsync("haplo", fullEntry(fmt.Sprint(i+2))))
	}
	done = append(done, s.DeleteAsync("haplo", "2"))
	for _, d := range done {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	if c := s.commits.Load(); c > 2*n/5 {
		t.Errorf("transactions: got %d for %d writes queued together, want them sharing", c, len(done))
	}
	got, err := s.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	if e := got["1"]; e.Failures != n-1 {
		t.Errorf("entry 1 has failures %d, want %d: the last write queued", e.Failures, n-1)
	}
	if _, ok := got["2"]; ok || len(got) != n {
		t.Errorf("%d entries, entry 2 present %v: want %d, and 2 deleted", len(got), ok, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-s.PutAsync("haplo", fullEntry("x")); !errors.Is(err, errClosed) {
		t.Errorf("after Close: got %v, want %v", err, errClosed)
	}
}
