package descope

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/idsync/idsync/sinks/descope/descopetest"
	dsync "github.com/idsync/idsync/sync"
)

func TestAuthorizationIsExact(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, nil)
	mustCreate(t, s, person("A1")) // the server takes only the exact bearer string

	wrong := newSink(t, srv, func(c *Config) { c.ManagementKey = "not-the-key" })
	_, err := wrong.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: "A2", Want: person("A2")})
	if !errors.Is(err, dsync.ErrStopSink) {
		t.Fatalf("got %v, want ErrStopSink", err)
	}
	if strings.Contains(err.Error(), "not-the-key") {
		t.Errorf("the error shows the key: %v", err)
	}
	if _, ok := srv.User(person("A2").Email); ok {
		t.Error("a refused key made a user")
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Code == "" {
		t.Errorf("got %#v, want a 401 with Descope's error code", ae)
	}
}

// The sink changes only what an update names, with patch: never the full-overwrite
// update, which would clear the phone, the picture and the custom attributes it does
// not manage.
func TestUpdatePatchesOnlyChangedFields(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { c.CustomAttributes = map[string]string{"department": "dept"} })
	p := person("U1")
	p.Attributes = dsync.AttributesOf(map[string][]string{"department": {"Eng"}})
	id := mustCreate(t, s, p)
	srv.Edit(id, func(u *descopetest.User) {
		u.Phone, u.Picture = "+15550100", "https://example.org/p.png"
		u.CustomAttributes["plan"] = "gold"
		u.RoleNames = []string{"Billing"}
	})
	before := len(srv.Calls())

	want := p
	want.FirstName, want.DisplayName = "Anna", "Anna Lee"
	want.Attributes = dsync.AttributesOf(map[string][]string{"department": {"Ops"}})
	if _, err := update(t, s, id, p, want); err != nil {
		t.Fatal(err)
	}
	calls := srv.Calls()[before:]
	var patches []map[string]any
	for _, c := range calls {
		if c.Endpoint == "user.update" {
			t.Fatalf("the sink called the full-overwrite update: %s", c.Body)
		}
		if c.Endpoint == "user.patch" {
			var m map[string]any
			if err := json.Unmarshal(c.Body, &m); err != nil {
				t.Fatal(err)
			}
			patches = append(patches, m)
		}
	}
	wantPatch := []map[string]any{{"loginId": id, "givenName": "Anna", "name": "Anna Lee"}}
	if diff := cmp.Diff(wantPatch, patches); diff != "" {
		t.Errorf("patches (-want +got):\n%s", diff)
	}
	u, _ := srv.User(id)
	if u.GivenName != "Anna" || u.Name != "Anna Lee" || u.FamilyName != p.LastName || u.Email != p.Email {
		t.Errorf("got %+v", u)
	}
	if u.Phone != "+15550100" || u.Picture != "https://example.org/p.png" || !slices.Equal(u.RoleNames, []string{"Billing"}) {
		t.Errorf("the update lost fields it does not manage: %+v", u)
	}
	if diff := cmp.Diff(map[string]any{"dept": "Ops", "plan": "gold"}, u.CustomAttributes); diff != "" {
		t.Errorf("custom attributes (-want +got):\n%s", diff)
	}

	// An update of no field sends nothing.
	before = len(srv.Calls())
	mustApply(t, s, dsync.Op{Kind: dsync.UpdateUser, ID: "U1", Want: want, Have: &want, UserID: id})
	if n := len(srv.Calls()) - before; n != 0 {
		t.Errorf("a no-op update made %d requests", n)
	}
}

// The contract server's update really clears what it is not sent: the test above
// would not see a sink that called it otherwise.
func TestServerUpdateClears(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	u := srv.AddUser(descopetest.User{LoginIDs: []string{"a@example.org"}, Email: "a@example.org", Phone: "+1555"})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/mgmt/user/update", strings.NewReader(`{"loginId":"a@example.org","email":"b@example.org"}`))
	req.Header.Set("Authorization", "Bearer "+srv.ProjectID()+":"+srv.ManagementKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("update: %v %v", resp, err)
	}
	resp.Body.Close()
	got, _ := srv.User(u.UserID)
	if got.Phone != "" || got.Email != "b@example.org" {
		t.Errorf("got %+v, want the phone cleared", got)
	}
}

