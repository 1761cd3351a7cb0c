package domo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/idsync/idsync/sinks/domo/domotest"
	dsync "github.com/idsync/idsync/sync"
)

// clock is a fake time that the sink, its retries' waits and the server share.
type clock struct {
	mu gosync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log destination for concurrent writers.
type syncBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// env is a contract server and a sink for it, on one fake clock. Retries do not
// wait: they advance the clock by what they would have waited, and keep the waits.
type env struct {
	sink  *Sink
	srv   *domotest.Server
	clock *clock
	logs  *syncBuffer

	mu    gosync.Mutex
	waits []time.Duration
}

func newEnv(t *testing.T, opt domotest.Options, edit func(*Config)) *env {
	t.Helper()
	e := &env{clock: &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	opt.Now = e.clock.Now
	e.srv = domotest.Start(t, opt)
	retries := 3
	cfg := Config{URL: e.srv.URL, ClientID: e.srv.ClientID(), ClientSecret: e.srv.ClientSecret()}
	cfg.MaxRetries = &retries
	cfg.RateLimit = 10000 // the default, 40 a second, would make every test slow
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, nil, nil, slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	s.now = e.clock.Now
	s.api.Sleep = func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.waits = append(e.waits, d)
		e.mu.Unlock()
		e.clock.Advance(d)
		return ctx.Err()
	}
	e.sink = s
	return e
}

func person(id string) dsync.Identity {
	return dsync.Identity{ID: id, Username: "u" + id, Email: "user-" + id + "@example.org", FirstName: "Ann", LastName: "Lee " + id, Active: true}
}

func (e *env) apply(t *testing.T, op dsync.Op) dsync.Outcome {
	t.Helper()
	out, err := e.sink.Apply(t.Context(), op)
	if err != nil {
		t.Fatalf("%s: %v", op.Kind, err)
	}
	return out
}

func (e *env) create(t *testing.T, want dsync.Identity) (dsync.Outcome, domotest.User) {
	t.Helper()
	out := e.apply(t, dsync.Op{Kind: dsync.CreateUser, ID: want.ID, Want: want})
	return out, e.user(t, out.UserID)
}

func (e *env) user(t *testing.T, id string) domotest.User {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("user id %q: %v", id, err)
	}
	u, ok := e.srv.User(n)
	if !ok {
		t.Fatalf("no user %s on the server", id)
	}
	return u
}

// requests returns the server's log entries for endpoint.
func (e *env) requests(endpoint string) []domotest.Request {
	var rs []domotest.Request
	for _, r := range e.srv.Log() {
		if r.Endpoint == endpoint {
			rs = append(rs, r)
		}
	}
	return rs
}

