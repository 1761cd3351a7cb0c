package icure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/sinks/icure/icuretest"
	"github.com/idsync/idsync/sinks/sinktest"
	dsync "github.com/idsync/idsync/sync"
)

// waits records the waits the client asked for before its retries, and waits none.
type waits struct {
	mu gosync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

// newTestSink starts a contract server and a sink for it that acts as the
// administrator.
func newTestSink(t *testing.T, opt icuretest.Options, edit func(*Config)) (*Sink, *icuretest.Server, *waits) {
	t.Helper()
	srv := icuretest.Start(t, opt)
	s, w := newSinkFor(t, srv.URL, srv, edit)
	return s, srv, w
}

// newSinkFor makes a sink for url with srv's administrator credentials.
func newSinkFor(t *testing.T, url string, srv *icuretest.Server, edit func(*Config)) (*Sink, *waits) {
	t.Helper()
	retries := 3
	cfg := Config{URL: url, Username: srv.Username(), Password: srv.Password(), Settings: httpapi.Settings{MaxRetries: &retries}}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	s.api.Sleep = w.sleep
	return s, w
}

func apply(t *testing.T, s *Sink, op dsync.Op) dsync.Outcome {
	t.Helper()
	out, err := s.Apply(t.Context(), op)
	if err != nil {
		t.Fatalf("%s: %v", op.Kind, err)
	}
	return out
}

func create(t *testing.T, s *Sink, want dsync.Identity) dsync.Outcome {
	t.Helper()
	return apply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: want.ID, Want: want})
}

func stored(t *testing.T, srv *icuretest.Server, id string) icuretest.User {
	t.Helper()
	u, ok := srv.User(id)
	if !ok {
		t.Fatalf("no user %s on the server", id)
	}
	return u
}

// calls lists the server's log as "METHOD endpoint status", from index from on.
func calls(srv *icuretest.Server, from int) []string {
	var c []string
	for _, r := range srv.Log()[from:] {
		c = append(c, fmt.Sprintf("%s %s %d", r.Method, r.Endpoint, r.Status))
	}
	return c
}

