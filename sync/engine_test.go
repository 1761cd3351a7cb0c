package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	gosync "sync"
	"testing"
	"time"
)

// memStore is a Store in memory, for the engine's unit tests; state's own tests cover
// the real bbolt store, and cmd/idsync's end-to-end tests use it.
type memStore struct {
	mu      gosync.Mutex
	entries map[string]map[string]Entry
	runs    []RunSummary
	puts    int
	failPut error
}

func newMemStore() *memStore { return &memStore{entries: map[string]map[string]Entry{}} }

// Snapshot is the tests' look at a sink's entries.
func (m *memStore) Snapshot(sink string) (map[string]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.entries[sink]), nil
}

func (m *memStore) Entry(sink, id string) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[sink][id]
	return e.Clone(), ok, nil
}

func (m *memStore) Entries(sink string, fn func(Entry) error) error {
	m.mu.Lock()
	snap := maps.Clone(m.entries[sink])
	m.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(snap)) {
		if err := fn(snap[id]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Put(sink string, e Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		return m.failPut
	}
	if m.entries[sink] == nil {
		m.entries[sink] = map[string]Entry{}
	}
	m.entries[sink][e.ID] = e
	m.puts++
	return nil
}

func (m *memStore) Delete(sink, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries[sink], id)
	return nil
}

func (m *memStore) RecordRun(r RunSummary) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.ID = uint64(len(m.runs) + 1)
	m.runs = append([]RunSummary{r}, m.runs...)
	return nil
}

func (m *memStore) Runs(int) ([]RunSummary, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.runs), nil
}

// fakeSink records the operations it is given and fails those a test names.
type fakeSink struct {
	mu    gosync.Mutex
	ops   []Op
	fail  map[string]error // "create_user E2" -> error
	delay time.Duration
	next  int
	// linkExpires is the expiry of the welcome links create_user gives when asked.
	linkExpires time.Time
}

func (f *fakeSink) Schema() Schema { return haploLike }

func (f *fakeSink) Apply(ctx context.Context, op Op) (Outcome, error) {
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
	if err := f.fail[op.Kind.String()+" "+op.ID]; err != nil {
		return Outcome{}, err
	}
	f.next++
	switch op.Kind {
	case CreateProfile:
		return Outcome{ProfileRef: fmt.Sprintf("8%04d", f.next)}, nil
	case CreateUser:
		if op.ProfileRef == "" {
			return Outcome{}, errors.New("create_user without a profile ref")
		}
		out := Outcome{UserID: fmt.Sprint(f.next)}
		if op.Invite {
			out.Invite = &Invite{Link: "https://app.example.org/welcome/" + op.ID + "-secret", Expires: f.linkExpires}
		}
		return out, nil
	}
	return Outcome{}, nil
}

var errBoom = errors.New("boom")

type staticSource []Identity

func (s staticSource) Read(context.Context) ([]Identity, error) { return slices.Clone(s), nil }

func people(n int) staticSource {
	var ids staticSource
	for i := range n {
		ids = append(ids, Identity{ID: fmt.Sprintf("E%03d", i), Username: fmt.Sprintf("u%03d", i),
			Email: fmt.Sprintf("u%03d@example.org", i), FirstName: "F", LastName: "L", Active: true})
	}
	return ids
}

func newTestEngine(src Source, sink Sink, store Store) *Engine {
	return New([]SourceSpec{{Name: "hr", Source: src}},
		[]SinkSpec{{Name: "app", Sink: sink, Concurrency: 4, Safety: DefaultSafety}},
		store, Options{Safety: DefaultSafety}, slog.New(slog.DiscardHandler))
}

func TestEngineFirstRunThenNoop(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	e := newTestEngine(people(20), sink, store)
	rep, err := e.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Summary.Result, ResultSuccess; got != want {
		t.Fatalf("result %v, want %v", got, want)
	}
	if got, want := rep.Summary.Sinks[0].Applied, map[OpKind]int{CreateProfile: 20, CreateUser: 20}; !maps.Equal(got, want) {
		t.Errorf("applied %v, want %v", got, want)
	}
	// Every user was created after its own profile, with that profile's ref.
	refs := map[string]string{}
	for _, op := range sink.ops {
		switch op.Kind {
		case CreateProfile:
			refs[op.ID] = "pending"
		case CreateUser:
			if refs[op.ID] != "pending" {
				t.Errorf("create_user %s ran before its create_profile", op.ID)
			}
		}
	}
	snap, _ := store.Snapshot("app")
	for id, en := range snap {
		if en.UserID == "" || en.ProfileRef == "" || en.User == nil || !en.User.Active {
			t.Errorf("entry %s = %+v, want a user id, a ref and an active user", id, en)
		}
	}
	rep, err = e.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Plans[0].Empty() {
		t.Errorf("second run planned %v, want nothing", rep.Plans[0].Counts())
	}
}