func TestCreateSendsTheMappedFields(t *testing.T) {
	e := newEnv(t, domotest.Options{}, func(c *Config) {
		c.Roles = []RoleMapping{{Group: "domo-admins", Role: "Admin"}, {Group: "analysts", Role: "Privileged"}}
		c.Attributes = map[string]string{"job_title": "title", "emp": "employeeNumber", "tel": "phone"}
	})
	tests := []struct {
		name     string
		edit     func(*dsync.Identity)
		wantName string
		wantRole string
		wantEmp  string
		wantJSON string // employeeNumber as sent
	}{
		{"first and last names", func(id *dsync.Identity) {}, "Ann Lee C1", "Participant", "", ""},
		{"the display name wins", func(id *dsync.Identity) { id.DisplayName = "  Dr  Ann Lee " }, "Dr Ann Lee", "Participant", "", ""},
		// groups are sorted, so analysts comes first in the identity; the list decides.
		{"the first roles entry decides", func(id *dsync.Identity) { id.Groups = []string{"analysts", "domo-admins"} }, "Ann Lee C3", "Admin", "", ""},
		{"one mapped group", func(id *dsync.Identity) { id.Groups = []string{"analysts", "other"} }, "Ann Lee C4", "Privileged", "", ""},
		{"a number goes as a number", func(id *dsync.Identity) { id.Attributes = dsync.AttributesOf(map[string][]string{"emp": {"1234"}}) }, "Ann Lee C5", "Participant", "1234", "1234"},
		{"leading zeros go as a string", func(id *dsync.Identity) { id.Attributes = dsync.AttributesOf(map[string][]string{"emp": {"00123"}}) }, "Ann Lee C6", "Participant", "00123", `"00123"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := person(fmt.Sprintf("C%d", i+1))
			want.Attributes = dsync.AttributesOf(map[string][]string{"job_title": {"Lecturer"}, "tel": {"+44 1632 960000"}})
			tt.edit(&want)
			_, u := e.create(t, want)
			if u.Name != tt.wantName || u.Email != want.Email || u.Role != tt.wantRole || u.EmployeeNumber != tt.wantEmp || u.Invited {
				t.Errorf("got %q %q %q employeeNumber %q invited %v, want %q %q %q %q not invited",
					u.Name, u.Email, u.Role, u.EmployeeNumber, u.Invited, tt.wantName, want.Email, tt.wantRole, tt.wantEmp)
			}
			if want.Attributes.Get("job_title") != nil && (u.Title != "Lecturer" || u.Phone != "+44 1632 960000") {
				t.Errorf("got title %q phone %q, want the mapped attributes", u.Title, u.Phone)
			}
			creates := e.requests("user.create")
			last := creates[len(creates)-1]
			if !strings.HasSuffix(last.Path, "?sendInvite=false") {
				t.Errorf("got %s, want sendInvite=false", last.Path)
			}
			var body map[string]json.RawMessage
			_ = json.Unmarshal([]byte(last.Body), &body)
			if string(body["employeeNumber"]) != tt.wantJSON && tt.wantJSON != "" {
				t.Errorf("got employeeNumber %s, want %s", body["employeeNumber"], tt.wantJSON)
			}
		})
	}

	invite := newEnv(t, domotest.Options{}, func(c *Config) { c.SendInvite = true })
	if _, u := invite.create(t, person("I1")); !u.Invited {
		t.Error("send_invite: true: got no invitation")
	}
}

// PUT replaces the whole user (the contract server clears what is not sent), so an
// update must send back what idsync does not manage.
func TestUpdateKeepsWhatIdsyncDoesNotManage(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	want := person("M1")
	out, u := e.create(t, want)
	e.srv.Edit(u.ID, func(u *domotest.User) {
		u.Title, u.Phone, u.Department, u.EmployeeNumber = "Keeper", "555", "Ops", "42"
	})
	have := want
	want.Email = "moved-M1@example.org"
	e.apply(t, dsync.Op{Kind: dsync.UpdateUser, ID: "M1", Want: want, Have: &have, Fields: dsync.FieldEmail, UserID: out.UserID})
	got := e.user(t, out.UserID)
	if got.Email != want.Email || got.Title != "Keeper" || got.Phone != "555" || got.Department != "Ops" || got.EmployeeNumber != "42" || got.Role != "Participant" {
		t.Errorf("got %+v, want the new email and the title, phone, department, employee number and role kept", got)
	}
	puts := e.requests("user.update")
	if len(puts) != 1 {
		t.Fatalf("got %d PUTs, want 1", len(puts))
	}
	var body map[string]json.RawMessage
	_ = json.Unmarshal([]byte(puts[0].Body), &body)
	for _, k := range readOnly {
		if _, ok := body[k]; ok {
			t.Errorf("the PUT sent back the read-only %s: %s", k, puts[0].Body)
		}
	}
	if string(body["employeeNumber"]) != "42" {
		t.Errorf("got employeeNumber %s, want the number 42 sent back as it came", body["employeeNumber"])
	}
}

func TestUpdateSendsNothingWhenDomoAgrees(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	want := person("N1")
	out, _ := e.create(t, want)
	have := want
	want.DisplayName = "Ann Lee N1" // the name Domo has already
	e.apply(t, dsync.Op{Kind: dsync.UpdateUser, ID: "N1", Want: want, Have: &have, Fields: dsync.FieldDisplayName, UserID: out.UserID})
	if n, g := len(e.requests("user.update")), len(e.requests("user.get")); n != 0 || g != 1 {
		t.Errorf("got %d PUTs after %d GETs, want one GET and no PUT", n, g)
	}
}

func TestUpdateSetsAndClearsAttributes(t *testing.T) {
	e := newEnv(t, domotest.Options{}, func(c *Config) { c.Attributes = map[string]string{"job_title": "title", "emp": "employeeNumber"} })
	want := person("A1")
	want.Attributes = dsync.AttributesOf(map[string][]string{"job_title": {"Lecturer"}, "emp": {"7"}})
	out, _ := e.create(t, want)
	have := want
	want.Attributes = dsync.AttributesOf(map[string][]string{"job_title": {"Reader"}})
	e.apply(t, dsync.Op{Kind: dsync.UpdateUser, ID: "A1", Want: want, Have: &have, Fields: dsync.FieldAttributes, UserID: out.UserID})
	if u := e.user(t, out.UserID); u.Title != "Reader" || u.EmployeeNumber != "" {
		t.Errorf("got title %q employeeNumber %q, want Reader and none", u.Title, u.EmployeeNumber)
	}
}

func TestCreateAdoptsByEmailInAnyCase(t *testing.T) {
	tests := []struct {
		name     string
		roles    []RoleMapping
		wantRole string
	}{
		// Without roles, the role is not idsync's: an administrator stays one.
		{"role not managed", nil, "Admin"},
		{"role managed", []RoleMapping{{Group: "staff", Role: "Privileged"}}, "Privileged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, domotest.Options{}, func(c *Config) { c.Roles = tt.roles })
			old := e.srv.AddUser(domotest.User{Name: "Someone", Email: "USER-AD1@Example.ORG", Role: "Admin", Title: "Boss"})
			want := person("AD1")
			want.Groups = []string{"staff"}
			out, u := e.create(t, want)
			if !out.Adopted || out.UserID != strconv.FormatInt(old.ID, 10) {
				t.Fatalf("got %+v, want user %d adopted", out, old.ID)
			}
			if u.Name != "Ann Lee AD1" || u.Email != want.Email || u.Title != "Boss" || u.Role != tt.wantRole {
				t.Errorf("got %q %q title %q role %q, want the name and email set, the title kept and role %s", u.Name, u.Email, u.Title, u.Role, tt.wantRole)
			}
			if n := len(e.srv.Users()); n != 1 || len(e.requests("user.create")) != 0 {
				t.Errorf("got %d users after %d creates, want the one adopted and no create", n, len(e.requests("user.create")))
			}
		})
	}
}

// The index is read once per run, by one worker, however many create at once; and
// the token is fetched once.
func TestWorkersShareOneIndexAndOneToken(t *testing.T) {
	e := newEnv(t, domotest.Options{}, func(c *Config) { c.Concurrency = 16 })
	for i := range 1200 {
		e.srv.AddUser(domotest.User{Name: "Seed", Email: fmt.Sprintf("seed%d@example.org", i)})
	}
	e.srv.SetLatency(5 * time.Millisecond)
	var wg gosync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			want := person(fmt.Sprintf("W%d", i))
			if i%4 == 0 {
				want.Email = fmt.Sprintf("SEED%d@example.org", i) // adopts
			}
			if _, err := e.sink.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: want.ID, Want: want}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// 1200 users: pages at offsets 0, 500 and 1000, then an empty one.
	if n, tok := len(e.requests("user.list")), e.srv.TokenFetches(); n != 4 || tok != 1 {
		t.Errorf("got %d list requests and %d tokens, want 4 and 1", n, tok)
	}
	if n := len(e.srv.Users()); n != 1200+24 {
		t.Errorf("got %d users, want %d", n, 1200+24)
	}
}

func TestListPagesUntilEmpty(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	for i := range 500 {
		e.srv.AddUser(domotest.User{Name: "Seed", Email: fmt.Sprintf("seed%d@example.org", i)})
	}
	e.create(t, person("P1"))
	var paths []string
	for _, r := range e.requests("user.list") {
		paths = append(paths, r.Path)
	}
	want := []string{"/v1/users?limit=500&offset=0", "/v1/users?limit=500&offset=500"}
	if !slices.Equal(paths, want) {
		t.Errorf("got %q, want %q", paths, want)
	}
}

// Domo's answer to a duplicate is not documented: 400 with a message, or 409. Either
// reads the list again, once, and adopts the user made since the list was read.
func TestDuplicateReadsTheListAgainAndAdopts(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusConflict} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			e := newEnv(t, domotest.Options{DuplicateStatus: status}, nil)
			e.create(t, person("D1")) // reads the (empty) list
			late := e.srv.AddUser(domotest.User{Name: "Made by hand", Email: "user-D2@example.org"})
			out, _ := e.create(t, person("D2"))
			if !out.Adopted || out.UserID != strconv.FormatInt(late.ID, 10) {
				t.Errorf("got %+v, want user %d adopted", out, late.ID)
			}
			creates := e.requests("user.create")
			if len(creates) != 2 || creates[1].Status != status {
				t.Errorf("got creates %+v, want the second refused %d", creates, status)
			}
			// The empty list, then the two users and an empty page.
			if n := len(e.requests("user.list")); n != 3 {
				t.Errorf("got %d list requests, want 3", n)
			}
			if n := len(e.srv.Users()); n != 2 {
				t.Errorf("got %d users, want 2", n)
			}
		})
	}
}

// A create whose answer is lost (Domo made the user, a proxy answered 502) finds the
// user in the list and adopts it; one that Domo certainly did not carry out is tried
// again.
func TestUncertainCreateLooksBeforeTryingAgain(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	e.create(t, person("L0")) // the token and the index
	e.srv.LoseNext(1)
	out, _ := e.create(t, person("L1"))
	if !out.Adopted || len(e.srv.Users()) != 2 {
		t.Errorf("got %+v and %d users, want the lost create adopted and no second user", out, len(e.srv.Users()))
	}
	e.srv.FailNext(1, http.StatusBadGateway)
	out, _ = e.create(t, person("L2"))
	if out.Adopted || len(e.srv.Users()) != 3 || len(e.requests("user.create")) != 4 {
		t.Errorf("got %+v, %d users after %d creates; want L2 created on the second try", out, len(e.srv.Users()), len(e.requests("user.create")))
	}
}

func TestTwoUsersWithTheEmailIsConflict(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	e.srv.AddUser(domotest.User{Name: "One", Email: "user-T1@example.org"})
	e.srv.AddUser(domotest.User{Name: "Two", Email: "USER-T1@example.org"})
	_, err := e.sink.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: "T1", Want: person("T1")})
	if !errors.Is(err, dsync.ErrConflict) || len(e.requests("user.create")) != 0 {
		t.Errorf("got %v, want ErrConflict and no create", err)
	}
}

func TestUpdateToATakenEmailIsConflict(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	e.srv.AddUser(domotest.User{Name: "Other", Email: "taken@example.org"})
	want := person("E1")
	out, _ := e.create(t, want)
	have := want
	want.Email = "Taken@example.org"
	_, err := e.sink.Apply(t.Context(), dsync.Op{Kind: dsync.UpdateUser, ID: "E1", Want: want, Have: &have, Fields: dsync.FieldEmail, UserID: out.UserID})
	if !errors.Is(err, dsync.ErrConflict) || !strings.HasPrefix(err.Error(), "domo: update_user E1: ") {
		t.Errorf("got %v, want ErrConflict named for the sink, op and identity", err)
	}
	if u := e.user(t, out.UserID); u.Email != have.Email {
		t.Errorf("got email %q, want it unchanged", u.Email)
	}
}

// A deleted user answers GET with "deleted": true, not 404: every operation on it is
// not found, but a delete, which is done.
func TestDeletedUserIsNotFound(t *testing.T) {
	e := newEnv(t, domotest.Options{CustomRoles: map[int64]string{9: "Off"}}, func(c *Config) { c.DisableAction, c.DisabledRole = "role", "9" })
	want := person("G1")
	out, u := e.create(t, want)
	e.srv.Remove(u.Email)
	have := want
	want.Email = "moved-G1@example.org"
	for _, op := range []dsync.Op{
		{Kind: dsync.UpdateUser, Want: want, Have: &have, Fields: dsync.FieldEmail},
		{Kind: dsync.DisableUser, Want: have},
		{Kind: dsync.EnableUser, Want: have},
	} {
		op.ID, op.UserID = "G1", out.UserID
		if _, err := e.sink.Apply(t.Context(), op); !errors.Is(err, dsync.ErrNotFound) {
			t.Errorf("%s: got %v, want ErrNotFound", op.Kind, err)
		}
	}
	if _, err := e.sink.ReadUser(t.Context(), dsync.Entry{ID: "G1", UserID: out.UserID, User: &have}); !errors.Is(err, dsync.ErrNotFound) {
		t.Errorf("read: got %v, want ErrNotFound", err)
	}
	for _, r := range e.requests("user.get") {
		if r.Status != http.StatusOK {
			t.Errorf("got GET %d, want the deleted user answered 200", r.Status)
		}
	}
	if n := len(e.requests("user.update")); n != 0 {
		t.Errorf("got %d PUTs, want none", n)
	}
	e.apply(t, dsync.Op{Kind: dsync.DeleteUser, ID: "G1", Want: have, UserID: out.UserID})
}

func TestUnknownIDIsNotFound(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	want := person("U1")
	for _, id := range []string{"987654", "abc", ""} {
		_, err := e.sink.Apply(t.Context(), dsync.Op{Kind: dsync.UpdateUser, ID: "U1", Want: want, Have: &want, Fields: dsync.FieldEmail, UserID: id})
		if !errors.Is(err, dsync.ErrNotFound) {
			t.Errorf("user id %q: got %v, want ErrNotFound", id, err)
		}
	}
	if gets := e.requests("user.get"); len(gets) != 1 || gets[0].Status != http.StatusNotFound {
		t.Errorf("got %+v, want one GET answered 404 (the other ids are not Domo's)", gets)
	}
}

func TestDisableActions(t *testing.T) {
	tests := []struct {
		name                  string
		edit                  func(*Config)
		disabledRole          string // the role after disable
		wantLog               string
		disableReqs, enReqs   int
		enabledRole, initRole string
	}{
		{"none", nil, "Participant", `level=WARN msg="domo has no disable: the account keeps its access`, 0, 0, "Participant", "Participant"},
		{"delete", func(c *Config) { c.DisableAction = "delete" }, "Participant", `level=INFO msg="domo has no disable: the account stays, with its access, until delete_after`, 0, 0, "Participant", "Participant"},
		{"role, custom", func(c *Config) {
			c.DisableAction, c.DisabledRole = "role", "9"
			c.Roles = []RoleMapping{{Group: "staff", Role: "Admin"}}
		}, "Off", "", 2, 2, "Admin", "Admin"},
		{"role, standard", func(c *Config) { c.DisableAction, c.DisabledRole, c.Role = "role", "Participant", "Privileged" }, "Participant", "", 2, 2, "Privileged", "Privileged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, domotest.Options{CustomRoles: map[int64]string{9: "Off"}}, tt.edit)
			want := person("X1")
			want.Groups = []string{"staff"}
			out, u := e.create(t, want)
			if u.Role != tt.initRole {
				t.Fatalf("got role %q, want %q", u.Role, tt.initRole)
			}
			e.srv.Edit(u.ID, func(u *domotest.User) { u.Title = "Kept" })
			want.Active = false
			before := e.srv.Total()
			e.apply(t, dsync.Op{Kind: dsync.DisableUser, ID: "X1", Want: want, UserID: out.UserID})
			if n := e.srv.Total() - before; n != tt.disableReqs {
				t.Errorf("disable made %d requests, want %d", n, tt.disableReqs)
			}
			if u := e.user(t, out.UserID); u.Role != tt.disabledRole || u.Title != "Kept" || u.Deleted {
				t.Errorf("after disable: got role %q title %q deleted %v, want %q and the title kept", u.Role, u.Title, u.Deleted, tt.disabledRole)
			}
			if !strings.Contains(e.logs.String(), tt.wantLog) {
				t.Errorf("got log %s, want %s", e.logs, tt.wantLog)
			}
			// Again: nothing more to change.
			before = e.srv.Total()
			e.apply(t, dsync.Op{Kind: dsync.DisableUser, ID: "X1", Want: want, UserID: out.UserID})
			if n := len(e.requests("user.update")); e.srv.Total()-before > 1 || n > 1 {
				t.Errorf("a second disable made %d requests, %d PUTs in all; want at most a GET", e.srv.Total()-before, n)
			}
			want.Active = true
			before = e.srv.Total()
			e.apply(t, dsync.Op{Kind: dsync.EnableUser, ID: "X1", Want: want, UserID: out.UserID})
			if u := e.user(t, out.UserID); u.Role != tt.enabledRole || e.srv.Total()-before != tt.enReqs {
				t.Errorf("after enable: got role %q after %d requests, want %q after %d", u.Role, e.srv.Total()-before, tt.enabledRole, tt.enReqs)
			}
			e.apply(t, dsync.Op{Kind: dsync.DeleteUser, ID: "X1", Want: want, UserID: out.UserID})
			if u := e.user(t, out.UserID); !u.Deleted {
				t.Error("the user is not deleted")
			}
		})
	}
}

