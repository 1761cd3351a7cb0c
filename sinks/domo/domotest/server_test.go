package domotest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	gosync "sync"
	"testing"
	"time"
)

// fakeClock is the server's clock in these tests.
type fakeClock struct {
	mu gosync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type answer struct {
	status int
	header http.Header
	raw    string
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.raw), &m); err != nil {
		t.Fatalf("got %q: %v", a.raw, err)
	}
	return m
}

// wantError checks a Domo error body.
func (a answer) wantError(t *testing.T, status int, message string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("got %d %s, want %d", a.status, a.raw, status)
	}
	m := a.json(t)
	if m["status"] != float64(status) || m["statusReason"] != http.StatusText(status) || m["path"] == "" || m["toe"] == "" ||
		!strings.Contains(m["message"].(string), message) {
		t.Errorf("got %s, want Domo's error body with a message containing %q", a.raw, message)
	}
}

func send(t *testing.T, s *Server, method, path string, header map[string]string, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// getToken fetches a token the way the Python SDK does.
func getToken(t *testing.T, s *Server) string {
	t.Helper()
	a := send(t, s, http.MethodGet, "/oauth/token?grant_type=client_credentials&scope=user", basic(s.ClientID(), s.ClientSecret()), "")
	if a.status != http.StatusOK {
		t.Fatalf("token: %d %s", a.status, a.raw)
	}
	return a.json(t)["access_token"].(string)
}

func basic(id, secret string) map[string]string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(id, secret)
	return map[string]string{"Authorization": req.Header.Get("Authorization")}
}

// api sends an authenticated /v1 request.
func api(t *testing.T, s *Server, tok, method, path, body string) answer {
	t.Helper()
	return send(t, s, method, path, map[string]string{"Authorization": "bearer " + tok, "Accept": "application/json"}, body)
}

func start(t *testing.T, opt Options) (*Server, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	opt.Now = c.now
	return Start(t, opt), c
}

func TestTokenEndpoint(t *testing.T) {
	s, _ := start(t, Options{TokenTTL: 10 * time.Minute})
	id, secret := s.ClientID(), s.ClientSecret()
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	withForm := func(h map[string]string) map[string]string {
		for k, v := range form {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name, method, path string
		header             map[string]string
		body               string
		status             int
		message            string
	}{
		{"GET with the query", "GET", "/oauth/token?grant_type=client_credentials&scope=user", basic(id, secret), "", 200, ""},
		{"POST with the query", "POST", "/oauth/token?grant_type=client_credentials&scope=user", basic(id, secret), "", 200, ""},
		{"POST with a form", "POST", "/oauth/token", withForm(basic(id, secret)), "grant_type=client_credentials&scope=data+user", 200, ""},
		{"no scope is every scope", "GET", "/oauth/token?grant_type=client_credentials", basic(id, secret), "", 200, ""},
		{"wrong secret", "GET", "/oauth/token?grant_type=client_credentials&scope=user", basic(id, "nope"), "", 401, "Bad credentials"},
		{"wrong client", "GET", "/oauth/token?grant_type=client_credentials&scope=user", basic("other", secret), "", 401, "Bad credentials"},
		{"no credentials", "GET", "/oauth/token?grant_type=client_credentials&scope=user", nil, "", 401, "Bad credentials"},
		{"scope without user", "GET", "/oauth/token?grant_type=client_credentials&scope=data", basic(id, secret), "", 401, "scope user"},
		{"scope not granted", "GET", "/oauth/token?grant_type=client_credentials&scope=user+workflow", basic(id, secret), "", 401, "Invalid scope: workflow"},
		{"scope in capitals", "GET", "/oauth/token?grant_type=client_credentials&scope=USER", basic(id, secret), "", 401, "Invalid scope"},
		{"wrong grant", "GET", "/oauth/token?grant_type=password&scope=user", basic(id, secret), "", 400, "Unsupported grant type"},
		{"PUT", "PUT", "/oauth/token?grant_type=client_credentials&scope=user", basic(id, secret), "", 405, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, s, tt.method, tt.path, tt.header, tt.body)
			if tt.status != 200 {
				a.wantError(t, tt.status, tt.message)
				return
			}
			m := a.json(t)
			tok, _ := m["access_token"].(string)
			if a.status != 200 || m["token_type"] != "bearer" || m["expires_in"] != float64(600) || strings.Count(tok, ".") != 2 {
				t.Errorf("got %d %s, want a bearer JWT for 600 s", a.status, a.raw)
			}
		})
	}
	if n := s.TokenFetches(); n != 4 {
		t.Errorf("got %d tokens issued, want 4", n)
	}
}

