package icuretest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// answer is a response: its status, header and body.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body as an object.
func (a answer) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("body %s: %v", a.body, err)
	}
	return m
}

func (a answer) message(t *testing.T) string {
	t.Helper()
	msg, _ := a.obj(t)["message"].(string)
	return msg
}

// call sends a request; auth sets its credentials (nil for none).
func call(t *testing.T, srv *Server, auth func(*http.Request), method, path string, body any, header ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func admin(srv *Server) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(srv.Username(), srv.Password()) }
}

func basic(login, pw string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(login, pw) }
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func expect(t *testing.T, a answer, status int, what string) {
	t.Helper()
	if a.status != status {
		t.Errorf("%s: HTTP %d %s, want %d", what, a.status, a.body, status)
	}
}

func login(t *testing.T, srv *Server, user, pw string) (string, string) {
	t.Helper()
	a := call(t, srv, nil, http.MethodPost, "/rest/v2/auth/login", map[string]string{"username": user, "password": pw})
	expect(t, a, http.StatusOK, "login")
	m := a.obj(t)
	if m["successful"] != true {
		t.Fatalf("login answer %s", a.body)
	}
	return m["token"].(string), m["refreshToken"].(string)
}

func TestAuthentication(t *testing.T) {
	srv := Start(t, Options{TokenTTL: 50 * time.Millisecond})
	expect(t, call(t, srv, nil, http.MethodGet, "/rest/v2/user/current", nil), 401, "no credentials")
	a := call(t, srv, basic(srv.Username(), "wrong"), http.MethodGet, "/rest/v2/user/current", nil)
	if expect(t, a, 401, "a wrong password"); a.message(t) == "" {
		t.Errorf("401 body %s, want kraken's {\"message\"}", a.body)
	}
	expect(t, call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/current", nil), 200, "the administrator")

	a = call(t, srv, nil, http.MethodPost, "/rest/v2/auth/login", map[string]string{"username": srv.Username(), "password": "wrong"})
	if expect(t, a, 401, "a refused login"); a.obj(t)["error"] != "Unauthorized" {
		t.Errorf("refused login body %s, want Spring's", a.body)
	}
	tok, ref := login(t, srv, srv.Username(), srv.Password())
	expect(t, call(t, srv, bearer(tok), http.MethodGet, "/rest/v2/user/current", nil), 200, "a fresh token")
	time.Sleep(60 * time.Millisecond)
	expect(t, call(t, srv, bearer(tok), http.MethodGet, "/rest/v2/user/current", nil), 401, "an expired token")

	a = call(t, srv, nil, http.MethodPost, "/rest/v2/auth/refresh", nil, "Refresh-Token", "Bearer "+ref)
	expect(t, a, 200, "refresh")
	fresh, _ := a.obj(t)["token"].(string)
	expect(t, call(t, srv, bearer(fresh), http.MethodGet, "/rest/v2/user/current", nil), 200, "a refreshed token")
	srv.ExpireSessions()
	expect(t, call(t, srv, bearer(fresh), http.MethodGet, "/rest/v2/user/current", nil), 401, "a token of an expired session")
	expect(t, call(t, srv, nil, http.MethodPost, "/rest/v2/auth/refresh", nil, "Refresh-Token", ref), 401, "an expired refresh token")

	// A user logs in with its password or an authentication token, while ACTIVE and
	// not deleted.
	u, _ := srv.AddUser(User{ID: "u1", Login: "ann", Email: "ann@example.org"})
	srv.SetPassword(u.ID, "ann-pw")
	a = call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user/token/u1/onboard?tokenValidity=60", nil)
	expect(t, a, 200, "token")
	for _, pw := range []string{"ann-pw", string(a.body)} {
		expect(t, call(t, srv, basic("ann", pw), http.MethodGet, "/rest/v2/user/current", nil), 200, "the user's "+pw)
	}
	userTok, _ := login(t, srv, "ann", "ann-pw")
	srv.Edit(u.ID, func(u *User) { u.Status = statusDisabled })
	expect(t, call(t, srv, basic("ann", "ann-pw"), http.MethodGet, "/rest/v2/user/current", nil), 401, "a disabled user")
	expect(t, call(t, srv, bearer(userTok), http.MethodGet, "/rest/v2/user/current", nil), 401, "a disabled user's token")
	srv.Edit(u.ID, func(u *User) { u.Status = statusActive })
	srv.Remove(u.ID)
	expect(t, call(t, srv, basic("ann", "ann-pw"), http.MethodGet, "/rest/v2/user/current", nil), 401, "a deleted user")
}

func TestCreateRules(t *testing.T) {
	srv := Start(t, Options{})
	if _, err := srv.AddUser(User{ID: "taken", Login: "taken-login", Email: "taken@example.org", MobilePhone: "+3212345678"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AddUser(User{ID: "gone", Login: "gone", Email: "gone@example.org", DeletionDate: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		msg    string
	}{
		{"no id", map[string]any{"email": "a@example.org"}, 400, "The id of a new user is required"},
		{"a rev", map[string]any{"id": "n1", "rev": "1-x", "email": "a@example.org"}, 400, "A new entity cannot have a rev"},
		{"bad id", map[string]any{"id": "a;b", "email": "a@example.org"}, 400, `Invalid id "a;b"`},
		{"space in id", map[string]any{"id": "a b", "email": "a@example.org"}, 400, `Invalid id "a b"`},
		{"no login email or phone", map[string]any{"id": "n1", "name": "x", "email": "  "}, 400, "createUser: Requirements are not met."},
		{"bad email", map[string]any{"id": "n1", "email": "a.example.org"}, 400, "Invalid email"},
		{"bad phone", map[string]any{"id": "n1", "mobilePhone": "12ab"}, 400, "Invalid mobile phone"},
		{"bad status", map[string]any{"id": "n1", "email": "a@example.org", "status": "GONE"}, 400, "Failed to read HTTP message"},
		{"a number as a string", map[string]any{"id": "n1", "email": 42}, 400, "Failed to read HTTP message"},
		{"duplicate email", map[string]any{"id": "n1", "email": "taken@example.org", "login": "new"}, 400, "A user with Email taken@example.org already exists"},
		{"duplicate login", map[string]any{"id": "n1", "email": "new@example.org", "login": "taken-login"}, 400, "A user with Login taken-login already exists"},
		{"login a used phone", map[string]any{"id": "n1", "email": "new@example.org", "login": "+3212345678"}, 400, "A user with Phone +3212345678 already exists"},
		{"email case differs", map[string]any{"id": "n1", "email": "Taken@example.org", "login": "n1"}, 200, ""},
		{"existing id", map[string]any{"id": "taken", "email": "free@example.org"}, 409, "Document update conflict."},
		{"deleted user's email", map[string]any{"id": "n2", "email": "gone@example.org"}, 200, ""},
		{"deleted user's id", map[string]any{"id": "gone", "email": "other@example.org"}, 409, "Document update conflict."},
	} {
		a := call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user", tc.body)
		if a.status != tc.status || !strings.HasPrefix(a.message(t), tc.msg) {
			t.Errorf("%s: HTTP %d %s, want %d %q", tc.name, a.status, a.body, tc.status, tc.msg)
		}
	}
	// Defaults: login from the email, else the phone; status ACTIVE; a password hashed
	// and never returned.
	a := call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user", map[string]any{"id": "d1", "email": "d1@example.org", "passwordHash": "pw-d1", "groupId": "g"})
	expect(t, a, 200, "create")
	m := a.obj(t)
	if m["login"] != "d1@example.org" || m["status"] != "ACTIVE" || m["passwordHash"] != "*" || m["rev"] == nil || m["groupId"] != nil {
		t.Errorf("created %s, want login = email, ACTIVE, passwordHash *, a rev and no groupId", a.body)
	}
	if !srv.CheckPassword("d1", "pw-d1") {
		t.Error("the password given on create was not stored")
	}
	a = call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user", map[string]any{"id": "d2", "mobilePhone": "+32470000000"})
	if u, _ := srv.User("d2"); a.status != 200 || u.Login != "+32470000000" {
		t.Errorf("create with a phone only: HTTP %d, login %q; want the phone as login", a.status, u.Login)
	}
}

func TestModifyRules(t *testing.T) {
	srv := Start(t, Options{})
	// Two users that share an email, as data made before the rule could hold.
	a1, _ := srv.AddUser(User{ID: "m1", Login: "m1", Email: "shared@example.org", Extra: map[string]json.RawMessage{"roles": json.RawMessage(`["X"]`)}})
	srv.AddUser(User{ID: "m2", Login: "m2", Email: "shared@example.org"})
	srv.SetPassword("m1", "pw-m1")
	get := func(id string) map[string]any {
		t.Helper()
		a := call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/"+id, nil)
		expect(t, a, 200, "get "+id)
		return a.obj(t)
	}
	put := func(doc map[string]any) answer {
		t.Helper()
		return call(t, srv, admin(srv), http.MethodPut, "/rest/v2/user", doc)
	}

	doc := get("m1")
	if doc["passwordHash"] != "*" || fmt.Sprint(doc["roles"]) != "[X]" {
		t.Fatalf("read %v, want passwordHash * and the roles", doc)
	}
	noRev := get("m1")
	delete(noRev, "rev")
	expect(t, put(noRev), 400, "a PUT without a rev")
	unknown := get("m1")
	unknown["id"] = "nobody"
	expect(t, put(unknown), 404, "a PUT of an unknown id")

	doc["name"] = "Renamed" // the shared email is unchanged, so not checked
	a := put(doc)
	expect(t, a, 200, "a PUT that keeps a shared email")
	if a.obj(t)["rev"] == a1.Rev || !srv.CheckPassword("m1", "pw-m1") {
		t.Errorf("after the PUT: %s; want a new rev and the password kept by *", a.body)
	}
	if a := put(doc); a.status != 409 || a.message(t) != "Outdated revision" {
		t.Errorf("a PUT at the old rev: HTTP %d %s, want 409 Outdated revision", a.status, a.body)
	}

	doc = get("m1")
	doc["login"] = "m2"
	if a := put(doc); a.status != 400 || a.message(t) != "A user with Login m2 already exists" {
		t.Errorf("a PUT to a taken login: HTTP %d %s", a.status, a.body)
	}
	doc["login"] = "m1"
	doc["passwordHash"] = "new-pw"
	expect(t, put(doc), 200, "a new password")
	if !srv.CheckPassword("m1", "new-pw") {
		t.Error("a PUT with a new passwordHash did not set it")
	}
	doc = get("m1")
	delete(doc, "passwordHash")
	delete(doc, "roles")
	expect(t, put(doc), 200, "a PUT without passwordHash")
	u, _ := srv.User("m1")
	if u.PasswordHash != "" || u.Extra["roles"] != nil {
		t.Errorf("stored %+v: the full document had no password and no roles, so neither should remain", u)
	}
}

func TestByEmailDeleteUndeletePurge(t *testing.T) {
	srv := Start(t, Options{})
	srv.AddUser(User{ID: "b1", Email: "Ann@example.org", Login: "ann"})
	expect(t, call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/byEmail/Ann@example.org", nil), 200, "by exact email")
	a := call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/byEmail/ann@example.org", nil)
	if expect(t, a, 404, "by email in another case"); a.obj(t)["error"] != "Not Found" {
		t.Errorf("404 body %s, want Spring's", a.body)
	}
	expect(t, call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/nobody", nil), 404, "get unknown")

	u, _ := srv.User("b1")
	expect(t, call(t, srv, admin(srv), http.MethodDelete, "/rest/v2/user/b1?rev=1-stale", nil), 409, "delete at a stale rev")
	expect(t, call(t, srv, admin(srv), http.MethodDelete, "/rest/v2/user/nobody", nil), 404, "delete unknown")
	a = call(t, srv, admin(srv), http.MethodDelete, "/rest/v2/user/b1?rev="+u.Rev, nil)
	expect(t, a, 200, "delete")
	if m := a.obj(t); m["id"] != "b1" || m["rev"] == u.Rev {
		t.Errorf("delete answer %s, want the id and a new rev", a.body)
	}
	a = call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/b1", nil)
	if expect(t, a, 200, "get a deleted user"); a.obj(t)["deletionDate"] == nil {
		t.Errorf("a deleted user reads %s, want a deletionDate", a.body)
	}
	expect(t, call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/byEmail/Ann@example.org", nil), 404, "by email of a deleted user")

	expect(t, call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user/undelete/b1", nil), 400, "undelete without a rev")
	u, _ = srv.User("b1")
	a = call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user/undelete/b1?rev="+u.Rev, nil)
	if expect(t, a, 200, "undelete"); a.obj(t)["deletionDate"] != nil {
		t.Errorf("undeleted user %s still has a deletionDate", a.body)
	}
	u, _ = srv.User("b1")
	expect(t, call(t, srv, admin(srv), http.MethodDelete, "/rest/v2/user/purge/b1?rev="+u.Rev, nil), 200, "purge")
	if _, ok := srv.User("b1"); ok {
		t.Error("a purged user is still there")
	}
}

func TestListPages(t *testing.T) {
	srv := Start(t, Options{})
	for _, id := range []string{"l1", "l2", "l3", "l4", "l5"} {
		srv.AddUser(User{ID: id, Login: id})
	}
	srv.AddUser(User{ID: "l0", Login: "l0", PatientID: "pat"})
	srv.AddUser(User{ID: "l6", Login: "l6", DeletionDate: 1})
	var got []string
	path := "/rest/v2/user?limit=2"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		a := call(t, srv, admin(srv), http.MethodGet, path, nil)
		expect(t, a, 200, "list")
		var page struct {
			Rows []struct {
				ID string `json:"id"`
			} `json:"rows"`
			NextKeyPair *struct {
				StartKey      string `json:"startKey"`
				StartKeyDocID string `json:"startKeyDocId"`
			} `json:"nextKeyPair"`
		}
		json.Unmarshal(a.body, &page)
		for _, r := range page.Rows {
			got = append(got, r.ID)
		}
		if page.NextKeyPair == nil {
			break
		}
		path = "/rest/v2/user?limit=2&startKey=" + page.NextKeyPair.StartKey + "&startDocumentId=" + page.NextKeyPair.StartKeyDocID
	}
	if strings.Join(got, ",") != "l1,l2,l3,l4,l5" {
		t.Errorf("listed %v, want l1..l5: no patient, no deleted user, each once", got)
	}
	a := call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user?skipPatients=false", nil)
	if rows := a.obj(t)["rows"].([]any); len(rows) != 6 {
		t.Errorf("skipPatients=false listed %d users, want 6", len(rows))
	}
}

func TestTokenEndpoint(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		srv := Start(t, Options{TokenAsJSON: asJSON})
		srv.AddUser(User{ID: "t1", Login: "tom", Email: "tom@example.org"})
		before, _ := srv.User("t1")
		start := time.Now()
		a := call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user/token/t1/k1", nil)
		expect(t, a, 200, "token")
		value := string(a.body)
		if asJSON {
			if err := json.Unmarshal(a.body, &value); err != nil || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
				t.Errorf("token %s (%s), want a JSON string", a.body, a.header.Get("Content-Type"))
			}
		} else if !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
			t.Errorf("Content-Type %s, want text/plain", a.header.Get("Content-Type"))
		}
		tok := srv.Tokens("t1")["k1"]
		if tok.Value != value || tok.Expires.Sub(tok.Created) != time.Hour || tok.Created.Before(start.Add(-time.Second)) {
			t.Errorf("stored token %+v, want %q valid one hour", tok, value)
		}
		if u, _ := srv.User("t1"); u.Rev == before.Rev {
			t.Error("making a token did not change the user's rev")
		}
		// By email, with the value given, short: at most 600 s.
		expect(t, call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user/token/tom@example.org/k2?tokenValidity=86400", nil, "token", "123456"), 200, "short token")
		if tok := srv.Tokens("t1")["k2"]; tok.Value != "123456" || tok.Expires.Sub(tok.Created) != 600*time.Second {
			t.Errorf("short token %+v, want 123456 valid 600 s", tok)
		}
		expect(t, call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user/token/nobody/k1", nil), 404, "token of an unknown user")
		expect(t, call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user/token/t1/k1?tokenValidity=soon", nil), 400, "a bad validity")
		// Read back without the values.
		a = call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/t1", nil)
		if strings.Contains(string(a.body), value) || !strings.Contains(string(a.body), `"k1"`) {
			t.Errorf("user %s, want the token's key and not its value", a.body)
		}
	}
}

func TestFaultsAndRateLimit(t *testing.T) {
	srv := Start(t, Options{})
	srv.FailNext(1, http.StatusInternalServerError)
	a := call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user", map[string]any{"id": "f1", "email": "f1@example.org"})
	if expect(t, a, 500, "an injected 500"); a.message(t) == "" {
		t.Errorf("injected failure body %s, want {\"message\"}", a.body)
	}
	if _, ok := srv.User("f1"); ok {
		t.Error("a request failed by FailNext took effect")
	}
	srv.FailNext(1, http.StatusTooManyRequests)
	if a := call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/current", nil); a.status != 429 || a.header.Get("Retry-After") != "0" {
		t.Errorf("injected 429: HTTP %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}

	srv.SetRateLimit(2, time.Minute)
	for i := range 2 {
		expect(t, call(t, srv, admin(srv), http.MethodGet, "/rest/v2/user/current", nil), 200, fmt.Sprint("within the budget ", i))
	}
	a = call(t, srv, admin(srv), http.MethodPost, "/rest/v2/user", map[string]any{"id": "f2", "email": "f2@example.org"})
	if a.status != 429 || a.header.Get("Retry-After") != "60" || a.message(t) != "Too many requests" {
		t.Errorf("over the budget: HTTP %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	if _, ok := srv.User("f2"); ok {
		t.Error("a throttled request took effect")
	}
	srv.SetRateLimit(0, 0)

	srv.SetLatency(2 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/rest/v2/user", strings.NewReader(`{"id":"f3","email":"f3@example.org"}`))
	admin(srv)(req)
	start := time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("a request past its deadline succeeded")
	}
	srv.SetLatency(0)
	time.Sleep(20 * time.Millisecond) // let the handler see the cancellation
	if d := time.Since(start); d > time.Second {
		t.Errorf("the cancelled request took %v", d)
	}
	if _, ok := srv.User("f3"); ok {
		t.Error("a request the client gave up on took effect")
	}
	if srv.Requests()["user.create"] != 3 {
		t.Errorf("requests %v, want 3 creates counted", srv.Requests())
	}
}

// Concurrent creates: uniqueness holds under 16 writers.
func TestConcurrentCreates(t *testing.T) {
	srv := Start(t, Options{})
	var wg sync.WaitGroup
	statuses := make([]int, 32)
	for i := range 32 {
		email := fmt.Sprintf("c%d@example.org", i)
		if i%2 == 1 {
			email = "same@example.org"
		}
		wg.Go(func() {
			b, _ := json.Marshal(map[string]any{"id": fmt.Sprint("c", i), "email": email})
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/rest/v2/user", bytes.NewReader(b))
			admin(srv)(req)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				statuses[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	ok := 0
	for i, st := range statuses {
		if i%2 == 0 && st != 200 {
			t.Errorf("create %d: HTTP %d", i, st)
		}
		if i%2 == 1 && st == 200 {
			ok++
		}
	}
	if ok != 1 || len(srv.Users()) != 17 {
		t.Errorf("%d creates of the same email succeeded and %d users exist; want 1 and 17", ok, len(srv.Users()))
	}
}
