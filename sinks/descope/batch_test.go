package descope

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idsync/idsync/sinks/descope/descopetest"
	dsync "github.com/idsync/idsync/sync"
)

type createResult struct {
	out dsync.Outcome
	err error
}

// createAll applies a create for each identity at once, as the engine's workers do,
// and returns the results by identity id.
func createAll(ctx context.Context, s *Sink, people []dsync.Identity) map[string]createResult {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		res = map[string]createResult{}
	)
	for _, p := range people {
		wg.Go(func() {
			out, err := s.Apply(ctx, dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
			mu.Lock()
			res[p.ID] = createResult{out, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}

func people(prefix string, n int) []dsync.Identity {
	var ps []dsync.Identity
	for i := range n {
		ps = append(ps, person(fmt.Sprintf("%s%02d", prefix, i)))
	}
	return ps
}

// batchSizes returns the number of users in each create/batch request.
func batchSizes(t *testing.T, srv *descopetest.Server) []int {
	t.Helper()
	var sizes []int
	for _, c := range srv.Calls() {
		if c.Endpoint != "user.create.batch" {
			continue
		}
		var b struct {
			Users []json.RawMessage `json:"users"`
		}
		if err := json.Unmarshal(c.Body, &b); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(b.Users))
	}
	return sizes
}

// checkOnePerPerson checks that the server holds exactly one user per identity, the
// one each create returned.
func checkOnePerPerson(t *testing.T, srv *descopetest.Server, ps []dsync.Identity, res map[string]createResult) {
	t.Helper()
	if n := len(srv.Users()); n != len(ps) {
		t.Errorf("got %d users, want %d", n, len(ps))
	}
	for _, p := range ps {
		r := res[p.ID]
		if r.err != nil {
			t.Errorf("%s: %v", p.ID, r.err)
			continue
		}
		u, ok := srv.User(p.Email)
		if !ok || u.UserID != r.out.UserID || u.FamilyName != p.LastName {
			t.Errorf("%s: got outcome %+v, server user %+v (exists %v)", p.ID, r.out, u, ok)
		}
	}
}

func batchSink(t *testing.T, srv *descopetest.Server, size int) *Sink {
	return newSink(t, srv, func(c *Config) { c.BatchSize, c.BatchWait = size, 200*time.Millisecond })
}

// Concurrent creates go out as full batches, and each caller gets its own user.
func TestBatchCreate(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := batchSink(t, srv, 10)
	ps := people("B", 20)
	res := createAll(t.Context(), s, ps)
	checkOnePerPerson(t, srv, ps, res)
	if got := batchSizes(t, srv); len(got) != 2 || got[0] != 10 || got[1] != 10 {
		t.Errorf("got batches of %v, want two of 10", got)
	}
	if n := srv.Requests()["user.create"]; n != 0 {
		t.Errorf("got %d single creates, want none", n)
	}
	for id, r := range res {
		if r.out.Adopted {
			t.Errorf("%s: adopted, want created", id)
		}
	}
}

// A batch that is not full goes out after batch_wait; a lone create uses the single
// endpoint.
func TestBatchWaitAndAlone(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { c.BatchSize, c.BatchWait = 50, 30*time.Millisecond })
	ps := people("W", 3)
	start := time.Now()
	res := createAll(t.Context(), s, ps)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	checkOnePerPerson(t, srv, ps, res)
	if got := batchSizes(t, srv); len(got) != 1 || got[0] != 3 {
		t.Errorf("got batches of %v, want one of 3", got)
	}
	mustCreate(t, s, person("W-alone"))
	if n := srv.Requests()["user.create"]; n != 1 {
		t.Errorf("got %d single creates, want 1 for the lone create", n)
	}
}

// Users the batch lists as failed because their loginId exists are adopted; one
// failed for another reason gets the failure; the others are created.
func TestBatchPerUserFailures(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := batchSink(t, srv, 8)
	ps := people("F", 8)
	existing := map[string]string{}
	for _, p := range ps[:3] {
		existing[p.ID] = srv.AddUser(descopetest.User{LoginIDs: []string{p.Email}, Email: p.Email, Phone: "+1555"}).UserID
	}
	ps[7].Email = "broken-at-at@@example.org"
	res := createAll(t.Context(), s, ps)
	if got := batchSizes(t, srv); len(got) != 1 || got[0] != 8 {
		t.Fatalf("got batches of %v, want one of 8", got)
	}
	if err := res[ps[7].ID].err; err == nil || !strings.Contains(err.Error(), "is not a valid email") {
		t.Errorf("the invalid user: got %v, want the batch's failure text", err)
	}
	good := ps[:7]
	delete(res, ps[7].ID)
	checkOnePerPerson(t, srv, good, res)
	for _, p := range good {
		r := res[p.ID]
		if id, ok := existing[p.ID]; ok != r.out.Adopted || ok && r.out.UserID != id {
			t.Errorf("%s: got %+v, want adopted %v (user %q)", p.ID, r.out, ok, id)
		}
	}
	if u, _ := srv.User(ps[0].Email); u.Phone != "+1555" || u.GivenName != "Ann" {
		t.Errorf("adopted user: got %+v", u)
	}
}

// Where a batch with a taken loginId is refused whole (the other reading of the
// documents), each user is created alone, and the taken ones adopted.
func TestBatchRefusedWhole(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{BatchAllOrNothing: true})
	s := batchSink(t, srv, 6)
	ps := people("R", 6)
	old := srv.AddUser(descopetest.User{LoginIDs: []string{ps[2].Email}, Email: ps[2].Email}).UserID
	res := createAll(t.Context(), s, ps)
	checkOnePerPerson(t, srv, ps, res)
	if r := res[ps[2].ID]; !r.out.Adopted || r.out.UserID != old {
		t.Errorf("got %+v, want %s adopted", r.out, old)
	}
	if n := srv.Requests()["user.create"]; n != 6 {
		t.Errorf("got %d single creates, want 6", n)
	}
}

// A batch that fails as a whole after Descope made the users (a 502 from a proxy)
// leaves no caller unsure: each looks its loginId up and adopts what the batch made;
// none is made twice.
func TestBatchFailsAfterActing(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := batchSink(t, srv, 5)
	srv.Fail(descopetest.Fault{Endpoint: "user.create.batch", N: 1, Status: http.StatusBadGateway, After: true})
	ps := people("A", 5)
	res := createAll(t.Context(), s, ps)
	checkOnePerPerson(t, srv, ps, res)
	if n := srv.Requests()["user.create.batch"]; n != 1 {
		t.Errorf("got %d batch requests, want 1: a batch that may have acted is not sent again", n)
	}
	if n := srv.Requests()["user.create"]; n != 0 {
		t.Errorf("got %d single creates, want none: every user was there", n)
	}
}

// A batch that fails before acting (a network error, here a 502 before any effect)
// makes each caller look, find nothing and create its user alone.
func TestBatchFailsBeforeActing(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := batchSink(t, srv, 5)
	srv.Fail(descopetest.Fault{Endpoint: "user.create.batch", N: 1, Status: http.StatusBadGateway})
	ps := people("N", 5)
	res := createAll(t.Context(), s, ps)
	checkOnePerPerson(t, srv, ps, res)
	if n := srv.Requests()["user.create"]; n != 5 {
		t.Errorf("got %d single creates, want 5", n)
	}
	// A 503 says Descope did not act: the batch itself is retried.
	srv2 := descopetest.Start(t, descopetest.Options{})
	s2 := batchSink(t, srv2, 5)
	srv2.Fail(descopetest.Fault{Endpoint: "user.create.batch", N: 2, Status: http.StatusServiceUnavailable})
	ps2 := people("M", 5)
	res2 := createAll(t.Context(), s2, ps2)
	checkOnePerPerson(t, srv2, ps2, res2)
	if n := srv2.Requests()["user.create.batch"]; n != 3 {
		t.Errorf("got %d batch requests, want 3", n)
	}
}

// Refused credentials stop every caller of the batch.
func TestBatchRefusedKey(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { c.BatchSize, c.BatchWait, c.ManagementKey = 4, 200*time.Millisecond, "wrong" })
	res := createAll(t.Context(), s, people("K", 4))
	for id, r := range res {
		if !errors.Is(r.err, dsync.ErrStopSink) {
			t.Errorf("%s: got %v, want ErrStopSink", id, r.err)
		}
	}
	if n := srv.Total(); n != 1 {
		t.Errorf("got %d requests, want the one batch", n)
	}
}

