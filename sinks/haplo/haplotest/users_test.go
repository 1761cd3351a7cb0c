package haplotest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func createBody(first, last, email, extra string) string {
	b := fmt.Sprintf(`{"nameFirst":%q,"nameLast":%q,"email":%q`, first, last, email)
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// mustCreate creates a user through the API and returns its id.
func mustCreate(t *testing.T, s *Server, body string) int {
	t.Helper()
	r := users(t, s, "POST", "/api/v0-user/create", body)
	wantStatusKind(t, r, 200, "haplo:api-v0:user:create")
	return int(r.user()["id"].(float64))
}

func TestCreateUser(t *testing.T) {
	s := start(t)
	r := users(t, s, "POST", "/api/v0-user/create?welcomeLink=1",
		createBody("  Ann  Marie ", "Lee", "ann@example.org", `"ref":"80qqq","tags":{"username":"al123"},"directGroupMembership":["haplo:group:staff"]`))
	wantStatusKind(t, r, 200, "haplo:api-v0:user:create")
	if !strings.HasPrefix(r.raw, `{"success":true,"kind":"haplo:api-v0:user:create","welcomeLink":`) {
		t.Errorf("got %s, want success, kind and welcomeLink first", r.raw)
	}
	u := r.user()
	id := u["id"].(float64)
	want := map[string]any{
		"id": id, "nameFirst": "Ann Marie", "nameLast": "Lee", "name": "Ann Marie Lee", "code": nil,
		"email": "ann@example.org", "ref": "80qqq", "isGroup": false, "isActive": true,
		"isSuperUser": false, "isServiceUser": false, "isAnonymous": false, "localeId": "en",
		"tags": map[string]any{"username": "al123"}, "directGroupMembership": []any{"haplo:group:staff"},
	}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	link, _ := r.body["welcomeLink"].(string)
	if !regexp.MustCompile(fmt.Sprintf(`^https://127\.0\.0\.1:\d+/do/authentication/welcome/%d-\w+$`, int(id))).MatchString(link) {
		t.Errorf("got welcomeLink %q", link)
	}

	// Without welcomeLink=1 there is no link.
	r = users(t, s, "POST", "/api/v0-user/create?welcomeLink=0", createBody("Bo", "Ek", "bo@example.org", ""))
	if _, ok := r.body["welcomeLink"]; ok || r.status != 200 {
		t.Errorf("got %s, want a user without a welcomeLink", r.raw)
	}
	if r.user()["ref"] != nil || r.user()["localeId"] != "en" {
		t.Errorf("got %s, want ref null and localeId en", r.raw)
	}
	if got := s.Requests()["user.create"]; got != 2 {
		t.Errorf("got %d user.create requests, want 2", got)
	}
}

func TestCreateUserErrors(t *testing.T) {
	s := start(t)
	s.AddUser(User{NameFirst: "Old", NameLast: "Timer", Email: "Old@Example.org", Tags: map[string]string{"username": "ot1"}, Blocked: true})
	s.AddUser(User{NameFirst: "Mixed", NameLast: "Case", Email: "mc@example.org", Tags: map[string]string{"username": "MC1"}})
	tests := []struct {
		name       string
		query      string
		body       string
		wantStatus int
		wantKind   string
		wantMsg    string
	}{
		{"no first name", "", `{"nameLast":"Lee","email":"a@example.org"}`, 400, "haplo:api-v0:generic:exception", "User must have a non-empty String nameFirst attribute"},
		{"blank last name", "", createBody("Ann", "  ", "a@example.org", ""), 400, "haplo:api-v0:generic:exception", "User must have a non-empty String nameLast attribute"},
		{"bad email", "", createBody("Ann", "Lee", "not-an-email", ""), 400, "haplo:api-v0:generic:exception", "User must have a valid email address"},
		{"email of a blocked user, other case", "", createBody("Ann", "Lee", "old@EXAMPLE.org", ""), 400, "haplo:api-v0:user:creation-failed", "Could not create new user, as user already exists with email address old@EXAMPLE.org"},
		{"username in another case", "", createBody("Ann", "Lee", "a@example.org", `"tags":{"username":"OT1"}`), 400, "haplo:api-v0:user:creation-failed", "Could not create new user, as user already exists with username tag OT1"},
		{"bad ref", "", createBody("Ann", "Lee", "a@example.org", `"ref":"80-1"`), 400, "haplo:api-v0:user:creation-failed", "Could not add ref 80-1 to user as it is not a valid reference to an object"},
		{"ref not a string", "", createBody("Ann", "Lee", "a@example.org", `"ref":12`), 400, "haplo:api-v0:generic:exception", "Could not add ref 12"},
		{"tag not a string", "", createBody("Ann", "Lee", "a@example.org", `"tags":{"n":1}`), 400, "haplo:api-v0:generic:exception", "String"},
		{"unknown group", "", createBody("Ann", "Lee", "a@example.org", `"directGroupMembership":["haplo:group:nope"]`), 400, "haplo:api-v0:generic:exception", "Group with code haplo:group:nope does not exist"},
		{"unknown locale", "", createBody("Ann", "Lee", "a@example.org", `"localeId":"xx"`), 400, "haplo:api-v0:generic:exception", "Unknown locale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := users(t, s, "POST", "/api/v0-user/create"+tt.query, tt.body)
			wantStatusKind(t, r, tt.wantStatus, tt.wantKind)
			if !strings.Contains(r.message(), tt.wantMsg) {
				t.Errorf("got message %q, want it to contain %q", r.message(), tt.wantMsg)
			}
		})
	}
	if n := len(s.Users()); n != 2 {
		t.Errorf("got %d users, want 2: failed creates must create nothing", n)
	}
	// The check lowercases the new username and compares exactly, so a
	// stored "MC1" does not block "mc1": one reason to send lowercase.
	mustCreate(t, s, createBody("Ann", "Lee", "a@example.org", `"tags":{"username":"mc1"}`))
}

