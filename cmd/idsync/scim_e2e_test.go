package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idsync/idsync/internal/scimtest"
	dsync "github.com/idsync/idsync/sync"
)

// newSCIMEnv is an installation reading a CSV into an independent SCIM server
// (scimmy under Node.js).
func newSCIMEnv(t *testing.T, n int) (*env, *scimtest.Server) {
	t.Helper()
	srv := scimtest.Start(t)
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "config.yaml"), csv: filepath.Join(dir, "people.csv"),
		state: filepath.Join(dir, "idsync.db"), rows: genRows(n)}
	os.WriteFile(filepath.Join(dir, "scim.token"), []byte(srv.Token+"\n"), 0o600)
	cfg := fmt.Sprintf(`state_path: idsync.db
sources:
`+csvSource("people.csv")+`sinks:
  - name: app
    scim:
      url: %s
      token_file: scim.token
      groups: {engineering: Engineering, sales: Sales}
      concurrency: 4
`, srv.URL)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.writeCSV()
	return e, srv
}

// scimUsers maps externalId to the user scimmy holds.
func scimUsers(t *testing.T, srv *scimtest.Server) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, u := range srv.Users(t) {
		if ext, _ := u["externalId"].(string); ext != "" {
			m[ext] = u
		}
	}
	return m
}

// TestSCIMEndToEnd: from a CSV into scimmy, an implementation nobody on this project
// wrote: first sync, no-op, update, disable and re-enable, a duplicate userName
// adopted, a group membership change.
func TestSCIMEndToEnd(t *testing.T) {
	const n = 12
	e, srv := newSCIMEnv(t, n)
	// An account already there with the userName one of the people will want.
	srv.AddUser(t, map[string]any{"userName": "user00011", "active": false})
	e.rows[11].login = "user00011"
	e.writeCSV()

	e.mustRun(exitOK, "--once")
	r := e.lastRun()
	if got := applied(r); got[dsync.CreateUser] != n {
		t.Fatalf("first run applied %v, want %d users", got, n)
	}
	users := scimUsers(t, srv)
	if len(users) != n || len(srv.Users(t)) != n {
		t.Fatalf("scimmy has %d users (%d with an externalId), want %d: the existing one adopted, not duplicated", len(srv.Users(t)), len(users), n)
	}
	if u := users["E00011"]; u["active"] != true || u["userName"] != "user00011" {
		t.Errorf("adopted user %v, want active with its userName", u)
	}

	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("no-op run applied %v", got)
	}

	e.rows[2].email = "moved2@example.org"
	e.rows[3].teams = "sales"
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); got[dsync.UpdateUser] != 2 || len(got) != 1 {
		t.Errorf("changes applied %v, want two update_user", got)
	}
	users = scimUsers(t, srv)
	if emails, _ := users["E00002"]["emails"].([]any); len(emails) != 1 || emails[0].(map[string]any)["value"] != "moved2@example.org" {
		t.Errorf("E00002 emails %v", users["E00002"]["emails"])
	}
	if got := groupMembers(t, e, srv, "Engineering"); strings.Contains(got, users["E00003"]["id"].(string)) {
		t.Errorf("E00003 still in Engineering: %s", got)
	}
	if got := groupMembers(t, e, srv, "Sales"); !strings.Contains(got, users["E00003"]["id"].(string)) {
		t.Errorf("E00003 not in Sales: %s", got)
	}

	e.rows[5].status = "left"
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	if scimUsers(t, srv)["E00005"]["active"] != false {
		t.Error("the leaver is still active")
	}
	e.rows[5].status = "active"
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); got[dsync.EnableUser] != 1 || scimUsers(t, srv)["E00005"]["active"] != true {
		t.Errorf("re-enable applied %v, active %v", got, scimUsers(t, srv)["E00005"]["active"])
	}
}

// groupMembers lists a group's member ids, as text.
func groupMembers(t *testing.T, _ *env, srv *scimtest.Server, name string) string {
	t.Helper()
	var b strings.Builder
	for _, g := range srv.Groups(t) {
		if g["displayName"] == name {
			members, _ := g["members"].([]any)
			for _, m := range members {
				fmt.Fprintf(&b, "%v ", m.(map[string]any)["value"])
			}
		}
	}
	return b.String()
}

// Deletes, where turned on: an account idsync disabled at least delete_after ago is
// deleted, within max_deletes.
func TestSCIMDeleteAfter(t *testing.T) {
	e, srv := newSCIMEnv(t, 6)
	cfg := strings.Replace(string(mustRead(t, e.config)), "    scim:\n", "    delete_after: 1ns\n    safety: {max_deletes: 1, max_disable_percent: -1}\n    scim:\n", 1)
	os.WriteFile(e.config, []byte(cfg), 0o600)
	e.mustRun(exitOK, "--once")
	e.rows = e.rows[1:]
	e.writeCSV()
	e.mustRun(exitOK, "--once") // disabled
	e.mustRun(exitOK, "--once") // deleted
	if got := applied(e.lastRun()); got[dsync.DeleteUser] != 1 {
		t.Errorf("applied %v, want one delete", got)
	}
	if _, ok := scimUsers(t, srv)["E00000"]; ok {
		t.Error("the account is still there")
	}
}