// A caller that leaves before its batch is sent is taken out of it; a batch some of
// whose callers left is still sent for the others.
func TestBatchCallerLeaves(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { c.BatchSize, c.BatchWait = 10, 150*time.Millisecond })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	ps := people("Q", 3)
	var leaving createResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		leaving.out, leaving.err = s.Apply(ctx, dsync.Op{Kind: dsync.CreateUser, ID: "Q-left", Want: person("Q-left")})
	}()
	res := createAll(t.Context(), s, ps)
	<-done
	if !errors.Is(leaving.err, context.DeadlineExceeded) {
		t.Errorf("the caller that left: got %v", leaving.err)
	}
	checkOnePerPerson(t, srv, ps, res)
	if got := batchSizes(t, srv); len(got) != 1 || got[0] != 3 {
		t.Errorf("got batches of %v, want one of 3", got)
	}
}

// batch_create: false sends each create alone.
func TestBatchOff(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { f := false; c.BatchCreate = &f })
	ps := people("O", 6)
	res := createAll(t.Context(), s, ps)
	checkOnePerPerson(t, srv, ps, res)
	if n, b := srv.Requests()["user.create"], srv.Requests()["user.create.batch"]; n != 6 || b != 0 {
		t.Errorf("got %d single creates and %d batches, want 6 and 0", n, b)
	}
	if s.Concurrency() != 8 {
		t.Errorf("got concurrency %d without batches, want 8", s.Concurrency())
	}
}