func TestEngineFailureIsRecordedAndOthersGoOn(t *testing.T) {
	store := newMemStore()
	sink := &fakeSink{fail: map[string]error{"create_profile E003": errors.New("boom")}}
	e := newTestEngine(people(10), sink, store)
	rep, err := e.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary.Sinks[0]
	if rep.Summary.Result != ResultPartial || s.Failed[CreateProfile] != 1 || s.Skipped[CreateUser] != 1 || s.Applied[CreateUser] != 9 {
		t.Fatalf("result %v applied %v failed %v skipped %v; want partial, 9 users, 1 failed profile, 1 skipped user",
			rep.Summary.Result, s.Applied, s.Failed, s.Skipped)
	}
	snap, _ := store.Snapshot("app")
	if got := snap["E003"].LastError; got != "create_profile: boom" {
		t.Errorf("E003 last error %q, want %q", got, "create_profile: boom")
	}
	// The next run retries it, and only it.
	delete(sink.fail, "create_profile E003")
	rep, err = e.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Summary.Sinks[0].Applied, map[OpKind]int{CreateProfile: 1, CreateUser: 1}; !maps.Equal(got, want) {
		t.Errorf("retry applied %v, want %v", got, want)
	}
	snap, _ = store.Snapshot("app")
	if en := snap["E003"]; en.LastError != "" || en.User == nil {
		t.Errorf("E003 after retry = %+v, want created with no error", en)
	}
}