func TestPlatformValidationIsPlainText(t *testing.T) {
	s := start(t)
	id := mustCreate(t, s, createBody("Ann", "Lee", "a@example.org", ""))
	tests := []struct{ method, path, body string }{
		{"GET", "/api/v0-user/id/abc", ""},
		{"POST", "/api/v0-user/id/abc", `{}`},
		{"POST", fmt.Sprintf("/api/v0-user/id/%d", id), `{not json`},
		{"POST", "/api/v0-user/create", ``},
		{"POST", "/api/v0-user/create?welcomeLink=yes", createBody("Bo", "Ek", "b@example.org", "")},
		{"POST", "/api/v0-user/enable/x?status=block", ""},
		{"POST", fmt.Sprintf("/api/v0-user/enable/%d", id), ""},
		{"POST", "/api/v0-user/enable?status=block", ""},
		{"GET", "/api/v0-user/group", ""},
		{"POST", "/api/push-data", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			key := s.UserAPIKey()
			if strings.HasPrefix(tt.path, pushDataPrefix) {
				key = "" // no key has this path; anonymous requests reach the argument check
			}
			auth := ""
			if key != "" {
				auth = basic("haplo", key)
			}
			r := send(t, s, tt.method, tt.path, auth, tt.body)
			if r.status != 400 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") || r.raw != "Bad request (failed validation)" {
				t.Errorf("got %d %q %q, want 400 text/plain", r.status, r.header.Get("Content-Type"), r.raw)
			}
		})
	}
}

func TestGetUser(t *testing.T) {
	s := start(t)
	ann := mustCreate(t, s, createBody("Ann", "Lee", "a@example.org", `"tags":{"username":"al1","dept":"x"}`))
	bo := mustCreate(t, s, createBody("Bo", "Ek", "b@example.org", `"tags":{"username":"be1","dept":"x"}`))
	users(t, s, "POST", fmt.Sprintf("/api/v0-user/enable/%d?status=block", bo), "")

	r := users(t, s, "GET", fmt.Sprintf("/api/v0-user/id/%d", ann), "")
	wantStatusKind(t, r, 200, "haplo:api-v0:user:details")
	if r.user()["email"] != "a@example.org" {
		t.Errorf("got %s", r.raw)
	}
	// A blocked user is found by tag.
	r = users(t, s, "GET", "/api/v0-user/id?tag:username=be1", "")
	wantStatusKind(t, r, 200, "haplo:api-v0:user:details")
	if r.user()["id"] != float64(bo) || r.user()["isActive"] != false {
		t.Errorf("got %s, want user %d inactive", r.raw, bo)
	}
	// A numeric id wins over tags.
	r = users(t, s, "GET", fmt.Sprintf("/api/v0-user/id/%d?tag:username=be1", ann), "")
	if r.user()["id"] != float64(ann) {
		t.Errorf("got %s, want user %d", r.raw, ann)
	}
	// Tag matching is exact and case-sensitive.
	wantStatusKind(t, users(t, s, "GET", "/api/v0-user/id?tag:username=AL1", ""), 404, "haplo:api-v0:user:no-user-found")
	r = users(t, s, "GET", "/api/v0-user/id?tag:dept=x", "")
	wantStatusKind(t, r, 404, "haplo:api-v0:user:multiple-users-found")
	if r.message() != "Tag query dept=x returned more than one result." {
		t.Errorf("got message %q", r.message())
	}
	wantStatusKind(t, users(t, s, "GET", "/api/v0-user/id", ""), 400, "haplo:api-v0:user:no-details-provided")
	wantStatusKind(t, users(t, s, "GET", "/api/v0-user/id?username=al1", ""), 400, "haplo:api-v0:user:no-tag-query-provided")
	r = users(t, s, "GET", "/api/v0-user/id/99999", "")
	wantStatusKind(t, r, 404, "haplo:api-v0:user:no-such-user")
	if r.message() != "User ID 99999 does not exist" {
		t.Errorf("got message %q", r.message())
	}
	// A group's id resolves too.
	r = users(t, s, "GET", fmt.Sprintf("/api/v0-user/id/%d", groupEveryone), "")
	if r.user()["isGroup"] != true || r.user()["code"] != codeEveryone {
		t.Errorf("got %s, want the Everyone group", r.raw)
	}
}

