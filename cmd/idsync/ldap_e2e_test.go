package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/ldaptest"
	"github.com/idsync/idsync/sinks/haplo"
	"github.com/idsync/idsync/sinks/haplo/haplotest"
	dsync "github.com/idsync/idsync/sync"
)

// newLDAPEnv is an installation reading a real slapd into the Haplo contract server.
func newLDAPEnv(t testing.TB, people []ldaptest.Person, concurrency int) (*env, *ldaptest.Server) {
	t.Helper()
	dir := t.TempDir()
	srv := ldaptest.Start(t, ldaptest.Options{People: people, TLS: true,
		Overlays: []string{ldaptest.OverlayMemberOf, ldaptest.OverlayPPolicy}})
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "config.yaml"), state: filepath.Join(dir, "idsync.db")}
	e.srv = haplotest.Start(t, haplotest.Options{ControlFile: haplo.ControlFile, Groups: []string{"haplo:group:managers"}})
	os.WriteFile(filepath.Join(dir, "ldap.password"), []byte(srv.ServicePassword+"\n"), 0o600)
	cfg := fmt.Sprintf(`state_path: idsync.db
sources:
  - name: directory
    ldap:
      url: %s
      start_tls: true
      ca_file: %s
      bind_dn: %s
      bind_password_file: ldap.password
      page_size: 500
      searches:
        - base_dn: ou=people,%s
          filter: (objectClass=inetOrgPerson)
      profile_attributes: {job_title: title}
      groups: {member_of: memberOf}
      active: {from: ppolicy}
sinks:
  - name: haplo
    haplo:
      url: %s
      user_api_key: %s
      import_api_key: %s
      import_name: %s
      groups: {managers: "haplo:group:managers"}
      attributes: {job_title: job_title}
      concurrency: %d
`, srv.URL, srv.CAFile, srv.ServiceDN, srv.Suffix, e.srv.URL(), e.srv.UserAPIKey(), e.srv.ImportAPIKey(), e.srv.ImportName(), concurrency)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e, srv
}

// TestLDAPEndToEnd: a 5,000-entry directory synced into Haplo: first run, no-op run,
// an entry modified, an entry deleted, an entry locked.
func TestLDAPEndToEnd(t *testing.T) {
	const n = 5000
	people := ldaptest.People(n)
	e, dir := newLDAPEnv(t, people, 16)

	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); got[dsync.CreateProfile] != n || got[dsync.CreateUser] != n {
		t.Fatalf("first run applied %v, want %d profiles and %d users", got, n, n)
	}
	users := e.srv.Users()
	if len(users) != n || len(e.srv.Profiles()) != n {
		t.Fatalf("haplo has %d users and %d profiles, want %d each", len(users), len(e.srv.Profiles()), n)
	}
	managers := 0
	for _, u := range users {
		if len(u.Groups) == 1 && u.Groups[0] == "haplo:group:managers" {
			managers++
		}
	}
	wantManagers := 0
	for _, p := range people {
		for _, g := range p.Groups {
			if g == "managers" {
				wantManagers++
			}
		}
	}
	if managers != wantManagers || wantManagers == 0 {
		t.Errorf("%d accounts in haplo:group:managers, want %d", managers, wantManagers)
	}

	before := totalRequests(e.srv)
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 || totalRequests(e.srv) != before {
		t.Errorf("no-op run applied %v with %d requests, want nothing", got, totalRequests(e.srv)-before)
	}

	changed, gone, locked := people[10], people[20], people[30]
	dir.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: mail\nmail: renamed@example.org\n-\nreplace: title\ntitle: Dean\n",
		ldaptest.PersonDN(dir.Suffix, changed.UID)))
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 2 || got[dsync.UpdateUser] != 1 || got[dsync.UpdateProfile] != 1 {
		t.Errorf("modified entry applied %v, want one update_user and one update_profile", got)
	}
	if u := e.userByUsername(changed.UID); u.Email != "renamed@example.org" {
		t.Errorf("renamed user's email %q", u.Email)
	}

	dir.Modify(t, fmt.Sprintf("dn: %s\nchangetype: delete\n", ldaptest.PersonDN(dir.Suffix, gone.UID)))
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 1 || got[dsync.DisableUser] != 1 {
		t.Errorf("deleted entry applied %v, want one disable_user", got)
	}
	if u := e.userByUsername(gone.UID); !u.Blocked {
		t.Errorf("deleted entry's account is not blocked")
	}

	dir.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n",
		ldaptest.PersonDN(dir.Suffix, locked.UID)))
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 1 || got[dsync.DisableUser] != 1 {
		t.Errorf("locked entry applied %v, want one disable_user", got)
	}
	u := e.userByUsername(locked.UID)
	p, _ := e.srv.Profile(u.Ref)
	if !u.Blocked || p.Attrs["dc:attribute:type"][0] != "std:type:person:past" {
		t.Errorf("locked entry: blocked %v, profile type %v; want blocked and past", u.Blocked, p.Attrs["dc:attribute:type"])
	}
}