// With login_id: email, a new email changes the loginId too; the user keeps its
// userId, by which idsync knows it.
func TestLoginIDFollowsItsField(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, nil)
	p := person("L1")
	id := mustCreate(t, s, p)
	want := p
	want.Email = "new-L1@example.org"
	out, err := update(t, s, id, p, want)
	if err != nil {
		t.Fatal(err)
	}
	if out.UserID != "" && out.UserID != id {
		t.Errorf("got userId %q, want %q kept", out.UserID, id)
	}
	u, ok := srv.User(id)
	if !ok || !slices.Equal(u.LoginIDs, []string{want.Email}) || u.Email != want.Email {
		t.Errorf("got %+v, want loginId and email %s", u, want.Email)
	}
	if _, ok := srv.User(p.Email); ok {
		t.Error("the old loginId still finds a user")
	}
	if n := srv.Requests()["user.loginid"]; n != 1 {
		t.Errorf("got %d loginId updates, want 1", n)
	}

	// A username change does not touch the loginId when it is the email.
	want2 := want
	want2.Username = "renamed"
	before := srv.Total()
	if _, err := update(t, s, id, want, want2); err != nil {
		t.Fatal(err)
	}
	if n := srv.Total() - before; n != 0 {
		t.Errorf("a username change made %d requests with login_id email", n)
	}

	// A loginId another user holds is a conflict, and changes nothing.
	other := srv.AddUser(descopetest.User{LoginIDs: []string{"taken@example.org"}, Email: "taken@example.org"})
	want3 := want
	want3.Email = "taken@example.org"
	_, err = update(t, s, id, want, want3)
	if !errors.Is(err, dsync.ErrConflict) || !strings.Contains(err.Error(), other.UserID) {
		t.Fatalf("got %v, want ErrConflict naming %s", err, other.UserID)
	}
	if u, _ := srv.User(id); u.Email != want.Email || !slices.Equal(u.LoginIDs, []string{want.Email}) {
		t.Errorf("a refused change changed the user: %+v", u)
	}
}

func TestLoginIDUsername(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { c.LoginID = "username" })
	if !s.Schema().User.Has(dsync.FieldUsername) {
		t.Fatal("the schema lacks the username")
	}
	p := person("L2")
	id := mustCreate(t, s, p)
	want := p
	want.Username = "renamed-L2"
	if _, err := update(t, s, id, p, want); err != nil {
		t.Fatal(err)
	}
	if u, _ := srv.User(id); !slices.Equal(u.LoginIDs, []string{"renamed-L2"}) || u.Email != p.Email {
		t.Errorf("got %+v", u)
	}
	if got := s.Check(&dsync.Identity{ID: "x", Email: "x@example.org"}); len(got) != 1 {
		t.Errorf("Check of an identity without a username: got %v, want one problem", got)
	}
}

// An update or enable of a user deleted in Descope makes it again at once and returns
// the new userId; a disable says ErrNotFound and makes nothing.
func TestDeletedBehindTheSinksBack(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, nil)
	p := person("D1")
	id := mustCreate(t, s, p)
	srv.Remove(id)
	want := p
	want.LastName = "Other"
	out, err := update(t, s, id, p, want)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := srv.User(p.Email)
	if !ok || out.UserID != u.UserID || out.UserID == id || u.FamilyName != "Other" || u.Status != "enabled" {
		t.Fatalf("got outcome %+v and user %+v (exists %v), want the user made again with its new id", out, u, ok)
	}

	srv.Remove(out.UserID)
	out2, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.EnableUser, ID: "D1", Want: want, UserID: out.UserID})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := srv.User(p.Email); !ok || out2.UserID != u.UserID || u.Status != "enabled" {
		t.Fatalf("enable of a deleted user: got %+v, user %+v", out2, u)
	}

	srv.Remove(out2.UserID)
	want.Active = false
	_, err = s.Apply(t.Context(), dsync.Op{Kind: dsync.DisableUser, ID: "D1", Want: want, UserID: out2.UserID})
	if !errors.Is(err, dsync.ErrNotFound) {
		t.Fatalf("disable of a deleted user: got %v, want ErrNotFound", err)
	}
	if n := len(srv.Users()); n != 0 {
		t.Errorf("a disable made %d users", n)
	}
	// Delete of a user that is gone already is done.
	mustApply(t, s, dsync.Op{Kind: dsync.DeleteUser, ID: "D1", Want: want, UserID: out2.UserID})
	if n := srv.Requests()["user.delete"]; n != 1 {
		t.Errorf("got %d delete requests, want 1", n)
	}
}