func TestNameUUID(t *testing.T) {
	// Python: uuid.uuid5(uuid.NAMESPACE_URL, "idsync:x")
	ns, err := parseUUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nameUUID(ns, "idsync:x"), "37f7de6f-2fce-5cc0-af1a-89a87808fcb2"; got != want {
		t.Errorf("nameUUID = %s, want %s", got, want)
	}
	if !nameBased("37f7de6f-2fce-5cc0-af1a-89a87808fcb2") || nameBased("a86350a5-c1f6-414c-827e-23e9fe257789") || nameBased("admin") {
		t.Error("nameBased tells version 5 UUIDs from others wrongly")
	}
	for _, bad := range []string{"", "6ba7b810-9dad-11d1-80b4-00c04fd430c", "6ba7b810x9dad-11d1-80b4-00c04fd430c8", "zba7b810-9dad-11d1-80b4-00c04fd430c8"} {
		if _, err := parseUUID(bad); err == nil {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

func TestCreateUsesDerivedIDAndMapsFields(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("C1")
	out := create(t, s, p)
	if out.UserID != s.userID("C1") || !nameBased(out.UserID) || out.Adopted {
		t.Fatalf("outcome %+v, want the derived id %s, not adopted", out, s.userID("C1"))
	}
	other, _ := newSinkFor(t, srv.URL, srv, nil)
	if other.userID("C1") != out.UserID {
		t.Error("another sink (another run) derives another id for the same identity")
	}
	ns, _ := newSinkFor(t, srv.URL, srv, func(c *Config) { c.IDNamespace = "6ba7b810-9dad-11d1-80b4-00c04fd430c8" })
	if ns.userID("C1") == out.UserID {
		t.Error("id_namespace does not change the derived ids")
	}
	u := stored(t, srv, out.UserID)
	if u.Login != p.Email || u.Email != p.Email || u.Name != p.DisplayName || u.Status != "ACTIVE" || u.PasswordHash != "" {
		t.Errorf("stored %+v, want login and email %s, name %q, ACTIVE, no password", u, p.Email, p.DisplayName)
	}

	// login: username; and the name made of first and last names when there is no
	// display name.
	s, srv, _ = newTestSink(t, icuretest.Options{}, func(c *Config) { c.Login = "username" })
	p = sinktest.Person("C2")
	p.DisplayName = ""
	out = create(t, s, p)
	if u := stored(t, srv, out.UserID); u.Login != p.Username || u.Email != p.Email || u.Name != "Ann Lee C2" {
		t.Errorf("stored %+v, want login %s, email %s, name %q", u, p.Username, p.Email, "Ann Lee C2")
	}
}

// A create repeated after a crash meets its own account and converges it, whether
// iCure answers the duplicate email (the email is unchanged) or the taken id (it
// changed in between); there is never a second account.
func TestRepeatedCreateFindsItsOwnAccount(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("R1")
	first := create(t, s, p)

	again, _ := newSinkFor(t, srv.URL, srv, nil) // the next run
	from := len(srv.Log())
	out := create(t, again, p)
	if out.UserID != first.UserID || out.Adopted {
		t.Errorf("repeated create: %+v, want %s, not adopted (idsync made it)", out, first.UserID)
	}
	if got := calls(srv, from); !slices.Equal(got, []string{"POST user.create 400", "GET user.get 200"}) {
		t.Errorf("requests %v, want the duplicate answer, then the read of its own id and no write", got)
	}

	p.Email, p.DisplayName = "moved-R1@example.org", "Moved"
	from = len(srv.Log())
	out = create(t, again, p)
	if got := calls(srv, from); !slices.Equal(got, []string{"POST user.create 409", "GET user.get 200", "PUT user.modify 200"}) {
		t.Errorf("requests %v, want the taken id, the read and one write", got)
	}
	u := stored(t, srv, out.UserID)
	if out.UserID != first.UserID || u.Email != p.Email || u.Login != p.Email || u.Name != "Moved" {
		t.Errorf("after the create with a new email: %+v (id %s), want it converged", u, out.UserID)
	}
	if n := len(srv.Users()); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

// A create whose email an account made outside idsync holds adopts it: its id, its
// fields converged, active again, and the rest of its document kept.
func TestCreateAdoptsAccountByEmail(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("A1")
	manual, err := srv.AddUser(icuretest.User{ID: "5c1c5b0e-0d4e-4a43-9c7e-3f2d9a1b7c10", Login: "ann", Email: p.Email,
		Status: "DISABLED", Extra: map[string]json.RawMessage{"roles": json.RawMessage(`["HCP"]`)}})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetPassword(manual.ID, "secret-pw")
	out := create(t, s, p)
	if out.UserID != manual.ID || !out.Adopted {
		t.Fatalf("outcome %+v, want %s adopted", out, manual.ID)
	}
	u := stored(t, srv, manual.ID)
	if u.Login != p.Email || u.Name != p.DisplayName || u.Status != "ACTIVE" || string(u.Extra["roles"]) != `["HCP"]` {
		t.Errorf("adopted %+v, want login %s, name, ACTIVE and its roles kept", u, p.Email)
	}
	if !srv.CheckPassword(manual.ID, "secret-pw") {
		t.Error("adoption lost the account's password")
	}
	if n := len(srv.Users()); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

// An account that holds the email and has a name-based id is not adopted: idsync made
// it for another identity.
func TestCreateRefusesAnotherIdentitysAccount(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("A2")
	theirs := create(t, s, sinktest.Person("A3"))
	srv.Edit(theirs.UserID, func(u *icuretest.User) { u.Email = p.Email })
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
	if !errors.Is(err, dsync.ErrConflict) {
		t.Fatalf("err %v, want ErrConflict", err)
	}
	if u := stored(t, srv, theirs.UserID); u.Login != sinktest.Person("A3").Email {
		t.Errorf("the other identity's account was changed: %+v", u)
	}
	if n := len(srv.Users()); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

// A duplicate login with no account holding the email is a conflict.
func TestCreateWithTakenLoginIsConflict(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, func(c *Config) { c.Login = "username" })
	p := sinktest.Person("L1")
	if _, err := srv.AddUser(icuretest.User{ID: "someone", Login: p.Username, Email: "someone@example.org"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
	if !errors.Is(err, dsync.ErrConflict) || !strings.Contains(err.Error(), "A user with Login "+p.Username+" already exists") {
		t.Errorf("err %v, want ErrConflict with iCure's message", err)
	}
	if !strings.HasPrefix(err.Error(), "icure: create_user L1: ") {
		t.Errorf("err %q does not name the sink, op and identity", err)
	}
	if n := len(srv.Users()); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

// A validation error (also a 400) is a plain permanent error: not retried, not taken
// for a duplicate, with iCure's message.
func TestValidationErrorIsPermanent(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("V1")
	p.Email = "no-at-sign"
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(err.Error(), "Invalid email no-at-sign") {
		t.Fatalf("err %v, want the 400 with iCure's message", err)
	}
	for _, target := range []error{dsync.ErrExists, dsync.ErrConflict, dsync.ErrNotFound, dsync.ErrStopSink} {
		if errors.Is(err, target) {
			t.Errorf("a validation error is %v", target)
		}
	}
	if got := calls(srv, 0); !slices.Equal(got, []string{"POST user.create 400"}) {
		t.Errorf("requests %v, want the one create", got)
	}
}

// An update sends the whole document read, at its rev, with what changed: the
// password, the authentication tokens and the fields idsync does not hold survive.
func TestUpdateKeepsPasswordTokensAndOtherFields(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("U1")
	id := create(t, s, p).UserID
	srv.SetPassword(id, "the-password")
	srv.Touch(id) // sets termsOfUseDate
	tok := tokenFor(t, srv, id, "onboarding")
	before := stored(t, srv, id)

	have := p
	p.Email = "new-U1@example.org"
	from := len(srv.Log())
	apply(t, s, dsync.Op{Kind: dsync.UpdateUser, ID: p.ID, Want: p, Have: &have, Fields: dsync.FieldEmail, UserID: id})
	if got := calls(srv, from); !slices.Equal(got, []string{"GET user.get 200", "PUT user.modify 200"}) {
		t.Errorf("requests %v, want one read and one write", got)
	}
	u := stored(t, srv, id)
	if u.Email != p.Email || u.Login != p.Email || u.Name != p.DisplayName {
		t.Errorf("stored %+v, want the new email as email and login", u)
	}
	if u.PasswordHash != before.PasswordHash || !srv.CheckPassword(id, "the-password") {
		t.Error("the update changed the stored password")
	}
	if string(u.Extra["termsOfUseDate"]) != string(before.Extra["termsOfUseDate"]) {
		t.Errorf("termsOfUseDate %s, want %s kept", u.Extra["termsOfUseDate"], before.Extra["termsOfUseDate"])
	}
	if got := srv.Tokens(id)["onboarding"].Value; got != tok {
		t.Errorf("token %q after the update, want %q kept", got, tok)
	}
	// The person can still log in with the password, under the new login.
	if status := getCurrent(t, srv, p.Email, "the-password"); status != http.StatusOK {
		t.Errorf("logging in with the kept password: HTTP %d", status)
	}

	// Fields that change nothing in iCure (an attribute this sink does not hold) write
	// nothing.
	from = len(srv.Log())
	have = p
	p.Attributes = dsync.AttributesOf(map[string][]string{"title": {"Dr"}})
	apply(t, s, dsync.Op{Kind: dsync.UpdateUser, ID: p.ID, Want: p, Have: &have, Fields: dsync.FieldAttributes, UserID: id})
	if got := calls(srv, from); len(got) != 0 {
		t.Errorf("requests %v for a field the sink does not hold, want none", got)
	}
}

// tokenFor makes an authentication token for the user through the token endpoint, as
// the administrator.
func tokenFor(t *testing.T, srv *icuretest.Server, id, key string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/rest/v2/user/token/"+id+"/"+key+"?tokenValidity=600", nil)
	req.SetBasicAuth(srv.Username(), srv.Password())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token endpoint: HTTP %d %s", resp.StatusCode, b.String())
	}
	return b.String()
}

// getCurrent calls GET /current with basic credentials and returns the status.
func getCurrent(t *testing.T, srv *icuretest.Server, login, password string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/rest/v2/user/current", nil)
	req.SetBasicAuth(login, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// An update that would give the account an email another account holds is a conflict,
// and changes nothing.
func TestUpdateToTakenEmailIsConflict(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	a, b := sinktest.Person("E1"), sinktest.Person("E2")
	id := create(t, s, a).UserID
	create(t, s, b)
	have := a
	a.Email = b.Email
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.UpdateUser, ID: a.ID, Want: a, Have: &have, Fields: dsync.FieldEmail, UserID: id})
	if !errors.Is(err, dsync.ErrConflict) || errors.Is(err, dsync.ErrExists) {
		t.Errorf("err %v, want ErrConflict (and not ErrExists)", err)
	}
	if u := stored(t, srv, id); u.Email != have.Email {
		t.Errorf("email %s, want %s unchanged", u.Email, have.Email)
	}
}

// A write that meets 409 (the user changed since it was read) reads it again and
// retries once, keeping the other writer's change; a second 409 is an error.
func TestStaleRevIsReadAgainOnce(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("S1")
	id := create(t, s, p).UserID
	srv.TouchAfterGet(id, 1)
	from := len(srv.Log())
	p.Active = false
	apply(t, s, dsync.Op{Kind: dsync.DisableUser, ID: p.ID, Want: p, UserID: id})
	want := []string{"GET user.get 200", "PUT user.modify 409", "GET user.get 200", "PUT user.modify 200"}
	if got := calls(srv, from); !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	u := stored(t, srv, id)
	if u.Status != "DISABLED" || len(u.Extra["termsOfUseDate"]) == 0 {
		t.Errorf("stored %+v, want DISABLED with the other writer's termsOfUseDate", u)
	}

	srv.TouchAfterGet(id, 2)
	p.Active = true
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.EnableUser, ID: p.ID, Want: p, UserID: id})
	if !staleRev(err) || errors.Is(err, dsync.ErrStopSink) {
		t.Errorf("two 409s in a row: %v, want the 409", err)
	}
	if u := stored(t, srv, id); u.Status != "DISABLED" {
		t.Errorf("status %s, want DISABLED still", u.Status)
	}
}

func TestDisableAndEnableSetStatus(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("D1")
	id := create(t, s, p).UserID
	for _, step := range []struct {
		kind   dsync.OpKind
		status string
		writes int
	}{{dsync.DisableUser, "DISABLED", 1}, {dsync.DisableUser, "DISABLED", 0}, {dsync.EnableUser, "ACTIVE", 1}} {
		before := srv.Requests()["user.modify"]
		apply(t, s, dsync.Op{Kind: step.kind, ID: p.ID, Want: p, UserID: id})
		if u := stored(t, srv, id); u.Status != step.status {
			t.Errorf("after %s: status %s, want %s", step.kind, u.Status, step.status)
		}
		if n := srv.Requests()["user.modify"] - before; n != step.writes {
			t.Errorf("%s made %d writes, want %d", step.kind, n, step.writes)
		}
	}
}

// Delete is soft: the document stays with a deletionDate, and counts as gone for
// updates, reads and further deletes. A create of the person then undeletes it.
func TestDeleteIsSoftAndCreateUndeletes(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, nil)
	p := sinktest.Person("X1")
	id := create(t, s, p).UserID
	from := len(srv.Log())
	apply(t, s, dsync.Op{Kind: dsync.DeleteUser, ID: p.ID, Want: p, UserID: id})
	u := stored(t, srv, id)
	if !u.Deleted() {
		t.Fatal("the user has no deletionDate after delete_user")
	}
	log := srv.Log()[from:]
	if len(log) != 2 || log[1].Endpoint != "user.delete" || !strings.Contains(log[1].Path, "rev=") {
		t.Errorf("requests %+v, want a read and a DELETE with the rev", log)
	}

	have := p
	p.Email = "moved-X1@example.org"
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.UpdateUser, ID: p.ID, Want: p, Have: &have, Fields: dsync.FieldEmail, UserID: id})
	if !errors.Is(err, dsync.ErrNotFound) {
		t.Errorf("update of a deleted user: %v, want ErrNotFound", err)
	}
	if _, err := s.ReadUser(t.Context(), dsync.Entry{ID: p.ID, UserID: id, User: &have}); !errors.Is(err, dsync.ErrNotFound) {
		t.Errorf("read of a deleted user: %v, want ErrNotFound", err)
	}
	before := srv.Requests()["user.delete"]
	apply(t, s, dsync.Op{Kind: dsync.DeleteUser, ID: p.ID, Want: p, UserID: id})
	if n := srv.Requests()["user.delete"] - before; n != 0 {
		t.Errorf("deleting a deleted user sent %d DELETEs, want none", n)
	}

	out := create(t, s, p)
	u = stored(t, srv, id)
	if out.UserID != id || u.Deleted() || u.Email != p.Email || u.Status != "ACTIVE" {
		t.Errorf("create of the person who is back: %+v, stored %+v; want %s undeleted and converged", out, u, id)
	}
	if srv.Requests()["user.undelete"] != 1 || len(srv.Users()) != 1 {
		t.Errorf("requests %v, %d users: want one undelete and one user", srv.Requests(), len(srv.Users()))
	}
}

func TestPatientLink(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, func(c *Config) { c.PatientIDAttribute = "patient" })
	if !s.Schema().User.Has(dsync.FieldAttributes) {
		t.Fatal("the schema leaves the attributes out though a patient attribute is set")
	}
	p := sinktest.Person("P1")
	p.Attributes = dsync.AttributesOf(map[string][]string{"patient": {"pat-1"}})
	id := create(t, s, p).UserID
	if u := stored(t, srv, id); u.PatientID != "pat-1" || u.HCPartyID != "" {
		t.Errorf("stored %+v, want patientId pat-1", u)
	}
	update := func(attrs map[string][]string) {
		t.Helper()
		have := p
		p.Attributes = dsync.AttributesOf(attrs)
		apply(t, s, dsync.Op{Kind: dsync.UpdateUser, ID: p.ID, Want: p, Have: &have, Fields: dsync.FieldAttributes, UserID: id})
	}
	update(map[string][]string{"patient": {"pat-2"}})
	if u := stored(t, srv, id); u.PatientID != "pat-2" {
		t.Errorf("patientId %q, want pat-2", u.PatientID)
	}
	update(nil) // the attribute is gone: the link stays
	if u := stored(t, srv, id); u.PatientID != "pat-2" {
		t.Errorf("patientId %q after the attribute went, want pat-2 kept", u.PatientID)
	}

	if problems := s.Check(&dsync.Identity{ID: "P2", Email: "a@b.org", Attributes: dsync.AttributesOf(map[string][]string{"patient": {"a/b"}})}); len(problems) != 1 || !strings.Contains(problems[0], "patient") {
		t.Errorf("Check of a bad patient id: %v, want one problem naming the attribute", problems)
	}

	s, srv, _ = newTestSink(t, icuretest.Options{}, func(c *Config) { c.HealthcarePartyIDAttribute = "hcp" })
	p = sinktest.Person("H1")
	p.Attributes = dsync.AttributesOf(map[string][]string{"hcp": {"hcp-1"}})
	if u := stored(t, srv, create(t, s, p).UserID); u.HCPartyID != "hcp-1" || u.PatientID != "" {
		t.Errorf("stored %+v, want healthcarePartyId hcp-1", u)
	}
	s, _, _ = newTestSink(t, icuretest.Options{}, nil)
	if s.Schema().User.Has(dsync.FieldAttributes) {
		t.Error("the schema holds the attributes without a patient or healthcare party attribute")
	}
}

func TestCheck(t *testing.T) {
	s, _, _ := newTestSink(t, icuretest.Options{}, nil)
	for _, tc := range []struct {
		id   dsync.Identity
		want int
	}{
		{sinktest.Person("K1"), 0},
		{dsync.Identity{ID: "K2", Username: "only-a-username"}, 0},
		{dsync.Identity{ID: "K3"}, 1},
		{dsync.Identity{ID: "K4", Email: "no-at"}, 1},
	} {
		if got := s.Check(&tc.id); len(got) != tc.want {
			t.Errorf("Check(%s) = %v, want %d problems", tc.id.ID, got, tc.want)
		}
	}
}

func TestReadUserReportsDrift(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, func(c *Config) { c.PatientIDAttribute = "patient" })
	p := sinktest.Person("F1")
	p.Attributes = dsync.AttributesOf(map[string][]string{"patient": {"pat-1"}, "title": {"Dr"}})
	id := create(t, s, p).UserID
	applied := dsync.Project(p, s.Schema().User)
	e := dsync.Entry{ID: p.ID, UserID: id, User: &applied}
	got, err := s.ReadUser(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if c := dsync.Changed(&applied, &got, s.Schema().User); c != 0 || !got.Active {
		t.Errorf("no drift yet, but fields %s differ (active %v)", c, got.Active)
	}
	srv.Edit(id, func(u *icuretest.User) {
		u.Email, u.Name, u.Status, u.PatientID = "hand@example.org", "By Hand", "DISABLED", "pat-9"
	})
	got, err = s.ReadUser(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "hand@example.org" || got.DisplayName != "By Hand" || got.Active || got.Attributes.Get("patient")[0] != "pat-9" || got.Attributes.Get("title")[0] != "Dr" {
		t.Errorf("read %+v, want the hand-made email, name, status and patient", got)
	}
	if applied.Attributes.Get("patient")[0] != "pat-1" {
		t.Error("ReadUser changed the entry's attributes")
	}
}

// 429s are retried after the Retry-After the server sends.
func TestRateLimitIsHonoured(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{RateLimit: 3, RateWindow: 100 * time.Millisecond}, nil)
	var asked []time.Duration
	s.api.Sleep = func(ctx context.Context, d time.Duration) error {
		asked = append(asked, d)
		time.Sleep(min(d, 120*time.Millisecond))
		return ctx.Err()
	}
	for i := range 5 {
		create(t, s, sinktest.Person(fmt.Sprintf("Q%d", i)))
	}
	if len(srv.Users()) != 5 || srv.Requests()["user.create"] <= 5 {
		t.Errorf("%d users after %d creates, want 5 with some throttled", len(srv.Users()), srv.Requests()["user.create"])
	}
	if len(asked) == 0 || asked[0] != time.Second {
		t.Errorf("waits %v, want the server's Retry-After of 1s", asked)
	}
}

func TestUnsupportedOperation(t *testing.T) {
	s, _, _ := newTestSink(t, icuretest.Options{}, nil)
	if _, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "N1"}); !errors.Is(err, dsync.ErrUnsupported) {
		t.Errorf("create_profile: %v, want ErrUnsupported", err)
	}
	if !s.Schema().Delete || s.Schema().Profile != 0 {
		t.Errorf("schema %+v, want deletes and no profiles", s.Schema())
	}
}
