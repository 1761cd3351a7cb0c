package sync

import (
	"errors"
	"testing"
	"time"
)

// heldStore is a memStore with queued writes (asyncStore), applied in order by one
// goroutine once held is closed.
type heldStore struct {
	*memStore
	held  chan struct{}
	queue chan func()
}

func newHeldStore(t *testing.T) *heldStore {
	h := &heldStore{memStore: newMemStore(), held: make(chan struct{}), queue: make(chan func(), 100)}
	go func() {
		for write := range h.queue {
			<-h.held
			write()
		}
	}()
	t.Cleanup(func() { close(h.queue) })
	return h
}

func (h *heldStore) PutAsync(sink string, e Entry) <-chan error {
	done := make(chan error, 1)
	h.queue <- func() { done <- h.Put(sink, e) }
	return done
}

func (h *heldStore) DeleteAsync(sink, id string) <-chan error {
	done := make(chan error, 1)
	h.queue <- func() { done <- h.Delete(sink, id) }
	return done
}

// An identity's next operation overlaps the commit of the one before, but nothing
// counts as applied until its entry is in the snapshot, and the later entry wins.
func TestApplyOverlapsCommits(t *testing.T) {
	store, sink := newHeldStore(t), &fakeSink{}
	type result struct {
		rep *Report
		err error
	}
	ran := make(chan result, 1)
	go func() {
		rep, err := newTestEngine(people(1), sink, store).Run(t.Context(), RunOptions{})
		ran <- result{rep, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); sink.count(CreateUser) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("create_user did not start while create_profile's commit was held")
		}
	}
	select {
	case r := <-ran:
		t.Fatalf("the run ended (%v, %v) while its commits were held", r.rep.Summary.Sinks, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(store.held)
	r := <-ran
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := r.rep.Summary.Sinks[0].Applied; got[CreateProfile] != 1 || got[CreateUser] != 1 {
		t.Errorf("applied %v, want one profile and one user", got)
	}
	snap, _ := store.Snapshot("app")
	if e := snap["E000"]; e.UserID == "" || e.ProfileRef == "" || e.User == nil {
		t.Errorf("entry %+v, want the user's commit over the profile's", e)
	}
}

// An operation whose entry could not be written is not counted applied, although the
// sink did it: the run fails, and the next one adopts it.
func TestCommitFailureIsNotApplied(t *testing.T) {
	for _, async := range []bool{false, true} {
		store := newHeldStore(t)
		close(store.held)
		store.failPut = errors.New("disk full")
		var s Store = store.memStore
		if async {
			s = store
		}
		rep, err := newTestEngine(people(20), &fakeSink{}, s).Run(t.Context(), RunOptions{})
		if err == nil {
			t.Fatalf("async %v: the run succeeded although no entry could be written", async)
		}
		sum := rep.Summary.Sinks[0]
		if len(sum.Applied) != 0 {
			t.Errorf("async %v: applied %v, want nothing counted applied", async, sum.Applied)
		}
		n := 0
		for _, c := range []map[OpKind]int{sum.Failed, sum.Skipped} {
			for _, k := range c {
				n += k
			}
		}
		if n != 40 {
			t.Errorf("async %v: failed %v, skipped %v: want all 40 operations accounted for", async, sum.Failed, sum.Skipped)
		}
	}
}
