package scimtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	groupSchema = "urn:ietf:params:scim:schemas:core:2.0:Group"
	patchSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// call sends a SCIM request with the server's token and decodes the reply.
func call(t *testing.T, s *Server, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return callToken(t, s, s.Token, method, path, body)
}

func callToken(t *testing.T, s *Server, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %s: not JSON: %v: %s", method, path, resp.Status, err, b)
		}
	}
	return resp.StatusCode, out
}

func user(userName string) map[string]any {
	return map[string]any{
		"schemas":  []string{UserSchema},
		"userName": userName,
		"name":     map[string]any{"givenName": "Given", "familyName": "Family"},
		"active":   true,
	}
}

func listUsers(t *testing.T, s *Server, query url.Values) (total int, names []string) {
	t.Helper()
	code, body := call(t, s, http.MethodGet, "/Users?"+query.Encode(), nil)
	if code != http.StatusOK {
		t.Fatalf("GET /Users?%s: %d %v", query.Encode(), code, body)
	}
	for _, r := range asList(body["Resources"]) {
		names = append(names, r["userName"].(string))
	}
	return int(body["totalResults"].(float64)), names
}

func asList(v any) []map[string]any {
	var out []map[string]any
	list, _ := v.([]any)
	for _, e := range list {
		out = append(out, e.(map[string]any))
	}
	return out
}

func TestCreateGetUser(t *testing.T) {
	s := Start(t)
	code, created := call(t, s, http.MethodPost, "/Users", user("alice"))
	if code != http.StatusCreated {
		t.Fatalf("POST /Users: %d %v", code, created)
	}
	id, _ := created["id"].(string)
	if id == "" {
		t.Fatalf("no id in %v", created)
	}
	meta := created["meta"].(map[string]any)
	if meta["resourceType"] != "User" || meta["location"] != s.URL+"/Users/"+id {
		t.Errorf("meta = %v", meta)
	}
	code, got := call(t, s, http.MethodGet, "/Users/"+id, nil)
	if code != http.StatusOK || got["userName"] != "alice" || got["id"] != id {
		t.Fatalf("GET /Users/%s: %d %v", id, code, got)
	}
	if code, got := call(t, s, http.MethodGet, "/Users/no-such-id", nil); code != http.StatusNotFound {
		t.Errorf("GET unknown user: %d %v", code, got)
	}
	if users := s.Users(t); len(users) != 1 || users[0]["id"] != id {
		t.Errorf("Users() = %v", users)
	}
	if code, _ := call(t, s, http.MethodDelete, "/Users/"+id, nil); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	if users := s.Users(t); len(users) != 0 {
		t.Errorf("after DELETE, Users() = %v", users)
	}
}

func TestDuplicateUserName(t *testing.T) {
	s := Start(t)
	s.AddUser(t, map[string]any{"userName": "bob"})
	for _, name := range []string{"bob", "BOB"} { // userName is not case-exact
		code, body := call(t, s, http.MethodPost, "/Users", user(name))
		if code != http.StatusConflict || body["scimType"] != "uniqueness" || body["status"] != "409" {
			t.Errorf("POST duplicate %q: %d %v", name, code, body)
		}
	}
	// Renaming another user onto a taken userName conflicts too.
	other := s.AddUser(t, map[string]any{"userName": "carol"})
	code, body := call(t, s, http.MethodPatch, "/Users/"+other["id"].(string), map[string]any{
		"schemas":    []string{patchSchema},
		"Operations": []any{map[string]any{"op": "replace", "path": "userName", "value": "bob"}},
	})
	if code != http.StatusConflict || body["scimType"] != "uniqueness" {
		t.Errorf("PATCH onto a taken userName: %d %v", code, body)
	}
	if n := len(s.Users(t)); n != 2 {
		t.Errorf("%d users, want 2", n)
	}
}

func TestFilter(t *testing.T) {
	s := Start(t)
	for _, name := range []string{`plain`, `quo"te`, `back\slash`, `quo`} {
		s.AddUser(t, user(name))
	}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{`userName eq "plain"`, []string{"plain"}},
		{`userName eq "quo\"te"`, []string{`quo"te`}},
		{`userName eq "back\\slash"`, []string{`back\slash`}},
		{`userName eq "nobody"`, nil},
		{`userName sw "quo"`, []string{`quo"te`, "quo"}},
		{`userName eq "plain" or userName eq "quo\"te"`, []string{"plain", `quo"te`}},
		{`name.givenName eq "Given" and userName eq "quo"`, []string{"quo"}},
	} {
		total, names := listUsers(t, s, url.Values{"filter": {tc.filter}})
		if total != len(tc.want) || fmt.Sprint(names) != fmt.Sprint(tc.want) {
			t.Errorf("filter %s: total %d, %q; want %q", tc.filter, total, names, tc.want)
		}
	}
	code, body := call(t, s, http.MethodGet, "/Users?"+url.Values{"filter": {`userName eq "x" and (`}}.Encode(), nil)
	if code != http.StatusBadRequest || body["scimType"] != "invalidFilter" {
		t.Errorf("bad filter: %d %v", code, body)
	}
}

