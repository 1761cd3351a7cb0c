package descopetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) code() string { s, _ := a.body["errorCode"].(string); return s }

func (a answer) user() map[string]any { u, _ := a.body["user"].(map[string]any); return u }

func send(t *testing.T, s *Server, auth, method, path, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

// call sends with the right credentials.
func call(t *testing.T, s *Server, method, path, body string) answer {
	t.Helper()
	return send(t, s, "Bearer "+s.ProjectID()+":"+s.ManagementKey(), method, path, body)
}

func want(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status || a.code() != code {
		t.Fatalf("got %d %q (%s), want %d %q", a.status, a.code(), a.raw, status, code)
	}
}

func create(t *testing.T, s *Server, body string) string {
	t.Helper()
	a := call(t, s, "POST", "/v1/mgmt/user/create", body)
	want(t, a, 200, "")
	return a.user()["userId"].(string)
}

func TestAuthorization(t *testing.T) {
	s := Start(t, Options{ProjectID: "P1", ManagementKey: "K1"})
	for _, auth := range []string{"", "Bearer K1", "Bearer P1", "Bearer P1:K1x", "bearer P1:K1", "Bearer P1:K2", "Basic P1:K1", "Bearer  P1:K1"} {
		a := send(t, s, auth, "GET", "/v1/mgmt/user?loginId=x&userId=", "")
		if a.status != 401 || a.code() == "" || a.body["errorDescription"] == nil || a.body["errorMessage"] == nil {
			t.Errorf("%q: got %d %s, want 401 with a Descope error body", auth, a.status, a.raw)
		}
	}
	want(t, send(t, s, "Bearer P1:K1", "GET", "/v1/mgmt/user?loginId=x&userId=", ""), 404, CodeUserNotFound)
	if n := s.Requests()["user.load"]; n != 9 {
		t.Errorf("got %d counted, want 9: refused requests count", n)
	}
}

func TestLoadResolvesLoginIDOrUserID(t *testing.T) {
	s := Start(t, Options{})
	id := create(t, s, `{"loginId":"Ann@Example.org","email":"ann@example.org","additionalLoginIds":["ann"]}`)
	for _, q := range []string{"loginId=Ann@Example.org&userId=", "loginId=ann@example.org&userId=", "loginId=ann&userId=",
		"loginId=" + id + "&userId=", "loginId=&userId=" + id, "userId=" + id} {
		a := call(t, s, "GET", "/v1/mgmt/user?"+q, "")
		want(t, a, 200, "")
		if a.user()["userId"] != id || !slices.Equal(toStrings(a.user()["loginIds"]), []string{"Ann@Example.org", "ann"}) {
			t.Errorf("%s: got %s", q, a.raw)
		}
	}
	want(t, call(t, s, "GET", "/v1/mgmt/user?loginId=&userId=", ""), 400, CodeMissingArgs)
	want(t, call(t, s, "GET", "/v1/mgmt/user?loginId=nobody&userId=", ""), 404, CodeUserNotFound)
	a := call(t, s, "POST", "/v1/mgmt/users/load", fmt.Sprintf(`{"userIds":[%q,"U2nope"]}`, id))
	if users, _ := a.body["users"].([]any); len(users) != 1 || a.body["total"] != float64(1) {
		t.Errorf("users/load: got %s", a.raw)
	}
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// Every endpoint that names a user answers 404 E112102 for an unknown one, and
// changes nothing.
func TestUnknownUser(t *testing.T) {
	s := Start(t, Options{})
	create(t, s, `{"loginId":"a"}`)
	tests := []struct{ method, path, body string }{
		{"PATCH", "/v1/mgmt/user/patch", `{"loginId":"nobody","name":"x"}`},
		{"POST", "/v1/mgmt/user/update", `{"loginId":"nobody","email":"x@example.org"}`},
		{"POST", "/v1/mgmt/user/update/status", `{"loginId":"nobody","status":"disabled"}`},
		{"POST", "/v1/mgmt/user/update/loginid", `{"loginId":"nobody","newLoginId":"b"}`},
		{"POST", "/v1/mgmt/user/update/email", `{"loginId":"nobody","email":"x@example.org"}`},
		{"POST", "/v1/mgmt/user/update/name", `{"loginId":"nobody","displayName":"x"}`},
		{"POST", "/v1/mgmt/user/update/customAttribute", `{"loginId":"nobody","attributeKey":"k","attributeValue":"v"}`},
		{"POST", "/v2/mgmt/user/update/role/add", `{"loginId":"nobody","tenantId":"","roleNames":["r"]}`},
		{"POST", "/v1/mgmt/user/update/role/remove", `{"loginId":"nobody","tenantId":"","roleNames":["r"]}`},
		{"POST", "/v1/mgmt/user/update/tenant/add", `{"loginId":"nobody","tenantId":"T"}`},
		{"POST", "/v1/mgmt/user/delete", `{"loginId":"nobody","userId":""}`},
		{"POST", "/v1/mgmt/user/delete", `{"loginId":"","userId":"U2nobody"}`},
	}
	for _, tt := range tests {
		want(t, call(t, s, tt.method, tt.path, tt.body), 404, CodeUserNotFound)
	}
	if n := len(s.Users()); n != 1 {
		t.Errorf("got %d users", n)
	}
}

func TestUniqueLoginIDs(t *testing.T) {
	s := Start(t, Options{})
	a := create(t, s, `{"loginId":"a@example.org","additionalLoginIds":["a"]}`)
	b := create(t, s, `{"loginId":"b"}`)
	want(t, call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"A@EXAMPLE.ORG"}`), 409, CodeUserExists)
	want(t, call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"c","additionalIdentifiers":["A"]}`), 409, CodeUserExists)
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/loginid", `{"loginId":"b","newLoginId":"a"}`), 409, CodeUserExists)
	want(t, call(t, s, "PATCH", "/v1/mgmt/user/patch", `{"loginId":"b","additionalLoginIds":["a@example.org"]}`), 409, CodeUserExists)
	want(t, call(t, s, "POST", "/v1/mgmt/user/update", `{"loginId":"b","additionalLoginIds":["a"]}`), 409, CodeUserExists)
	if u, _ := s.User(b); !slices.Equal(u.LoginIDs, []string{"b"}) {
		t.Errorf("a refused change changed %v", u.LoginIDs)
	}
	// By userId, the primary loginId is replaced; by loginId, that one.
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/loginid", fmt.Sprintf(`{"loginId":%q,"newLoginId":"new@example.org"}`, a)), 200, "")
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/loginid", `{"loginId":"a","newLoginId":"a2"}`), 200, "")
	if u, _ := s.User(a); !slices.Equal(u.LoginIDs, []string{"new@example.org", "a2"}) {
		t.Errorf("got %v", u.LoginIDs)
	}
	if _, ok := s.User("a@example.org"); ok {
		t.Error("the old loginId still resolves")
	}
	want(t, call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"a@example.org"}`), 200, "")
	want(t, call(t, s, "POST", "/v1/mgmt/user/create", `{"email":"x@example.org"}`), 400, CodeMissingArgs)
}

func TestConcurrentCreatesOfOneLoginID(t *testing.T) {
	s := Start(t, Options{})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		oks  int
		errs []string
	)
	for range 30 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", s.URL+"/v1/mgmt/user/create", strings.NewReader(`{"loginId":"same"}`))
			req.Header.Set("Authorization", "Bearer "+s.ProjectID()+":"+s.ManagementKey())
			resp, err := http.DefaultClient.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				oks++
			}
		})
	}
	wg.Wait()
	if oks != 1 || len(errs) > 0 || len(s.Users()) != 1 {
		t.Errorf("got %d successes, %d users, errors %v; want 1, 1, none", oks, len(s.Users()), errs)
	}
}

// Update overwrites: what it is not sent is cleared. Patch changes only what it is
// sent; a customAttributes it is sent replaces the map.
func TestUpdateAndPatch(t *testing.T) {
	s := Start(t, Options{})
	id := create(t, s, `{"loginId":"a","email":"a@example.org","phone":"+1555","displayName":"Ann","givenName":"A",
		"roleNames":["r"],"userTenants":[{"tenantId":"T","roleNames":["t"]}],"customAttributes":{"k":"v","n":2},
		"picture":"p","ssoAppIds":["app"],"verifiedEmail":true}`)
	u, _ := s.User(id)
	if u.Name != "Ann" || u.Phone != "+1555" || !slices.Equal(u.SSOAppIDs, []string{"app"}) || !u.VerifiedEmail || u.Status != "enabled" {
		t.Fatalf("after create: %+v", u)
	}
	want(t, call(t, s, "PATCH", "/v1/mgmt/user/patch", `{"loginId":"a","name":"Anna","customAttributes":{"k":"w"},"phone":null}`), 200, "")
	u, _ = s.User(id)
	if u.Name != "Anna" || u.Phone != "+1555" || u.GivenName != "A" || len(u.RoleNames) != 1 || len(u.Tenants) != 1 ||
		len(u.CustomAttributes) != 1 || u.CustomAttributes["k"] != "w" || u.Picture != "p" {
		t.Errorf("after patch: %+v", u)
	}
	a := call(t, s, "POST", "/v1/mgmt/user/update", `{"loginId":"a","email":"b@example.org","displayName":"B"}`)
	want(t, a, 200, "")
	u, _ = s.User(id)
	if u.Email != "b@example.org" || u.Name != "B" || u.Phone != "" || u.GivenName != "" || u.RoleNames != nil ||
		u.Tenants != nil || u.CustomAttributes != nil || u.Picture != "" || u.SSOAppIDs != nil || u.VerifiedEmail ||
		!slices.Equal(u.LoginIDs, []string{"a"}) || u.Status != "enabled" {
		t.Errorf("after update: %+v", u)
	}
	if a.user()["name"] != "B" {
		t.Errorf("the answer: %s", a.raw)
	}
}

func TestSpellings(t *testing.T) {
	s := Start(t, Options{})
	a := create(t, s, `{"loginId":"a","name":"Docs","additionalIdentifiers":["a2"],"ssoAppIds":["x"]}`)
	b := create(t, s, `{"loginId":"b","displayName":"SDK","additionalLoginIds":["b2"],"ssoAppIDs":["y"]}`)
	ua, _ := s.User(a)
	ub, _ := s.User(b)
	if ua.Name != "Docs" || !slices.Equal(ua.LoginIDs, []string{"a", "a2"}) || !slices.Equal(ua.SSOAppIDs, []string{"x"}) ||
		ub.Name != "SDK" || !slices.Equal(ub.LoginIDs, []string{"b", "b2"}) || !slices.Equal(ub.SSOAppIDs, []string{"y"}) {
		t.Errorf("got %+v and %+v", ua, ub)
	}
	want(t, call(t, s, "PATCH", "/v1/mgmt/user/patch", `{"loginId":"b","displayName":"SDK2"}`), 200, "")
	if u, _ := s.User(b); u.Name != "SDK2" {
		t.Errorf("got %q", u.Name)
	}
}

func TestSearch(t *testing.T) {
	s := Start(t, Options{})
	for i := range 5 {
		create(t, s, fmt.Sprintf(`{"loginId":"u%d","email":"u%d@example.org","customAttributes":{"team":"t%d"}}`, i, i, i%2))
	}
	call(t, s, "POST", "/v1/mgmt/user/update/status", `{"loginId":"u4","status":"disabled"}`)
	for _, path := range []string{"/v1/mgmt/user/search", "/v2/mgmt/user/search"} {
		a := call(t, s, "POST", path, `{"emails":["U1@example.org","u3@example.org"]}`)
		if users, _ := a.body["users"].([]any); len(users) != 2 || a.body["total"] != float64(2) {
			t.Errorf("%s: got %s", path, a.raw)
		}
	}
	a := call(t, s, "POST", "/v2/mgmt/user/search", `{"limit":2,"page":1}`)
	users, _ := a.body["users"].([]any)
	if len(users) != 2 || a.body["total"] != float64(5) || users[0].(map[string]any)["loginIds"].([]any)[0] != "u2" {
		t.Errorf("page 1: got %s", a.raw)
	}
	a = call(t, s, "POST", "/v2/mgmt/user/search", `{"customAttributes":{"team":"t0"},"statuses":["enabled"]}`)
	if a.body["total"] != float64(2) { // u0 and u2; u4 is disabled
		t.Errorf("filters: got %s", a.raw)
	}
	if s.Requests()["user.search"] != 4 {
		t.Errorf("got %d searches", s.Requests()["user.search"])
	}
}

func TestBatch(t *testing.T) {
	s := Start(t, Options{})
	create(t, s, `{"loginId":"taken"}`)
	a := call(t, s, "POST", "/v1/mgmt/user/create/batch", `{"users":[{"loginId":"n1"},{"loginId":"taken"},{"loginId":"n2","email":"bad"},{"loginId":"N1"},{"loginId":"n3"}],"invite":true}`)
	want(t, a, 200, "")
	created, _ := a.body["createdUsers"].([]any)
	failed, _ := a.body["failedUsers"].([]any)
	if len(created) != 2 || len(failed) != 3 {
		t.Fatalf("got %s", a.raw)
	}
	f := failed[0].(map[string]any)
	if f["failure"] == "" || toStrings(f["user"].(map[string]any)["loginIds"])[0] != "taken" {
		t.Errorf("failed user: %v", f)
	}
	if u, _ := s.User("n1"); u.Status != "invited" {
		t.Errorf("got status %q, want invited", u.Status)
	}
	if len(s.Users()) != 3 {
		t.Errorf("got %d users", len(s.Users()))
	}

	all := Start(t, Options{BatchAllOrNothing: true})
	create(t, all, `{"loginId":"taken"}`)
	want(t, call(t, all, "POST", "/v1/mgmt/user/create/batch", `{"users":[{"loginId":"n1"},{"loginId":"taken"}]}`), 409, CodeUserExists)
	if len(all.Users()) != 1 {
		t.Errorf("an all-or-nothing batch made %d users", len(all.Users()))
	}
}

func TestStatusRolesTenants(t *testing.T) {
	s := Start(t, Options{Roles: []string{"a", "b"}, Tenants: []string{"T1"}})
	id := create(t, s, `{"loginId":"x","roleNames":["a"]}`)
	for _, st := range []string{"disabled", "invited", "enabled"} {
		want(t, call(t, s, "POST", "/v1/mgmt/user/update/status", `{"loginId":"x","status":"`+st+`"}`), 200, "")
		if u, _ := s.User(id); u.Status != st {
			t.Errorf("got %q, want %q", u.Status, st)
		}
	}
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/status", `{"loginId":"x","status":"expired"}`), 400, CodeValidation)
	want(t, call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"y","roleNames":["nope"]}`), 400, CodeValidation)
	want(t, call(t, s, "POST", "/v2/mgmt/user/update/role/add", `{"loginId":"x","tenantId":"T1","roleNames":["b"]}`), 400, CodeValidation)
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/tenant/add", `{"loginId":"x","tenantId":"T2"}`), 400, CodeValidation)
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/tenant/add", `{"loginId":"x","tenantId":"T1"}`), 200, "")
	want(t, call(t, s, "POST", "/v2/mgmt/user/update/role/add", `{"loginId":"x","tenantId":"T1","roleNames":["b"]}`), 200, "")
	want(t, call(t, s, "POST", "/v2/mgmt/user/update/role/add", `{"loginId":"x","tenantId":"","roleNames":["b","a"]}`), 200, "")
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/role/remove", `{"loginId":"x","tenantId":"","roleNames":["a"]}`), 200, "")
	u, _ := s.User(id)
	if !slices.Equal(u.RoleNames, []string{"b"}) || len(u.Tenants) != 1 || !slices.Equal(u.Tenants[0].RoleNames, []string{"b"}) {
		t.Errorf("got %+v", u)
	}
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/tenant/remove", `{"loginId":"x","tenantId":"T1"}`), 200, "")
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/tenant/remove", `{"loginId":"x","tenantId":"T1"}`), 400, CodeValidation)
	want(t, call(t, s, "POST", "/v1/mgmt/user/update/role/add", `{"loginId":"x","tenantId":"","roleNames":["a"]}`), 404, CodeBadRequest)
}