func TestEngineGuardHoldsAndAccept(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	all := people(20)
	if _, err := newTestEngine(all, sink, store).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	calls := len(sink.ops)
	e := newTestEngine(all[:8], sink, store)
	rep, err := e.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Held() || rep.Summary.Result != ResultHeld {
		t.Fatalf("shrunk source: result %v, want held", rep.Summary.Result)
	}
	var guards []string
	for _, g := range rep.Summary.Guards {
		guards = append(guards, g.Guard)
	}
	if want := []string{"min_source_ratio", "max_disable_percent"}; !slices.Equal(guards, want) {
		t.Errorf("guards %v, want %v", guards, want)
	}
	if len(sink.ops) != calls {
		t.Errorf("a held run called the sink %d times", len(sink.ops)-calls)
	}
	rep, err = e.Run(t.Context(), RunOptions{AcceptGuard: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Summary.Sinks[0].Applied[DisableUser]; got != 12 {
		t.Errorf("accepted run disabled %d, want 12", got)
	}
}

func TestEngineEmptySourceHolds(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	rep, err := newTestEngine(staticSource{}, sink, store).Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Held() || rep.Summary.Guards[0].Guard != "empty_source" {
		t.Errorf("empty source: guards %v, want empty_source", rep.Summary.Guards)
	}
}

func TestEngineDryRunWritesNothing(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	rep, err := newTestEngine(people(5), sink, store).Run(t.Context(), RunOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.ops) != 0 || store.puts != 0 || len(store.runs) != 0 {
		t.Errorf("dry run: %d sink calls, %d puts, %d runs recorded; want none", len(sink.ops), store.puts, len(store.runs))
	}
	if got := rep.Plans[0].Count(CreateUser); got != 5 {
		t.Errorf("dry run planned %d creates, want 5", got)
	}
}

type failingSource struct{}

func (failingSource) Read(context.Context) ([]Identity, error) {
	return nil, errors.New("connection reset after page 3")
}

func TestEngineSourceErrorDisablesNobody(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	if _, err := newTestEngine(people(5), sink, store).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	calls := len(sink.ops)
	rep, err := newTestEngine(failingSource{}, sink, store).Run(t.Context(), RunOptions{AcceptGuard: true})
	if err == nil || rep.Summary.Result != ResultFailed {
		t.Fatalf("err %v result %v, want a failed run", err, rep.Summary.Result)
	}
	if len(sink.ops) != calls {
		t.Errorf("a failed read called the sink %d times", len(sink.ops)-calls)
	}
}

func TestEngineIncompleteReadDisablesNobody(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	all := people(20)
	if _, err := newTestEngine(all, sink, store).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	partial := append(slices.Clone(all[:19]), Identity{Problems: []string{"people.csv:21: empty id"}})
	rep, err := newTestEngine(partial, sink, store).Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Plans[0].Count(DisableUser); got != 0 {
		t.Errorf("a read with an unanchored row planned %d disables, want 0", got)
	}
}

func TestEngineCancelDrainsInFlight(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{delay: 20 * time.Millisecond}
	e := newTestEngine(people(40), sink, store)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(70*time.Millisecond, cancel)
	rep, err := e.Run(ctx, RunOptions{})
	if err == nil {
		t.Fatal("a cancelled run reported no error")
	}
	// Everything the sink did is in the snapshot: no call was lost.
	snap, _ := store.Snapshot("app")
	profiles, users := 0, 0
	for _, en := range snap {
		if en.ProfileRef != "" {
			profiles++
		}
		if en.UserID != "" {
			users++
		}
	}
	s := rep.Summary.Sinks[0]
	if profiles != sink.count(CreateProfile) || users != sink.count(CreateUser) {
		t.Errorf("snapshot has %d profiles, %d users; the sink made %d, %d", profiles, users, sink.count(CreateProfile), sink.count(CreateUser))
	}
	if s.Applied[CreateUser]+s.Skipped[CreateUser] != 40 || s.Skipped[CreateUser] == 0 {
		t.Errorf("applied %v skipped %v, want 40 creates split between them, some skipped", s.Applied, s.Skipped)
	}
	// Run again: the rest, nothing twice.
	_, err = newTestEngine(people(40), sink, store).Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sink.count(CreateProfile) != 40 || sink.count(CreateUser) != 40 {
		t.Errorf("after the rerun the sink made %d profiles and %d users, want 40 each", sink.count(CreateProfile), sink.count(CreateUser))
	}
}

func (f *fakeSink) count(k OpKind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, op := range f.ops {
		if op.Kind == k {
			n++
		}
	}
	return n
}

func TestEngineSnapshotWriteFailureStops(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	store.failPut = errors.New("disk full")
	rep, err := newTestEngine(people(50), sink, store).Run(t.Context(), RunOptions{})
	if err == nil || rep.Summary.Result != ResultFailed {
		t.Fatalf("err %v result %v, want failed", err, rep.Summary.Result)
	}
	if n := len(sink.ops); n > 8 {
		t.Errorf("the sink got %d operations after the snapshot failed, want at most one per worker", n)
	}
}

func TestMerge(t *testing.T) {
	a := Identity{ID: "1", Email: "A@x.org", Username: "a", Active: true, Origin: "a.csv:2"}
	b := Identity{ID: "2", Email: "a@X.org", Username: "b", Active: true, Origin: "b.csv:2"}
	c := Identity{ID: "1", Email: "c@x.org", Username: "c", Active: true, Origin: "b.csv:3"}
	d := Identity{ID: "4", Email: "d@x.org", Username: "B", Active: false, Origin: "b.csv:4"}
	got := Merge([]SourceRead{{Source: "hr", Identities: []Identity{a}}, {Source: "extra", Identities: []Identity{b, c, d}}})
	if got.Valid != 1 || !got.Complete {
		t.Errorf("valid %d complete %v, want 1 (only the inactive 4) and complete", got.Valid, got.Complete)
	}
	if p := got.Identities["1"].Problems; len(p) != 2 {
		t.Errorf("id 1 problems %q, want a duplicate id and a duplicate email", p)
	}
	if p := got.Identities["2"].Problems; len(p) != 1 {
		t.Errorf("id 2 problems %q, want a duplicate email", p)
	}
	if p := got.Identities["4"].Problems; len(p) != 0 {
		t.Errorf("inactive 4 problems %q, want none: duplicates count among active identities", p)
	}
	got = Merge([]SourceRead{{Source: "hr", Identities: []Identity{{Problems: []string{"x.csv:9: empty id"}}}}})
	if got.Complete || len(got.Unanchored) != 1 {
		t.Errorf("unanchored row: complete %v unanchored %q, want incomplete with one row", got.Complete, got.Unanchored)
	}
}

func TestCheckPlan(t *testing.T) {
	plan := func(disables, managed int) *Plan {
		p := &Plan{Sink: "app", Managed: managed}
		for i := range disables {
			p.Ops = append(p.Ops, Op{Kind: DisableUser, ID: fmt.Sprint(i)})
		}
		return p
	}
	tests := []struct {
		disables, managed int
		s                 Safety
		want              []string
	}{
		{1, 20, DefaultSafety, nil},
		{2, 20, DefaultSafety, nil},
		{3, 20, DefaultSafety, []string{"max_disable_percent"}},
		{101, 10000, DefaultSafety, []string{"max_disables"}},
		{101, 200, DefaultSafety, []string{"max_disables", "max_disable_percent"}},
		{101, 200, Safety{MaxDisables: -1, MaxDisablePercent: -1}, nil},
	}
	for _, tt := range tests {
		var got []string
		for _, g := range CheckPlan(plan(tt.disables, tt.managed), tt.s) {
			got = append(got, g.Guard)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%d disables of %d: got %v, want %v", tt.disables, tt.managed, got, tt.want)
		}
	}
}

func TestCircuitBreaker(t *testing.T) {
	store := newMemStore()
	fail := map[string]error{}
	for i := range 200 {
		fail[fmt.Sprintf("create_profile E%03d", i)] = errBoom
	}
	sink := &fakeSink{fail: fail}
	e := New([]SourceSpec{{Name: "hr", Source: people(200)}},
		[]SinkSpec{{Name: "app", Sink: sink, Concurrency: 4, Safety: DefaultSafety, BreakAfter: 10}},
		store, Options{Safety: DefaultSafety}, slog.New(slog.DiscardHandler))
	rep, err := e.Run(t.Context(), RunOptions{})
	if !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("err %v, want ErrCircuitOpen", err)
	}
	s := rep.Summary.Sinks[0]
	// Past the 10th failure: the results already waiting to be counted (the channel
	// holds one per worker) and one operation in flight per worker. The breaker bounds
	// the damage; it cannot stop what is already on its way.
	if calls := sink.count(CreateProfile); calls < 10 || calls > 10+4+4 {
		t.Errorf("the sink got %d operations, want the 10 that opened the breaker, and at most one waiting and one in flight per worker", calls)
	}
	if s.Failed[CreateProfile]+s.Skipped[CreateProfile] != 200 || s.Skipped[CreateUser] != 200 {
		t.Errorf("failed %v skipped %v: want every operation accounted for", s.Failed, s.Skipped)
	}
	// The sink is back: the next run does everything.
	sink.fail = nil
	if _, err := e.Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := sink.count(CreateUser); got != 200 {
		t.Errorf("after recovery %d users, want 200", got)
	}
}

// An account deleted behind idsync's back: the update meets ErrNotFound, the entry
// forgets the account, and the next run creates it again.
func TestNotFoundConverges(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	all := people(3)
	if _, err := newTestEngine(all, sink, store).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	changed := slices.Clone(all)
	changed[1].Email = "new@example.org"
	sink.fail = map[string]error{"update_user E001": fmt.Errorf("no such user: %w", ErrNotFound)}
	if _, err := newTestEngine(changed, sink, store).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	sink.fail = nil
	rep, err := newTestEngine(changed, sink, store).Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The profile took the new email in the run that met the not-found.
	if got := rep.Summary.Sinks[0].Applied; !maps.Equal(got, map[OpKind]int{CreateUser: 1}) {
		t.Errorf("after the not-found, applied %v, want the account created again", got)
	}
}

// sizedSource is a staticSource that records what the engine tells it to expect.
type sizedSource struct {
	staticSource
	expected []int
}

func (s *sizedSource) Expect(n int) { s.expected = append(s.expected, n) }

// Before each read, a Sizer is told how many identities the source gave the last run
// that read it: none before the first run.
func TestEngineTellsSizerWhatToExpect(t *testing.T) {
	src := &sizedSource{staticSource: people(20)}
	e := newTestEngine(src, &fakeSink{}, newMemStore())
	for range 2 {
		if _, err := e.Run(t.Context(), RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	src.staticSource = src.staticSource[:15]
	if _, err := e.Run(t.Context(), RunOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(t.Context(), RunOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 20, 20, 20}; !slices.Equal(src.expected, want) {
		t.Errorf("told to expect %v, want %v (a dry run records no run)", src.expected, want)
	}
}