// An update of an inactive person's groups must not give back the access the disabled
// role took away.
func TestUpdateOfADisabledPersonKeepsTheDisabledRole(t *testing.T) {
	e := newEnv(t, domotest.Options{CustomRoles: map[int64]string{9: "Off"}}, func(c *Config) {
		c.DisableAction, c.DisabledRole = "role", "9"
		c.Roles = []RoleMapping{{Group: "staff", Role: "Admin"}, {Group: "ops", Role: "Privileged"}}
	})
	want := person("R1")
	want.Groups = []string{"staff"}
	out, _ := e.create(t, want)
	want.Active = false
	e.apply(t, dsync.Op{Kind: dsync.DisableUser, ID: "R1", Want: want, UserID: out.UserID})
	have := want
	want.Groups = []string{"ops"}
	e.apply(t, dsync.Op{Kind: dsync.UpdateUser, ID: "R1", Want: want, Have: &have, Fields: dsync.FieldGroups, UserID: out.UserID})
	if u := e.user(t, out.UserID); u.RoleID != 9 {
		t.Errorf("got role %q, want the disabled role kept", u.Role)
	}
	want.Active = true
	e.apply(t, dsync.Op{Kind: dsync.EnableUser, ID: "R1", Want: want, UserID: out.UserID})
	if u := e.user(t, out.UserID); u.Role != "Privileged" {
		t.Errorf("got role %q, want Privileged, the role of the new group", u.Role)
	}
}