func TestRateLimits(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := Start(t, Options{UserLimit: 4, CreateLimit: 2, Now: clock})
	create(t, s, `{"loginId":"a"}`)
	create(t, s, `{"loginId":"b"}`)
	a := call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"c"}`)
	want(t, a, 429, CodeRateLimited)
	if a.header.Get("Retry-After") != "60" {
		t.Errorf("got Retry-After %q, want 60", a.header.Get("Retry-After"))
	}
	if _, ok := s.User("c"); ok {
		t.Error("a throttled create made a user")
	}
	// Other requests have their own, larger budget.
	want(t, call(t, s, "GET", "/v1/mgmt/user?loginId=a&userId=", ""), 200, "")
	want(t, call(t, s, "GET", "/v1/mgmt/user?loginId=a&userId=", ""), 200, "")
	advance(45 * time.Second)
	a = call(t, s, "GET", "/v1/mgmt/user?loginId=a&userId=", "")
	want(t, a, 429, CodeRateLimited)
	if a.header.Get("Retry-After") != "15" {
		t.Errorf("got Retry-After %q, want 15", a.header.Get("Retry-After"))
	}
	advance(15 * time.Second)
	create(t, s, `{"loginId":"c"}`)
}

func TestFaults(t *testing.T) {
	s := Start(t, Options{})
	s.FailNext(2, 503)
	want(t, call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"a"}`), 503, "")
	a := call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"a"}`)
	if a.status != 503 || len(s.Users()) != 0 {
		t.Fatalf("got %d and %d users, want 503 and none: a fault comes before any effect", a.status, len(s.Users()))
	}
	s.FailNext(1, 429)
	a = call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"a"}`)
	want(t, a, 429, CodeRateLimited)
	if a.header.Get("Retry-After") != "0" {
		t.Errorf("got Retry-After %q", a.header.Get("Retry-After"))
	}
	// After: the request takes effect, then fails; only on the endpoint named.
	s.Fail(Fault{Endpoint: "user.create", N: 1, Status: 502, After: true})
	want(t, call(t, s, "GET", "/v1/mgmt/user?loginId=x&userId=", ""), 404, CodeUserNotFound)
	want(t, call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"b"}`), 502, "")
	if _, ok := s.User("b"); !ok {
		t.Error("a fault after the effect undid it")
	}
	want(t, call(t, s, "POST", "/v1/mgmt/user/create", `{"loginId":"c"}`), 200, "")
}

func TestLatencyNoticesCancellation(t *testing.T) {
	s := NewServer(Options{Latency: 3 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/v1/mgmt/user/create", strings.NewReader(`{"loginId":"a"}`))
	req.Header.Set("Authorization", "Bearer "+s.ProjectID()+":"+s.ManagementKey())
	start := time.Now()
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
	// Close waits for the handlers: the abandoned one ended without waiting out its
	// latency, and made nothing.
	s.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("the server held the abandoned request for %v", d)
	}
	if len(s.Users()) != 0 || s.Total() != 1 {
		t.Errorf("got %d users after %d requests, want none after 1", len(s.Users()), s.Total())
	}
}

func TestSeedEditRemove(t *testing.T) {
	s := Start(t, Options{})
	u := s.AddUser(User{LoginIDs: []string{"a"}, Email: "a@example.org", CustomAttributes: map[string]any{"k": []any{"x"}}})
	if u.UserID == "" || u.Status != "enabled" {
		t.Fatalf("got %+v", u)
	}
	got, _ := s.User("a")
	got.CustomAttributes["k"].([]any)[0] = "mutated"
	if again, _ := s.User("a"); again.CustomAttributes["k"].([]any)[0] != "x" {
		t.Error("User returned shared values")
	}
	s.Edit("a", func(u *User) { u.LoginIDs = []string{"b"}; u.UserID = "changed" })
	if _, ok := s.User("a"); ok {
		t.Error("the old loginId still resolves after Edit")
	}
	if got, ok := s.User("b"); !ok || got.UserID != u.UserID {
		t.Errorf("got %+v %v", got, ok)
	}
	if !s.Remove(u.UserID) || s.Remove(u.UserID) || len(s.Users()) != 0 {
		t.Error("Remove")
	}
	want(t, call(t, s, "POST", "/v1/mgmt/user/delete", `{"loginId":"b","userId":""}`), 404, CodeUserNotFound)
}