// Creates that come in a trickle while the create budget is spent (the workers busy
// with adoptions after a crash, say) are gathered until it refills, not sent one
// create request each: at 1.5 creates a second, a hundred of those took 66 s.
func TestBatchWaitsForTheBudget(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) {
		c.BatchSize, c.BatchWait, c.CreateRateLimit = 50, 5*time.Millisecond, 4 // a create request each 250ms
	})
	for s.batch.budget.Allow() { // spend the burst
	}
	ps := people("T", 12)
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { mustCreate(t, s, p) })
		time.Sleep(10 * time.Millisecond) // one create every 10ms, twice batch_wait
	}
	wg.Wait()
	creates := srv.Requests()["user.create"] + srv.Requests()["user.create.batch"]
	if creates > 2 {
		t.Errorf("12 creates, 10ms apart, made %d create requests (batches %v): want them gathered while the budget refills", creates, batchSizes(t, srv))
	}
	if len(srv.Users()) != 12 {
		t.Errorf("%d users, want 12", len(srv.Users()))
	}
}

// While one batch waits for the budget (behind the general rate limit here), the next
// one is not sent with the one or two users that arrived meanwhile: it waits for the
// first to be answered, and goes out with everyone who came in the meantime. Before,
// a resumed run sent a hundred creates alone, one per create token: 66 s.
func TestBatchOneInFlight(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) {
		c.BatchSize, c.BatchWait, c.CreateRateLimit = 50, 5*time.Millisecond, 50
		c.RateLimit, c.Burst = 4, 1 // a request each 250ms
	})
	ps := people("F", 12)
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { mustCreate(t, s, p) })
		time.Sleep(25 * time.Millisecond)
	}
	wg.Wait()
	creates := srv.Requests()["user.create"] + srv.Requests()["user.create.batch"]
	if creates > 4 {
		t.Errorf("12 creates, 25ms apart, made %d create requests (batches %v): want a batch to wait for the one in flight", creates, batchSizes(t, srv))
	}
	if len(srv.Users()) != 12 {
		t.Errorf("%d users, want 12", len(srv.Users()))
	}
}