func TestTokenIsRenewedBeforeItExpires(t *testing.T) {
	e := newEnv(t, domotest.Options{TokenTTL: time.Hour}, nil)
	want := person("K1")
	out, _ := e.create(t, want)
	entry := dsync.Entry{ID: "K1", UserID: out.UserID, User: &want}
	read := func() {
		t.Helper()
		if _, err := e.sink.ReadUser(t.Context(), entry); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(58 * time.Minute)
	read()
	if n := e.srv.TokenFetches(); n != 1 {
		t.Errorf("got %d tokens at 58 minutes, want 1", n)
	}
	e.clock.Advance(90 * time.Second) // 30 s before the token expires
	read()
	if n, refused := e.srv.TokenFetches(), e.srv.Unauthorized(); n != 2 || refused != 0 {
		t.Errorf("got %d tokens and %d refusals, want a new token before the old one was refused", n, refused)
	}
}

func TestTokenIsRenewedOnceOnA401(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	want := person("K2")
	out, _ := e.create(t, want)
	entry := dsync.Entry{ID: "K2", UserID: out.UserID, User: &want}
	e.srv.RevokeTokens()
	if _, err := e.sink.ReadUser(t.Context(), entry); err != nil {
		t.Fatalf("after a revoked token: %v", err)
	}
	if n, refused := e.srv.TokenFetches(), e.srv.Unauthorized(); n != 2 || refused != 1 {
		t.Errorf("got %d tokens and %d refusals, want 2 and 1", n, refused)
	}
	e.srv.SetTokensRefused(true)
	_, err := e.sink.Apply(t.Context(), dsync.Op{Kind: dsync.UpdateUser, ID: "K2", Want: want, Have: &want, Fields: dsync.FieldEmail, UserID: out.UserID})
	if !errors.Is(err, dsync.ErrStopSink) {
		t.Errorf("got %v, want ErrStopSink", err)
	}
	if n, refused := e.srv.TokenFetches(), e.srv.Unauthorized(); n != 3 || refused != 3 {
		t.Errorf("got %d tokens and %d refusals, want one more token and two more refusals", n, refused)
	}
}

func TestRefusedCredentialsStopTheSink(t *testing.T) {
	const wrong = "not-the-secret-5ecr3t"
	e := newEnv(t, domotest.Options{}, func(c *Config) { c.ClientSecret = wrong })
	_, err := e.sink.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: "S1", Want: person("S1")})
	if !errors.Is(err, dsync.ErrStopSink) || strings.Contains(err.Error(), wrong) || strings.Contains(e.logs.String(), wrong) {
		t.Errorf("got %v, want ErrStopSink without the secret", err)
	}
	toks := e.requests("token")
	if len(toks) != 1 || toks[0].Method != http.MethodPost || toks[0].Path != "/oauth/token?grant_type=client_credentials&scope=user" {
		t.Errorf("got token requests %+v, want one POST with the grant and scope", toks)
	}
	if n := e.srv.Total(); n != 1 {
		t.Errorf("got %d requests, want only the token's", n)
	}
}