// A 404 without E112102 (here a URL with a path the API does not have) is not a
// missing user: the engine must not forget accounts over a misconfiguration.
func TestOther404IsNotNotFound(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { c.URL = srv.URL + "/wrong" })
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.DisableUser, ID: "X", Want: person("X"), UserID: "U2x"})
	if err == nil || errors.Is(err, dsync.ErrNotFound) {
		t.Fatalf("got %v, want an error that is not ErrNotFound", err)
	}
}

// A create that meets an existing user with the loginId adopts it and brings it to
// the wanted state; its phone and unmanaged roles stay.
func TestCreateAdopts(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) {
		c.Roles = map[string]string{"staff": "Staff", "admins": "Admin"}
		c.CustomAttributes = map[string]string{"department": "dept"}
	})
	p := person("C1")
	p.Groups = []string{"staff"}
	p.Attributes = dsync.AttributesOf(map[string][]string{"department": {"Eng"}})
	old := srv.AddUser(descopetest.User{LoginIDs: []string{p.Email}, Email: p.Email, GivenName: "Old", Phone: "+1555",
		RoleNames: []string{"Admin", "Billing"}, Status: "disabled", CustomAttributes: map[string]any{"plan": "gold"}})
	out := mustApply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
	if !out.Adopted || out.UserID != old.UserID {
		t.Fatalf("got %+v, want user %s adopted", out, old.UserID)
	}
	if n := len(srv.Users()); n != 1 {
		t.Fatalf("got %d users, want 1", n)
	}
	u, _ := srv.User(old.UserID)
	slices.Sort(u.RoleNames)
	if u.GivenName != "Ann" || u.FamilyName != p.LastName || u.Name != p.DisplayName || u.Status != "enabled" ||
		u.Phone != "+1555" || !slices.Equal(u.RoleNames, []string{"Billing", "Staff"}) {
		t.Errorf("got %+v", u)
	}
	if diff := cmp.Diff(map[string]any{"dept": "Eng", "plan": "gold"}, u.CustomAttributes); diff != "" {
		t.Errorf("custom attributes (-want +got):\n%s", diff)
	}
}

// With id_attribute, a user that carries another identity's id is not adopted.
func TestCreateRefusesAnotherIdentitysUser(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { c.IDAttribute = "idsyncId" })
	p := person("C2")
	srv.AddUser(descopetest.User{LoginIDs: []string{p.Email}, Email: p.Email, CustomAttributes: map[string]any{"idsyncId": "someone-else"}})
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
	if !errors.Is(err, dsync.ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	// One it made itself is taken back, not adopted.
	q := person("C3")
	id := mustCreate(t, s, q)
	out := mustApply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: q.ID, Want: q})
	if out.UserID != id || out.Adopted {
		t.Errorf("got %+v, want %s, not adopted", out, id)
	}
}