func TestBearerTokens(t *testing.T) {
	s, clock := start(t, Options{TokenTTL: time.Hour})
	tok := getToken(t, s)
	if a := send(t, s, "GET", "/v1/users", map[string]string{"Authorization": "Bearer " + tok}, ""); a.status != 200 {
		t.Errorf("Bearer in capitals: got %d", a.status)
	}
	send(t, s, "GET", "/v1/users", nil, "").wantError(t, 401, "Full authentication is required")
	send(t, s, "GET", "/v1/users", map[string]string{"Authorization": "bearer made-up"}, "").wantError(t, 401, "Invalid access token")
	send(t, s, "GET", "/v1/users", map[string]string{"Authorization": "Basic " + tok}, "").wantError(t, 401, "Full authentication")
	api(t, s, tok, "GET", "/v1/users", "") // still good
	a := send(t, s, "GET", "/v1/users", map[string]string{"Authorization": "bearer " + tok, "Accept": "text/html"}, "")
	a.wantError(t, 406, "acceptable")

	clock.advance(time.Hour)
	api(t, s, tok, "GET", "/v1/users", "").wantError(t, 401, "Invalid access token")
	tok = getToken(t, s)
	s.RevokeTokens()
	api(t, s, tok, "GET", "/v1/users", "").wantError(t, 401, "Invalid access token")
	s.SetTokensRefused(true)
	api(t, s, getToken(t, s), "GET", "/v1/users", "").wantError(t, 401, "Invalid access token")
	if n := s.Unauthorized(); n != 6 {
		t.Errorf("got %d refusals counted, want 6", n)
	}
}