// A directory that dies in the middle of a read disables nobody.
func TestLDAPServerDownDisablesNobody(t *testing.T) {
	e, dir := newLDAPEnv(t, ldaptest.People(20), 8)
	e.mustRun(exitOK, "--once")
	dir.Kill()
	before := totalRequests(e.srv)
	code, out, _ := e.idsync(t.Context(), "--once", "--accept-guard")
	if code != exitFailed || !strings.Contains(out, "run failed") {
		t.Errorf("exit %d, output %q; want %d and the failure", code, out, exitFailed)
	}
	if got := totalRequests(e.srv) - before; got != 0 {
		t.Errorf("%d requests to haplo after a failed read, want 0", got)
	}
}

func (e *env) userByUsername(uid string) haplotest.User {
	e.t.Helper()
	for _, u := range e.srv.Users() {
		if u.Tags["username"] == strings.ToLower(uid) {
			return u
		}
	}
	e.t.Fatalf("no account with username %s", uid)
	return haplotest.User{}
}

// The directory dies half-way through a paged read: the run fails, and nobody of the
// thousands the snapshot holds is disabled.
func TestLDAPDiesMidReadDisablesNobody(t *testing.T) {
	e, dir := newLDAPEnv(t, ldaptest.People(20000), 8)
	seedSnapshot(t, e)
	os.WriteFile(e.config, []byte(strings.Replace(string(mustRead(t, e.config)), "page_size: 500", "page_size: 20", 1)), 0o600)
	time.AfterFunc(150*time.Millisecond, dir.Kill)
	code, out, _ := e.idsync(t.Context(), "--once", "--accept-guard")
	if code != exitFailed || !strings.Contains(out, "run failed") {
		t.Fatalf("exit %d, output %q; want %d and the failure", code, out, exitFailed)
	}
	if !strings.Contains(out, "page ") {
		t.Errorf("the failure %q does not say which page: the kill may have come before the read", out)
	}
	if n := totalRequests(e.srv); n != 0 {
		t.Errorf("%d requests to haplo after a failed read, want 0", n)
	}
}

// Entries whose mail disappears are held: their accounts are left as they are.
func TestLDAPMissingEmailHeld(t *testing.T) {
	people := ldaptest.People(20)
	e, dir := newLDAPEnv(t, people, 8)
	e.mustRun(exitOK, "--once")
	for _, p := range people[:3] {
		dir.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\ndelete: mail\n", ldaptest.PersonDN(dir.Suffix, p.UID)))
	}
	out := e.mustRun(exitOK, "--once")
	if !strings.Contains(out, "3 identities held") || !strings.Contains(out, ": no mail") {
		t.Errorf("output %q, want three held with their DNs", out)
	}
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("applied %v, want nothing: the three are held, not gone", got)
	}
	for _, p := range people[:3] {
		if u := e.userByUsername(p.UID); u.Blocked || u.Email != p.Mail {
			t.Errorf("%s: %+v, want untouched", p.UID, u)
		}
	}
}

// TestLDAPIncremental: with incremental: true, the first run reads in full; the next
// reads only the entries changed since (here, since the directory was loaded less
// than a minute ago, everyone again: the mark's overlap); an entry deleted from the
// directory is not disabled by a delta, only by the next full read (--full-read
// here, full_every otherwise).
func TestLDAPIncremental(t *testing.T) {
	people := ldaptest.People(300)
	e, dir := newLDAPEnv(t, people, 8)
	os.WriteFile(e.config, []byte(strings.Replace(string(mustRead(t, e.config)), "page_size: 500\n", "page_size: 500\n      incremental: true\n", 1)), 0o600)

	e.mustRun(exitOK, "--once")
	if r := e.lastRun(); r.Delta || len(r.Marks["directory"]) == 0 || applied(r)[dsync.CreateUser] != 300 {
		t.Fatalf("first run: delta %v, marks %s, applied %v; want a full read that leaves a mark", r.Delta, r.Marks, applied(r))
	}

	changed, gone := people[10], people[20]
	dir.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: sn\nsn: Changed\n", ldaptest.PersonDN(dir.Suffix, changed.UID)))
	dir.Modify(t, fmt.Sprintf("dn: %s\nchangetype: delete\n", ldaptest.PersonDN(dir.Suffix, gone.UID)))
	e.mustRun(exitOK, "--once")
	r := e.lastRun()
	if got := applied(r); !r.Delta || len(got) != 2 || got[dsync.UpdateUser] != 1 || got[dsync.UpdateProfile] != 1 {
		t.Errorf("delta run: delta %v, applied %v; want one update_user and one update_profile, and no disable", r.Delta, got)
	}
	if u := e.userByUsername(gone.UID); u.Blocked {
		t.Error("a delta run disabled the deleted entry's account")
	}

	e.mustRun(exitOK, "--once", "--full-read")
	r = e.lastRun()
	if got := applied(r); r.Delta || len(got) != 1 || got[dsync.DisableUser] != 1 {
		t.Errorf("full read: delta %v, applied %v; want one disable_user", r.Delta, got)
	}
	if u := e.userByUsername(gone.UID); !u.Blocked {
		t.Error("the full read did not disable the deleted entry's account")
	}
}