func TestUpdateUser(t *testing.T) {
	s := start(t)
	id := mustCreate(t, s, createBody("Ann", "Lee", "a@example.org",
		`"tags":{"username":"al1","keep":"k"},"directGroupMembership":["haplo:group:staff"]`))
	path := fmt.Sprintf("/api/v0-user/id/%d", id)

	r := users(t, s, "POST", path, `{"nameLast":"Lee-Smith","isActive":false,"name":"ignored","tags":{"dept":"x"},"directGroupMembership":["haplo:group:students"],"ref":"83w92","localeId":"cy"}`)
	wantStatusKind(t, r, 200, "haplo:api-v0:user:update")
	want := User{
		ID: id, NameFirst: "Ann", NameLast: "Lee-Smith", Email: "a@example.org", Ref: "83w92", LocaleID: "cy",
		Tags:   map[string]string{"username": "al1", "keep": "k", "dept": "x"},
		Groups: []string{"haplo:group:students"},
	}
	got, _ := s.User(id)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("user after update (-want +got):\n%s", diff)
	}
	if r.user()["name"] != "Ann Lee-Smith" || r.user()["isActive"] != true {
		t.Errorf("got %s", r.raw)
	}
	// Tags cannot be deleted; "" is the way to empty one.
	wantStatusKind(t, users(t, s, "POST", path, `{"tags":{"dept":null}}`), 400, "haplo:api-v0:generic:exception")
	wantStatusKind(t, users(t, s, "POST", path, `{"tags":{"dept":""}}`), 200, "haplo:api-v0:user:update")
	if got, _ := s.User(id); got.Tags["dept"] != "" {
		t.Errorf("got tags %v, want dept emptied", got.Tags)
	}
	// An empty list removes every direct group.
	users(t, s, "POST", path, `{"directGroupMembership":[]}`)
	if got, _ := s.User(id); len(got.Groups) != 0 {
		t.Errorf("got groups %v, want none", got.Groups)
	}
	// Writes are not transactional: the names are written before an
	// unknown locale fails.
	wantStatusKind(t, users(t, s, "POST", path, `{"nameFirst":"Anna","localeId":"xx"}`), 400, "haplo:api-v0:generic:exception")
	if got, _ := s.User(id); got.NameFirst != "Anna" || got.LocaleID != "cy" {
		t.Errorf("got %q %q, want the name written and the locale not", got.NameFirst, got.LocaleID)
	}
	// By tag query.
	wantStatusKind(t, users(t, s, "POST", "/api/v0-user/id?tag:username=al1", `{"nameFirst":"Annie"}`), 200, "haplo:api-v0:user:update")
	if got, _ := s.User(id); got.NameFirst != "Annie" {
		t.Errorf("got %q, want Annie", got.NameFirst)
	}
}

