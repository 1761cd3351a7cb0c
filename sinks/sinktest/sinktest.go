// Package sinktest is the conformance suite every idsync sink passes against its own
// contract server: create, a no-op, update, disable, enable, delete, adoption of an
// account that already exists, convergence after "not found", retries of 429 and 5xx,
// and a cancelled context that returns promptly.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

// Account is what the contract server holds for one identity.
type Account struct {
	Email  string
	Active bool
}

// Target is one fresh sink and handles on its contract server.
type Target struct {
	Sink dsync.Sink
	// Account returns the account the server holds for the identity id.
	Account func(id string) (Account, bool)
	// Requests counts every request the server has received.
	Requests func() int
	// FailNext makes the next n requests fail with status (429 or a 5xx), before they
	// have any effect.
	FailNext func(n, status int)
	// SetLatency delays every request.
	SetLatency func(time.Duration)
	// Remove deletes the account behind the sink's back, as an administrator would.
	Remove func(id string)
}

// Run runs the suite. newTarget is called once per subtest.
func Run(t *testing.T, newTarget func(t *testing.T) Target) {
	t.Run("lifecycle", func(t *testing.T) { lifecycle(t, newTarget(t)) })
	t.Run("create adopts what exists", func(t *testing.T) { adopt(t, newTarget(t)) })
	t.Run("not found", func(t *testing.T) { notFound(t, newTarget(t)) })
	t.Run("429 and 5xx are retried", func(t *testing.T) { retried(t, newTarget(t)) })
	t.Run("a cancelled context returns promptly", func(t *testing.T) { cancelled(t, newTarget(t)) })
}

// Person returns a valid identity for the suite.
func Person(id string) dsync.Identity {
	return dsync.Identity{ID: id, Username: "user-" + id, Email: "user-" + id + "@example.org",
		FirstName: "Ann", LastName: "Lee " + id, DisplayName: "Ann Lee " + id, Active: true}
}

// applier runs operations as the engine would: the sink's ids carried from one to
// the next.
type applier struct {
	t      *testing.T
	sink   dsync.Sink
	entry  dsync.Entry
	schema dsync.Schema
}

func newApplier(t *testing.T, s dsync.Sink, id string) *applier {
	return &applier{t: t, sink: s, entry: dsync.Entry{ID: id}, schema: s.Schema()}
}

func (a *applier) apply(ctx context.Context, kind dsync.OpKind, want dsync.Identity, fields dsync.FieldSet) error {
	op := dsync.Op{Kind: kind, ID: want.ID, Want: want, Fields: fields, UserID: a.entry.UserID, ProfileRef: a.entry.ProfileRef}
	switch kind {
	case dsync.UpdateUser:
		op.Have = a.entry.User
	case dsync.UpdateProfile, dsync.EnableUser, dsync.DisableUser:
		op.Have = a.entry.Profile
	}
	out, err := a.sink.Apply(ctx, op)
	if err != nil {
		return err
	}
	if out.UserID != "" {
		a.entry.UserID = out.UserID
	}
	if out.ProfileRef != "" {
		a.entry.ProfileRef = out.ProfileRef
	}
	u, p := dsync.Project(want, a.schema.User), dsync.Project(want, a.schema.Profile)
	switch kind {
	case dsync.CreateUser, dsync.UpdateUser, dsync.EnableUser, dsync.DisableUser:
		a.entry.User = &u
	}
	if a.schema.Profile != 0 {
		a.entry.Profile = &p
	}
	return nil
}

func (a *applier) must(kind dsync.OpKind, want dsync.Identity, fields dsync.FieldSet) {
	a.t.Helper()
	if err := a.apply(a.t.Context(), kind, want, fields); err != nil {
		a.t.Fatalf("%s: %v", kind, err)
	}
}

// create makes the identity as the engine's first run would.
func (a *applier) create(want dsync.Identity) {
	a.t.Helper()
	if a.schema.Profile != 0 {
		a.must(dsync.CreateProfile, want, 0)
	}
	a.must(dsync.CreateUser, want, 0)
}

func expect(t *testing.T, tg Target, id string, want Account) {
	t.Helper()
	got, ok := tg.Account(id)
	if !ok || got != want {
		t.Fatalf("account %s = %+v (exists %v), want %+v", id, got, ok, want)
	}
}