// Descope's answer to a taken loginId on create is not documented: the sink adopts
// whether it is 409 E062107 (the contract server) or 400 E011003.
func TestCreateTakenLoginAnyAnswer(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, r)
		if rec.Code == http.StatusConflict {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"errorCode":"E011003","errorDescription":"Request validation failed","errorMessage":"loginId is taken"}`))
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(proxy.Close)
	s := newSink(t, srv, func(c *Config) { c.URL = proxy.URL })
	p := person("C4")
	old := srv.AddUser(descopetest.User{LoginIDs: []string{p.Email}, Email: p.Email})
	out := mustApply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
	if out.UserID != old.UserID || !out.Adopted {
		t.Errorf("got %+v, want %s adopted", out, old.UserID)
	}
}

// A create refused for a reason other than the loginId is reported; an email that
// belongs to another user (where emails are unique) is a conflict.
func TestCreateRefused(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{UniqueEmails: true})
	s := newSink(t, srv, func(c *Config) { c.LoginID = "username"; f := false; c.BatchCreate = &f })
	p := person("C5")
	other := srv.AddUser(descopetest.User{LoginIDs: []string{"someone"}, Email: p.Email})
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
	if !errors.Is(err, dsync.ErrConflict) || !strings.Contains(err.Error(), other.UserID) {
		t.Fatalf("got %v, want ErrConflict naming %s", err, other.UserID)
	}
	q := person("C6")
	q.Email = "not-an-email"
	_, err = s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: q.ID, Want: q})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != descopetest.CodeValidation || errors.Is(err, dsync.ErrConflict) {
		t.Fatalf("got %v, want the validation failure", err)
	}
	if n := len(srv.Users()); n != 1 {
		t.Errorf("got %d users, want 1", n)
	}
}

// Roles and tenants follow the mapped groups, with the role and tenant endpoints:
// the roles and tenants the configuration does not name are kept.
func TestRolesAndTenants(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{Roles: []string{"Staff", "Admin", "Billing", "dev", "lead"},
		Tenants: []string{"T1", "T2", "T9"}})
	s := newSink(t, srv, func(c *Config) {
		c.Roles = map[string]string{"staff": "Staff", "admins": "Admin"}
		c.Tenants = map[string]Tenant{"eng": {TenantID: "T1", Roles: []string{"dev"}}, "leads": {TenantID: "T1", Roles: []string{"lead"}},
			"ops": {TenantID: "T2"}}
	})
	p := person("R1")
	p.Groups = []string{"eng", "leads", "other", "staff"}
	id := mustCreate(t, s, p)
	u, _ := srv.User(id)
	wantTenants := []descopetest.Tenant{{TenantID: "T1", RoleNames: []string{"dev", "lead"}}}
	if !slices.Equal(u.RoleNames, []string{"Staff"}) || !cmp.Equal(u.Tenants, wantTenants) {
		t.Fatalf("after create: got roles %v tenants %v", u.RoleNames, u.Tenants)
	}
	srv.Edit(id, func(u *descopetest.User) {
		u.RoleNames = append(u.RoleNames, "Billing")
		u.Tenants = append(u.Tenants, descopetest.Tenant{TenantID: "T9", RoleNames: []string{"dev"}})
	})
	before := len(srv.Calls())
	want := p
	want.Groups = []string{"admins", "eng", "ops"}
	if _, err := update(t, s, id, p, want); err != nil {
		t.Fatal(err)
	}
	u, _ = srv.User(id)
	slices.Sort(u.RoleNames)
	wantTenants = []descopetest.Tenant{{TenantID: "T1", RoleNames: []string{"dev"}}, {TenantID: "T9", RoleNames: []string{"dev"}}, {TenantID: "T2"}}
	if !slices.Equal(u.RoleNames, []string{"Admin", "Billing"}) || !cmp.Equal(u.Tenants, wantTenants, cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })) {
		t.Errorf("after update: got roles %v tenants %+v", u.RoleNames, u.Tenants)
	}
	for _, c := range srv.Calls()[before:] {
		if c.Endpoint == "user.patch" || c.Endpoint == "user.update" || c.Endpoint == "user.role.set" {
			t.Errorf("groups were changed with %s: %s", c.Endpoint, c.Body)
		}
	}
	// Groups that map to nothing change nothing, without a request.
	before = srv.Total()
	want2 := want
	want2.Groups = []string{"admins", "eng", "ops", "unmapped"}
	if _, err := update(t, s, id, want, want2); err != nil {
		t.Fatal(err)
	}
	if n := srv.Total() - before; n != 0 {
		t.Errorf("an unmapped group change made %d requests", n)
	}
}

func TestCustomAttributeCleared(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) {
		c.CustomAttributes = map[string]string{"department": "dept", "site": "sites"}
	})
	p := person("A3")
	p.Attributes = dsync.AttributesOf(map[string][]string{"department": {"Eng"}, "site": {"Paris", "Oslo"}, "ignored": {"x"}})
	id := mustCreate(t, s, p)
	u, _ := srv.User(id)
	if diff := cmp.Diff(map[string]any{"dept": "Eng", "sites": []any{"Paris", "Oslo"}}, u.CustomAttributes); diff != "" {
		t.Fatalf("after create (-want +got):\n%s", diff)
	}
	srv.Edit(id, func(u *descopetest.User) { u.CustomAttributes["plan"] = "gold" })
	want := p
	want.Attributes = dsync.AttributesOf(map[string][]string{"site": {"Paris", "Oslo"}})
	if _, err := update(t, s, id, p, want); err != nil {
		t.Fatal(err)
	}
	u, _ = srv.User(id)
	if diff := cmp.Diff(map[string]any{"sites": []any{"Paris", "Oslo"}, "plan": "gold"}, u.CustomAttributes); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
	if n := srv.Requests()["user.attribute"]; n != 1 {
		t.Errorf("got %d attribute requests, want 1 (only dept changed)", n)
	}
}

// ReadUser reports what was changed by hand, in the terms idsync applied.
func TestReadUser(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) {
		c.Roles = map[string]string{"staff": "Staff", "admins": "Admin"}
		c.CustomAttributes = map[string]string{"department": "dept"}
	})
	p := person("V1")
	p.Groups = []string{"staff"}
	p.Attributes = dsync.AttributesOf(map[string][]string{"department": {"Eng"}})
	id := mustCreate(t, s, p)
	applied := dsync.Project(p, s.Schema().User)
	e := dsync.Entry{ID: p.ID, UserID: id, User: &applied}

	got, err := s.ReadUser(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if c := dsync.Changed(&applied, &got, s.Schema().User); c != 0 || !got.Active {
		t.Errorf("an untouched user drifted: %v, active %v", c, got.Active)
	}
	srv.Edit(id, func(u *descopetest.User) {
		u.GivenName, u.Status = "Hand", "disabled"
		u.Email = strings.ToUpper(u.Email) // case only: no drift
		u.RoleNames = []string{"Admin"}
		u.CustomAttributes["dept"] = "Ops"
	})
	got, err = s.ReadUser(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	want := applied
	want.FirstName, want.Active = "Hand", false
	want.Groups = []string{"admins"}
	want.Attributes = dsync.AttributesOf(map[string][]string{"department": {"Ops"}})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
	// The update the drift plans sets the roles back.
	p2 := p
	p2.Active = false
	if _, err := update(t, s, id, got, p2); err != nil {
		t.Fatal(err)
	}
	if u, _ := srv.User(id); !slices.Equal(u.RoleNames, []string{"Staff"}) || u.CustomAttributes["dept"] != "Eng" || u.GivenName != "Ann" {
		t.Errorf("after the repair: %+v", u)
	}

	srv.Remove(id)
	if _, err := s.ReadUser(t.Context(), e); !errors.Is(err, dsync.ErrNotFound) {
		t.Errorf("read of a deleted user: got %v, want ErrNotFound", err)
	}
}

// A 307 is a success, as Descope's SDK takes it.
func TestTemporaryRedirectIsSuccess(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/mgmt/user/update/status" {
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	s := newSink(t, srv, func(c *Config) { c.URL = proxy.URL })
	p := person("T1")
	id := mustCreate(t, s, p)
	p.Active = false
	mustApply(t, s, dsync.Op{Kind: dsync.DisableUser, ID: p.ID, Want: p, UserID: id})
}

func TestAPIError(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		want     string
		notFound bool
		stop     bool
		exists   bool
	}{
		{"not found", 404, `{"errorCode":"E112102","errorDescription":"User not found","errorMessage":"no such user"}`,
			"user.x: HTTP 404 E112102: User not found: no such user", true, false, false},
		{"other 404", 404, `<html>not here</html>`, "user.x: HTTP 404: <html>not here</html>", false, false, false},
		{"message key", 400, `{"errorCode":"E011002","message":"missing loginId"}`, "user.x: HTTP 400 E011002: missing loginId", false, false, false},
		{"exists", 409, `{"errorCode":"E062107","errorDescription":"User already exists"}`, "user.x: HTTP 409 E062107: User already exists", false, false, true},
		{"throttled", 429, `{"errorCode":"E130429"}`, "user.x: HTTP 429 E130429", false, true, false},
		{"refused", 403, `{}`, "user.x: HTTP 403", false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := apiError("user.x", tt.status, nil, []byte(tt.body))
			if err.Error() != tt.want {
				t.Errorf("got %q, want %q", err, tt.want)
			}
			if errors.Is(err, dsync.ErrNotFound) != tt.notFound || errors.Is(err, dsync.ErrStopSink) != tt.stop || errors.Is(err, dsync.ErrExists) != tt.exists {
				t.Errorf("not found %v, stop %v, exists %v: want %v %v %v", errors.Is(err, dsync.ErrNotFound),
					errors.Is(err, dsync.ErrStopSink), errors.Is(err, dsync.ErrExists), tt.notFound, tt.stop, tt.exists)
			}
		})
	}
	if err := apiError("user.x", 307, nil, nil); err != nil {
		t.Errorf("307: got %v, want success", err)
	}
}