func TestUpdateUserErrors(t *testing.T) {
	s := start(t)
	id := mustCreate(t, s, createBody("Ann", "Lee", "a@example.org", `"ref":"80qqq","tags":{"username":"al1"}`))
	s.AddUser(User{NameFirst: "Bo", NameLast: "Ek", Email: "bo@example.org", Tags: map[string]string{"username": "be1"}, Blocked: true})
	path := fmt.Sprintf("/api/v0-user/id/%d", id)
	before, _ := s.User(id)
	tests := []struct {
		name       string
		path       string
		body       string
		wantStatus int
		wantKind   string
		wantMsg    string
	}{
		{"email of a blocked user", path, `{"email":"BO@example.org"}`, 400, "haplo:api-v0:user:update-failed", fmt.Sprintf("User %d cannot be updated to have email BO@example.org as another user already has that email", id)},
		{"username taken", path, `{"tags":{"username":"BE1"}}`, 400, "haplo:api-v0:user:update-failed", fmt.Sprintf("Could not set username tag to BE1 for user %d as a user already exists with that username.", id)},
		{"bad ref", path, `{"ref":"hello"}`, 400, "haplo:api-v0:user:update-failed", "Could not add ref hello to user as it is not a valid reference to an object"},
		{"clearing the ref", path, `{"ref":null,"nameFirst":"X"}`, 400, "haplo:api-v0:user:update-failed", "Could not add ref null"},
		{"unknown group", path, `{"nameFirst":"X","directGroupMembership":["haplo:group:staff","haplo:group:nope"]}`, 400, "haplo:api-v0:generic:exception", "Group with code haplo:group:nope does not exist"},
		{"empty first name", path, `{"nameFirst":" "}`, 400, "haplo:api-v0:generic:exception", "User must have a non-empty String nameFirst attribute"},
		{"bad email", path, `{"email":"nope"}`, 400, "haplo:api-v0:generic:exception", "User must have a valid email address"},
		{"no such user", "/api/v0-user/id/99999", `{"nameFirst":"X"}`, 404, "haplo:api-v0:user:no-such-user", "User ID 99999 does not exist"},
		{"no user for the tag", "/api/v0-user/id?tag:username=zz", `{"nameFirst":"X"}`, 404, "haplo:api-v0:user:no-user-found", "Tag query username=zz returned no users."},
		{"a group", fmt.Sprintf("/api/v0-user/id/%d", groupEveryone), `{"nameFirst":"X"}`, 400, "haplo:api-v0:user:update-failed", fmt.Sprintf("User %d is a Group and cannot be updated", groupEveryone)},
		// With a tag-addressed update the plugin compares the email's owner
		// with an undefined id, so even the user's own email is refused.
		{"own email by tag", "/api/v0-user/id?tag:username=al1", `{"email":"A@example.org"}`, 400, "haplo:api-v0:user:update-failed", "User undefined cannot be updated to have email A@example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := users(t, s, "POST", tt.path, tt.body)
			wantStatusKind(t, r, tt.wantStatus, tt.wantKind)
			if !strings.Contains(r.message(), tt.wantMsg) {
				t.Errorf("got message %q, want it to contain %q", r.message(), tt.wantMsg)
			}
			if after, _ := s.User(id); !cmp.Equal(before, after) {
				t.Errorf("user changed by a failed update:\n%s", cmp.Diff(before, after))
			}
		})
	}
	// By id, a change of case in the user's own email is fine.
	wantStatusKind(t, users(t, s, "POST", path, `{"email":"A@example.org"}`), 200, "haplo:api-v0:user:update")
}

func TestEnableUser(t *testing.T) {
	s := start(t)
	id := mustCreate(t, s, createBody("Ann", "Lee", "a@example.org", ""))
	for _, tt := range []struct {
		status string
		active bool
	}{{"block", false}, {"block", false}, {"active", true}, {"active", true}} {
		r := users(t, s, "POST", fmt.Sprintf("/api/v0-user/enable/%d?status=%s", id, tt.status), "")
		wantStatusKind(t, r, 200, "haplo:api-v0:user:enable")
		if r.user()["isActive"] != tt.active {
			t.Errorf("status=%s: got %s, want isActive %v", tt.status, r.raw, tt.active)
		}
	}
	r := users(t, s, "POST", fmt.Sprintf("/api/v0-user/enable/%d?status=disabled", id), "")
	wantStatusKind(t, r, 400, "haplo:api-v0:user:enable-failed")
	if r.message() != "disabled is not a valid status" {
		t.Errorf("got message %q", r.message())
	}
	wantStatusKind(t, users(t, s, "POST", "/api/v0-user/enable/99999?status=block", ""), 404, "haplo:api-v0:user:no-such-user")
}