// The client's rate limit is 40 a second by default, and a 429 waits what
// Retry-After says.
func TestRateLimit(t *testing.T) {
	s, err := New(Config{ClientID: "id", ClientSecret: "secret"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.api.Limit.Limit(); got != 40 || s.api.Base != "https://api.domo.com" {
		t.Errorf("got a default rate limit of %v at %s, want 40 at https://api.domo.com", got, s.api.Base)
	}
	e := newEnv(t, domotest.Options{RateBudget: 5, RateWindow: 10 * time.Second}, nil)
	for i := range 6 {
		e.create(t, person(fmt.Sprintf("Q%d", i)))
	}
	if n := len(e.srv.Users()); n != 6 || e.srv.RateLimited() == 0 {
		t.Fatalf("got %d users after %d 429s, want 6 after some", n, e.srv.RateLimited())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, w := range e.waits {
		if w <= 0 || w > 10*time.Second || w%time.Second != 0 {
			t.Errorf("got a wait of %v, want what Retry-After said: whole seconds up to 10", w)
		}
	}
}

func TestReadUserReportsDrift(t *testing.T) {
	e := newEnv(t, domotest.Options{CustomRoles: map[int64]string{9: "Off"}}, func(c *Config) {
		c.DisableAction, c.DisabledRole = "role", "9"
		c.Roles = []RoleMapping{{Group: "staff", Role: "Admin"}}
		c.Attributes = map[string]string{"job_title": "title"}
	})
	want := person("V1")
	want.Groups = []string{"staff"}
	want.Attributes = dsync.AttributesOf(map[string][]string{"job_title": {"Lecturer"}})
	out, u := e.create(t, want)
	entry := dsync.Entry{ID: "V1", UserID: out.UserID, User: &want}
	schema := e.sink.Schema()
	read := func() dsync.Identity {
		t.Helper()
		got, err := e.sink.ReadUser(t.Context(), entry)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(); dsync.Changed(&want, &got, schema.User) != 0 || !got.Active {
		t.Errorf("got %+v, want no drift", got)
	}
	e.srv.Edit(u.ID, func(u *domotest.User) {
		u.Name, u.Email, u.Role, u.RoleID, u.Title = "Someone Else", "USER-V1@example.org", "Privileged", 2, "Dean"
	})
	got := read()
	if c := dsync.Changed(&want, &got, schema.User); c != dsync.FieldDisplayName|dsync.FieldGroups|dsync.FieldAttributes {
		t.Errorf("got drift in %s (%+v), want display_name, groups and attributes; an email in another case is none", c, got)
	}
	if !slices.Contains(got.Groups, "domo-role:Privileged") || got.Attributes.Get("job_title")[0] != "Dean" || want.Attributes.Get("job_title")[0] != "Lecturer" {
		t.Errorf("got groups %v attributes %v, want the role and title read, and the entry's left alone", got.Groups, got.Attributes)
	}
	e.srv.Edit(u.ID, func(u *domotest.User) { u.Role, u.RoleID = "Off", 9 })
	if got := read(); got.Active {
		t.Error("got active, want inactive: the user has the disabled role")
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	tests := []struct {
		id   dsync.Identity
		want int
	}{
		{person("C1"), 0},
		{dsync.Identity{ID: "C2", Email: "a@example.org", DisplayName: "Ann"}, 0},
		{dsync.Identity{ID: "C3", Email: "a@example.org", LastName: "Lee"}, 0},
		{dsync.Identity{ID: "C4", Email: "a@example.org", DisplayName: "  "}, 1},
		{dsync.Identity{ID: "C5", FirstName: "Ann"}, 1},
	}
	for _, tt := range tests {
		if got := e.sink.Check(&tt.id); len(got) != tt.want {
			t.Errorf("%s: got %q, want %d problems", tt.id.ID, got, tt.want)
		}
	}
}

// Domo may answer a create 201 and a PUT without a body.
func TestOtherAnswers(t *testing.T) {
	e := newEnv(t, domotest.Options{CreateStatus: http.StatusCreated, EmptyPutBody: true}, nil)
	want := person("O1")
	out, _ := e.create(t, want)
	have := want
	want.Email = "moved-O1@example.org"
	e.apply(t, dsync.Op{Kind: dsync.UpdateUser, ID: "O1", Want: want, Have: &have, Fields: dsync.FieldEmail, UserID: out.UserID})
	if u := e.user(t, out.UserID); u.Email != want.Email {
		t.Errorf("got %q, want %q", u.Email, want.Email)
	}
}

func TestAPIErrorIs(t *testing.T) {
	tests := []struct {
		endpoint string
		status   int
		body     string
		want     error
		not      error
	}{
		{"user.create", 409, `{}`, dsync.ErrExists, dsync.ErrStopSink},
		{"user.create", 400, `{"status":400,"message":"A user with the email address a@b.c already exists"}`, dsync.ErrExists, nil},
		{"user.create", 400, `{"status":400,"message":"name is required"}`, nil, dsync.ErrExists},
		{"user.get", 404, `{"status":404}`, dsync.ErrNotFound, dsync.ErrStopSink},
		{"user.get", 401, `{"status":401}`, dsync.ErrStopSink, nil},
		{"user.get", 403, `nope`, dsync.ErrStopSink, nil},
		{tokenEndpoint, 400, `{"error":"invalid_scope","error_description":"Invalid scope: user"}`, dsync.ErrStopSink, dsync.ErrNotFound},
		{tokenEndpoint, 404, ``, dsync.ErrStopSink, dsync.ErrNotFound},
		{"user.get", 500, `{}`, nil, dsync.ErrStopSink},
	}
	for _, tt := range tests {
		err := apiError(tt.endpoint, tt.status, nil, []byte(tt.body))
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s %d %s: got %v, want %v", tt.endpoint, tt.status, tt.body, err, tt.want)
		}
		if tt.not != nil && errors.Is(err, tt.not) {
			t.Errorf("%s %d %s: got %v, which is %v", tt.endpoint, tt.status, tt.body, err, tt.not)
		}
	}
	err := apiError("user.create", 400, nil, []byte(`{"status":400,"statusReason":"Bad Request","message":"role is required","path":"/v1/users","toe":"T0E"}`))
	if got := err.Error(); got != "user.create: HTTP 400 Bad Request: role is required (toe T0E)" {
		t.Errorf("got %q", got)
	}
}

func TestTokenLife(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := renewAt(now, time.Hour); got != now.Add(59*time.Minute) {
		t.Errorf("got %v, want a minute before expiry", got)
	}
	if got := renewAt(now, 100*time.Second); got != now.Add(90*time.Second) {
		t.Errorf("got %v, want a tenth of the life before expiry", got)
	}
	payload := `{"exp":` + strconv.FormatInt(now.Add(30*time.Minute).Unix(), 10) + `}`
	tok := "eyJhbGciOiJIUzI1NiJ9." + base64URL(payload) + ".sig"
	if got := jwtLife(tok, now); got != 30*time.Minute {
		t.Errorf("got %v, want 30m from exp", got)
	}
	for _, bad := range []string{"opaque", "a.b", "a.!!!.c", "a." + base64URL(`{}`) + ".c"} {
		if got := jwtLife(bad, now); got != 0 {
			t.Errorf("%q: got %v, want 0", bad, got)
		}
	}
}

func base64URL(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestProfilesAreUnsupported(t *testing.T) {
	e := newEnv(t, domotest.Options{}, nil)
	if s := e.sink.Schema(); s.Profile != 0 || !s.Delete || s.User.Has(dsync.FieldGroups|dsync.FieldAttributes|dsync.FieldUsername) {
		t.Errorf("got schema %+v, want no profiles, deletes, and neither groups nor attributes without roles and attributes", s)
	}
	_, err := e.sink.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "P1", Want: person("P1")})
	if !errors.Is(err, dsync.ErrUnsupported) || e.srv.Total() != 0 {
		t.Errorf("got %v after %d requests, want ErrUnsupported and none", err, e.srv.Total())
	}
}