func TestPatchUser(t *testing.T) {
	s := Start(t)
	id := s.AddUser(t, user("dave"))["id"].(string)
	code, body := call(t, s, http.MethodPatch, "/Users/"+id, map[string]any{
		"schemas": []string{patchSchema},
		"Operations": []any{
			map[string]any{"op": "replace", "path": "active", "value": false},
			map[string]any{"op": "replace", "path": "name.givenName", "value": "David"},
		},
	})
	if code != http.StatusOK {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	_, got := call(t, s, http.MethodGet, "/Users/"+id, nil)
	name := got["name"].(map[string]any)
	if got["active"] != false || name["givenName"] != "David" || name["familyName"] != "Family" || got["userName"] != "dave" {
		t.Errorf("after PATCH: %v", got)
	}
	// A PatchOp that changes nothing gets 204 and no body.
	code, body = call(t, s, http.MethodPatch, "/Users/"+id, map[string]any{
		"schemas":    []string{patchSchema},
		"Operations": []any{map[string]any{"op": "replace", "path": "active", "value": false}},
	})
	if code != http.StatusNoContent || body != nil {
		t.Errorf("no-op PATCH: %d %v", code, body)
	}
}

func TestPagination(t *testing.T) {
	s := Start(t)
	for i := range 25 {
		s.AddUser(t, user(fmt.Sprintf("user%02d", i)))
	}
	var seen []string
	for _, page := range []struct{ start, n int }{{1, 10}, {11, 10}, {21, 5}} {
		q := url.Values{"startIndex": {fmt.Sprint(page.start)}, "count": {"10"}, "sortBy": {"userName"}}
		code, body := call(t, s, http.MethodGet, "/Users?"+q.Encode(), nil)
		if code != http.StatusOK {
			t.Fatalf("GET page %d: %d %v", page.start, code, body)
		}
		res := asList(body["Resources"])
		if body["totalResults"] != 25.0 || body["startIndex"] != float64(page.start) ||
			body["itemsPerPage"] != 10.0 || len(res) != page.n {
			t.Errorf("page %d: total %v start %v itemsPerPage %v, %d resources; want 25, %d, 10, %d",
				page.start, body["totalResults"], body["startIndex"], body["itemsPerPage"], len(res), page.start, page.n)
		}
		for _, r := range res {
			seen = append(seen, r["userName"].(string))
		}
	}
	if len(seen) != 25 || seen[0] != "user00" || seen[24] != "user24" {
		t.Errorf("paged through %q", seen)
	}
	if n := len(s.Users(t)); n != 25 {
		t.Errorf("Users() gave %d", n)
	}
}

func TestGroups(t *testing.T) {
	s := Start(t)
	var ids []string
	for _, name := range []string{"m1", "m2", "m3"} {
		ids = append(ids, s.AddUser(t, user(name))["id"].(string))
	}
	code, g := call(t, s, http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{groupSchema},
		"displayName": "admins",
		"members":     []any{map[string]any{"value": ids[0]}, map[string]any{"value": ids[1]}},
	})
	if code != http.StatusCreated {
		t.Fatalf("POST /Groups: %d %v", code, g)
	}
	gid := g["id"].(string)
	members := func() []string {
		t.Helper()
		code, g := call(t, s, http.MethodGet, "/Groups/"+gid, nil)
		if code != http.StatusOK {
			t.Fatalf("GET group: %d %v", code, g)
		}
		var out []string
		for _, m := range asList(g["members"]) {
			out = append(out, m["value"].(string))
		}
		return out
	}
	if got := members(); strings.Join(got, ",") != ids[0]+","+ids[1] {
		t.Fatalf("members %v", got)
	}
	code, body := call(t, s, http.MethodPatch, "/Groups/"+gid, map[string]any{
		"schemas": []string{patchSchema},
		"Operations": []any{
			map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": ids[2]}}},
			map[string]any{"op": "remove", "path": fmt.Sprintf(`members[value eq "%s"]`, ids[0])},
		},
	})
	if code != http.StatusOK {
		t.Fatalf("PATCH group: %d %v", code, body)
	}
	if got := members(); strings.Join(got, ",") != ids[1]+","+ids[2] {
		t.Errorf("after PATCH, members %v; want %v", got, ids[1:])
	}
	// Deleting a user drops it from its groups.
	call(t, s, http.MethodDelete, "/Users/"+ids[1], nil)
	if got := members(); strings.Join(got, ",") != ids[2] {
		t.Errorf("after DELETE of a member, members %v", got)
	}
}

func TestUnauthorized(t *testing.T) {
	s := Start(t)
	for _, token := range []string{"", "wrong"} {
		code, body := callToken(t, s, token, http.MethodGet, "/Users", nil)
		if code != http.StatusUnauthorized || body["status"] != "401" {
			t.Errorf("token %q: %d %v", token, code, body)
		}
		code, _ = callToken(t, s, token, http.MethodPost, "/Users", user("mallory"))
		if code != http.StatusUnauthorized {
			t.Errorf("POST with token %q: %d", token, code)
		}
	}
	if n := len(s.Users(t)); n != 0 {
		t.Errorf("%d users after unauthorized POSTs", n)
	}
}