func TestFindByTag(t *testing.T) {
	s := start(t)
	a := mustCreate(t, s, createBody("Ann", "Lee", "a@example.org", `"tags":{"dept":"x"}`))
	b := s.AddUser(User{NameFirst: "Bo", NameLast: "Ek", Email: "b@example.org", Tags: map[string]string{"dept": "x"}, Blocked: true}).ID
	mustCreate(t, s, createBody("Cy", "Ox", "c@example.org", `"tags":{"dept":"y"}`))

	r := users(t, s, "GET", "/api/v0-user/find-by-tag?tag:dept=x", "")
	wantStatusKind(t, r, 200, "haplo:api-v0:user:find-by-tag")
	if diff := cmp.Diff([]any{float64(a), float64(b)}, r.body["users"]); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	r = users(t, s, "GET", "/api/v0-user/find-by-tag?tag:dept=x&tag:other=1", "")
	wantStatusKind(t, r, 404, "haplo:api-v0:user:no-user-found")
	wantStatusKind(t, users(t, s, "GET", "/api/v0-user/find-by-tag", ""), 400, "haplo:api-v0:user:no-tag-query-provided")
}

func TestGetGroup(t *testing.T) {
	s := start(t)
	zed := mustCreate(t, s, createBody("Zed", "Ab", "z@example.org", `"directGroupMembership":["haplo:group:staff"]`))
	amy := mustCreate(t, s, createBody("amy", "Ab", "amy@example.org", `"directGroupMembership":["haplo:group:staff","haplo:group:students"]`))
	blocked := s.AddUser(User{NameFirst: "Bo", NameLast: "Ek", Email: "b@example.org", Groups: []string{"haplo:group:staff"}, Blocked: true})

	r := users(t, s, "GET", "/api/v0-user/group/std:group:everyone", "")
	wantStatusKind(t, r, 200, "haplo:api-v0:user:group-details")
	// Active users only, ordered by lower-cased name.
	if diff := cmp.Diff([]any{float64(amy), float64(zed)}, r.body["users"]); diff != "" {
		t.Errorf("everyone (-want +got):\n%s", diff)
	}
	group, _ := r.body["group"].(map[string]any)
	if group["isGroup"] != true || group["code"] != codeEveryone {
		t.Errorf("got group %v", group)
	}
	r = users(t, s, "GET", "/api/v0-user/group/haplo:group:students", "")
	if diff := cmp.Diff([]any{float64(amy)}, r.body["users"]); diff != "" {
		t.Errorf("students (-want +got):\n%s", diff)
	}
	r = users(t, s, "GET", "/api/v0-user/group/group:0", "")
	wantStatusKind(t, r, 404, "haplo:api-v0:generic:no-response")
	r = users(t, s, "GET", "/api/v0-user/group/haplo:group:nope", "")
	wantStatusKind(t, r, 400, "haplo:api-v0:generic:exception")
	if r.message() != "Group with code haplo:group:nope does not exist" {
		t.Errorf("got message %q", r.message())
	}
	if got, _ := s.User(blocked.ID); !cmp.Equal(got.Groups, []string{"haplo:group:staff"}) {
		t.Errorf("got groups %v", got.Groups)
	}
}

func TestSeedAndInspect(t *testing.T) {
	s := start(t)
	u := s.AddUser(User{NameFirst: "Ann", NameLast: "Lee", Email: "a@example.org", Groups: []string{"haplo:group:new"}})
	if u.ID == 0 || u.LocaleID != "en" || !cmp.Equal(u.Groups, []string{"haplo:group:new"}) {
		t.Fatalf("got %+v", u)
	}
	// The new group now exists for the API.
	wantStatusKind(t, users(t, s, "GET", "/api/v0-user/group/haplo:group:new", ""), 200, "haplo:api-v0:user:group-details")
	u.Email = "changed@example.org"
	u.Tags = map[string]string{"username": "al1"}
	if !s.SetUser(u) {
		t.Fatal("SetUser: got false")
	}
	r := users(t, s, "GET", "/api/v0-user/id?tag:username=al1", "")
	if r.user()["email"] != "changed@example.org" {
		t.Errorf("got %s", r.raw)
	}
	if s.SetUser(User{ID: 99999}) {
		t.Error("SetUser of an unknown id: got true")
	}
	// Copies are deep.
	got := s.Users()
	got[0].Tags["username"] = "mutated"
	if s.Users()[0].Tags["username"] != "al1" {
		t.Error("Users returned shared tags")
	}
}