func lifecycle(t *testing.T, tg Target) {
	a := newApplier(t, tg.Sink, "S1")
	p := Person("S1")
	a.create(p)
	expect(t, tg, "S1", Account{Email: p.Email, Active: true})

	// A no-op: an update that changes nothing sends nothing that changes anything.
	before := tg.Requests()
	if err := a.apply(t.Context(), dsync.UpdateUser, p, 0); err != nil {
		t.Fatalf("no-op update: %v", err)
	}
	if n := tg.Requests() - before; n > 1 {
		t.Errorf("an update of no field made %d requests, want at most one", n)
	}

	p.Email = "changed-S1@example.org"
	a.must(dsync.UpdateUser, p, dsync.FieldEmail)
	if a.schema.Profile != 0 {
		a.must(dsync.UpdateProfile, p, dsync.FieldEmail)
	}
	expect(t, tg, "S1", Account{Email: p.Email, Active: true})

	p.Active = false
	a.must(dsync.DisableUser, p, 0)
	expect(t, tg, "S1", Account{Email: p.Email, Active: false})
	a.must(dsync.DisableUser, p, 0) // again: idempotent
	expect(t, tg, "S1", Account{Email: p.Email, Active: false})

	p.Active = true
	a.must(dsync.EnableUser, p, 0)
	expect(t, tg, "S1", Account{Email: p.Email, Active: true})

	err := a.apply(t.Context(), dsync.DeleteUser, p, 0)
	switch {
	case !a.schema.Delete && !errors.Is(err, dsync.ErrUnsupported):
		t.Errorf("delete on a sink without deletes: %v, want ErrUnsupported", err)
	case a.schema.Delete && err != nil:
		t.Errorf("delete: %v", err)
	case a.schema.Delete:
		if _, ok := tg.Account("S1"); ok {
			t.Error("the account still exists after delete_user")
		}
	}
}

// adopt: a create that meets an account idsync made (a run that crashed before
// recording it) adopts it, and no second account appears.
func adopt(t *testing.T, tg Target) {
	first := newApplier(t, tg.Sink, "S2")
	first.create(Person("S2"))
	again := newApplier(t, tg.Sink, "S2")
	again.create(Person("S2"))
	if again.entry.UserID != first.entry.UserID {
		t.Errorf("the repeated create gave user %q, want the first one's %q", again.entry.UserID, first.entry.UserID)
	}
	expect(t, tg, "S2", Account{Email: Person("S2").Email, Active: true})
}

// notFound: an update of an account deleted behind the sink's back either says
// ErrNotFound, which the engine turns into a create on the next run, or re-creates the
// account at once (as Descope's guide asks on E112102) and returns its new id.
func notFound(t *testing.T, tg Target) {
	if tg.Remove == nil {
		t.Skip("the contract server has no way to delete an account behind the sink's back")
	}
	a := newApplier(t, tg.Sink, "S3")
	p := Person("S3")
	a.create(p)
	tg.Remove("S3")
	old := a.entry.UserID
	p.Email = "moved-S3@example.org"
	err := a.apply(t.Context(), dsync.UpdateUser, p, dsync.FieldEmail)
	switch {
	case errors.Is(err, dsync.ErrNotFound):
	case err != nil:
		t.Errorf("update of a deleted account: %v, want ErrNotFound or a re-created account", err)
	default:
		expect(t, tg, "S3", Account{Email: p.Email, Active: true})
		if a.entry.UserID == "" {
			t.Errorf("the re-created account has no id (the old one was %q)", old)
		}
	}
}

func retried(t *testing.T, tg Target) {
	for i, status := range []int{503, 429, 502} {
		id := fmt.Sprintf("S4-%d", i)
		tg.FailNext(2, status)
		a := newApplier(t, tg.Sink, id)
		a.create(Person(id))
		expect(t, tg, id, Account{Email: Person(id).Email, Active: true})
	}
}

func cancelled(t *testing.T, tg Target) {
	tg.SetLatency(3 * time.Second)
	defer tg.SetLatency(0)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	a := newApplier(t, tg.Sink, "S5")
	start := time.Now()
	err := a.apply(ctx, dsync.CreateUser, Person("S5"), 0)
	if err == nil {
		t.Fatal("an operation under a cancelled context succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("it returned after %v, want promptly", d)
	}
}