func TestCreateRules(t *testing.T) {
	s, _ := start(t, Options{CustomRoles: map[int64]string{9: "Off"}})
	tok := getToken(t, s)
	gone := s.AddUser(User{Name: "Gone", Email: "gone@example.org"})
	s.Remove("GONE@example.org")
	tests := []struct {
		name, query, body string
		status            int
		message           string
	}{
		{"no name", "", `{"email":"a@example.org","role":"Participant"}`, 400, "name is required"},
		{"blank name", "", `{"name":" ","email":"a@example.org","role":"Participant"}`, 400, "name is required"},
		{"no email", "", `{"name":"Ann","role":"Participant"}`, 400, "email is required"},
		{"bad email", "", `{"name":"Ann","email":"ann","role":"Participant"}`, 400, "Invalid email"},
		{"no role", "", `{"name":"Ann","email":"a@example.org"}`, 400, "role is required"},
		{"role in another case", "", `{"name":"Ann","email":"a@example.org","role":"admin"}`, 400, "Invalid role"},
		{"custom role by name", "", `{"name":"Ann","email":"a@example.org","role":"Off"}`, 400, "Invalid role"},
		{"unknown roleId", "", `{"name":"Ann","email":"a@example.org","roleId":5}`, 400, "Invalid roleId: 5"},
		{"role and roleId disagree", "", `{"name":"Ann","email":"a@example.org","role":"Admin","roleId":9}`, 400, "does not match"},
		{"name not a string", "", `{"name":1,"email":"a@example.org","role":"Admin"}`, 400, "name must be a string"},
		{"not an object", "", `[]`, 400, "a user object"},
		{"bad sendInvite", "?sendInvite=yes", `{"name":"Ann","email":"a@example.org","role":"Admin"}`, 400, "sendInvite"},
		{"created", "?sendInvite=false", `{"name":"Ann","email":"Ann@example.org","role":"Admin","title":"Boss","employeeNumber":"0042"}`, 200, ""},
		{"duplicate in another case", "?sendInvite=false", `{"name":"Bo","email":"ann@EXAMPLE.org","role":"Admin"}`, 400, "already exists"},
		{"custom role by id", "?sendInvite=true", `{"name":"Cy","email":"cy@example.org","roleId":9,"employeeNumber":17}`, 200, ""},
		{"a deleted user's email", "", `{"name":"New","email":"gone@example.org","role":"Participant"}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := api(t, s, tok, "POST", "/v1/users"+tt.query, tt.body)
			if tt.status != 200 {
				a.wantError(t, tt.status, tt.message)
				return
			}
			if a.status != 200 || a.json(t)["id"] == nil {
				t.Errorf("got %d %s", a.status, a.raw)
			}
		})
	}
	users := s.Users()
	if len(users) != 3 {
		t.Fatalf("got %d users, want 3: refused creates make nothing", len(users))
	}
	ann, cy := users[0], users[1]
	if ann.Role != "Admin" || ann.RoleID != 1 || ann.Title != "Boss" || ann.EmployeeNumber != "0042" || ann.Invited {
		t.Errorf("got %+v", ann)
	}
	if cy.Role != "Off" || cy.RoleID != 9 || cy.EmployeeNumber != "17" || !cy.Invited {
		t.Errorf("got %+v", cy)
	}
	if g, _ := s.User(gone.ID); !g.Deleted {
		t.Errorf("got %+v, want the old user still deleted", g)
	}
	// employeeNumber comes back a number when it is one, a string otherwise.
	a := api(t, s, tok, "GET", fmt.Sprintf("/v1/users/%d", cy.ID), "")
	if m := a.json(t); m["employeeNumber"] != float64(17) || m["role"] != "Off" || m["roleId"] != float64(9) {
		t.Errorf("got %s", a.raw)
	}
	a = api(t, s, tok, "GET", fmt.Sprintf("/v1/users/%d", ann.ID), "")
	if m := a.json(t); m["employeeNumber"] != "0042" {
		t.Errorf("got %s", a.raw)
	}
}

func TestDuplicateAndCreateStatus(t *testing.T) {
	s, _ := start(t, Options{DuplicateStatus: 409, CreateStatus: 201})
	tok := getToken(t, s)
	body := `{"name":"Ann","email":"a@example.org","role":"Admin"}`
	if a := api(t, s, tok, "POST", "/v1/users/", body); a.status != 201 {
		t.Errorf("got %d, want 201", a.status)
	}
	api(t, s, tok, "POST", "/v1/users", body).wantError(t, 409, "already exists")
}

func TestList(t *testing.T) {
	s, _ := start(t, Options{})
	tok := getToken(t, s)
	for i := range 60 {
		s.AddUser(User{Name: "U", Email: fmt.Sprintf("u%02d@example.org", i)})
	}
	s.Remove("u00@example.org")
	list := func(path string) []map[string]any {
		t.Helper()
		a := api(t, s, tok, "GET", path, "")
		var page []map[string]any
		if err := json.Unmarshal([]byte(a.raw), &page); err != nil || a.status != 200 {
			t.Fatalf("%s: got %d %s, want a bare array", path, a.status, a.raw)
		}
		return page
	}
	if page := list("/v1/users"); len(page) != 50 || page[0]["email"] != "u01@example.org" {
		t.Errorf("got %d users from %v, want 50 from u01 (u00 is deleted)", len(page), page[0]["email"])
	}
	if page := list("/v1/users/?limit=500&offset=50"); len(page) != 9 || page[8]["email"] != "u59@example.org" {
		t.Errorf("got %d users, want the last 9", len(page))
	}
	if page := list("/v1/users?limit=500&offset=59"); len(page) != 0 {
		t.Errorf("got %d users past the end, want none", len(page))
	}
	api(t, s, tok, "GET", "/v1/users?limit=501", "").wantError(t, 400, "between 1 and 500")
	api(t, s, tok, "GET", "/v1/users?limit=0", "").wantError(t, 400, "between 1 and 500")
	api(t, s, tok, "GET", "/v1/users?offset=-1", "").wantError(t, 400, "Invalid offset")
}

func TestPutReplacesAndDeleteKeepsAnswering(t *testing.T) {
	s, _ := start(t, Options{})
	tok := getToken(t, s)
	u := s.AddUser(User{Name: "Ann", Email: "ann@example.org", Role: "Admin", Title: "Boss", Phone: "555"})
	other := s.AddUser(User{Name: "Bo", Email: "bo@example.org"})
	path := fmt.Sprintf("/v1/users/%d", u.ID)

	api(t, s, tok, "PUT", path, `{"name":"Ann","email":"ann@example.org"}`).wantError(t, 400, "role is required")
	api(t, s, tok, "PUT", path, `{"name":"Ann","email":"BO@example.org","role":"Admin"}`).wantError(t, 400, "already exists")
	a := api(t, s, tok, "PUT", path, `{"name":"Ann Lee","email":"ann@example.org","role":"Privileged","phone":"555","id":1,"groups":[{"id":2}],"image":"x"}`)
	if a.status != 200 || a.json(t)["name"] != "Ann Lee" {
		t.Errorf("got %d %s", a.status, a.raw)
	}
	got, _ := s.User(u.ID)
	if got.Title != "" || got.Phone != "555" || got.Role != "Privileged" || got.RoleID != 2 || got.ID != u.ID {
		t.Errorf("got %+v, want the title cleared (not sent), the phone and new role set", got)
	}

	if a := api(t, s, tok, "DELETE", path, ""); a.status != 204 || a.raw != "" {
		t.Errorf("got %d %q, want 204", a.status, a.raw)
	}
	a = api(t, s, tok, "GET", path, "")
	if m := a.json(t); a.status != 200 || m["deleted"] != true || m["email"] != "ann@example.org" || m["role"] != nil {
		t.Errorf("got %d %s, want a subset with deleted: true", a.status, a.raw)
	}
	api(t, s, tok, "DELETE", path, "").wantError(t, 404, "User not found")
	api(t, s, tok, "PUT", path, `{"name":"A","email":"ann@example.org","role":"Admin"}`).wantError(t, 404, "User not found")
	api(t, s, tok, "GET", "/v1/users/99999", "").wantError(t, 404, "User not found")
	api(t, s, tok, "GET", "/v1/users/abc", "").wantError(t, 400, "Invalid user id")
	api(t, s, tok, "PATCH", fmt.Sprintf("/v1/users/%d", other.ID), `{}`).wantError(t, 405, "not supported")
	api(t, s, tok, "GET", "/v1/groups", "").wantError(t, 404, "No handler")

	e := Start(t, Options{EmptyPutBody: true})
	etok := getToken(t, e)
	eu := e.AddUser(User{Name: "Ann", Email: "ann@example.org"})
	if a := api(t, e, etok, "PUT", fmt.Sprintf("/v1/users/%d", eu.ID), `{"name":"Ann","email":"ann@example.org","role":"Admin"}`); a.status != 200 || a.raw != "" {
		t.Errorf("got %d %q, want 200 without a body", a.status, a.raw)
	}
}

func TestFaults(t *testing.T) {
	s, _ := start(t, Options{})
	tok := getToken(t, s)
	body := `{"name":"Ann","email":"a@example.org","role":"Admin"}`

	s.FailNext(2, 503)
	api(t, s, tok, "POST", "/v1/users", body).wantError(t, 503, "injected")
	a := send(t, s, "POST", "/v1/users", nil, body) // fails before the missing token is noticed
	a.wantError(t, 503, "injected")
	if n := len(s.Users()); n != 0 {
		t.Fatalf("got %d users, want none: a failed request has no effect", n)
	}
	s.FailNext(1, 429)
	if a := api(t, s, tok, "POST", "/v1/users", body); a.status != 429 || a.header.Get("Retry-After") != "0" {
		t.Errorf("got %d Retry-After %q, want 429 and 0", a.status, a.header.Get("Retry-After"))
	}

	s.LoseNext(1)
	api(t, s, tok, "POST", "/v1/users", body).wantError(t, 502, "lost")
	if n := len(s.Users()); n != 1 {
		t.Errorf("got %d users, want the lost create applied", n)
	}

	s.SetLatency(5 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/users", nil)
	begin := time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("got an answer, want the client to give up")
	}
	s.SetLatency(0)
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	want := map[string]int{"token": 1, "user.create": 4, "user.list": 1}
	got := s.Requests()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got %v, want %v", got, want)
			break
		}
	}
}

func TestRateBudget(t *testing.T) {
	s, clock := start(t, Options{RateBudget: 3, RateWindow: 10 * time.Second})
	tok := getToken(t, s) // 1
	api(t, s, tok, "GET", "/v1/users", "")
	clock.advance(4 * time.Second)
	if a := api(t, s, tok, "GET", "/v1/users", ""); a.status != 200 || a.header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("got %d remaining %q", a.status, a.header.Get("X-RateLimit-Remaining"))
	}
	a := api(t, s, tok, "GET", "/v1/users", "")
	a.wantError(t, 429, "Rate limit")
	if a.header.Get("Retry-After") != "6" || a.header.Get("X-RateLimit-Limit") != "3" {
		t.Errorf("got Retry-After %q limit %q, want 6 and 3", a.header.Get("Retry-After"), a.header.Get("X-RateLimit-Limit"))
	}
	clock.advance(6 * time.Second)
	if a := api(t, s, tok, "GET", "/v1/users", ""); a.status != 200 {
		t.Errorf("got %d in the next window", a.status)
	}
	if n := s.RateLimited(); n != 1 {
		t.Errorf("got %d, want 1", n)
	}
}

func TestConcurrentCreatesKeepEmailsUnique(t *testing.T) {
	s, _ := start(t, Options{})
	tok := getToken(t, s)
	var wg gosync.WaitGroup
	statuses := make(chan int, 40)
	for i := range 40 {
		wg.Go(func() {
			email := fmt.Sprintf("u%d@example.org", i%10) // four creates per email
			req, _ := http.NewRequest("POST", s.URL+"/v1/users", strings.NewReader(`{"name":"U","role":"Admin","email":"`+email+`"}`))
			req.Header.Set("Authorization", "bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	n := map[int]int{}
	for st := range statuses {
		n[st]++
	}
	if n[200] != 10 || n[400] != 30 || len(s.Users()) != 10 {
		t.Errorf("got statuses %v and %d users, want 10 created and 30 refused", n, len(s.Users()))
	}
}
