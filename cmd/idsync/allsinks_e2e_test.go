//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/scimtest"
	"github.com/idsync/idsync/sinks/descope/descopetest"
	"github.com/idsync/idsync/sinks/domo/domotest"
	"github.com/idsync/idsync/sinks/icure/icuretest"
	dsync "github.com/idsync/idsync/sync"
)

// fleet is an installation with a sink of every kind: Haplo (the env's) and, beside
// it, SCIM (scimmy under Node.js), Descope, Domo and iCure, each against its own
// server.
type fleet struct {
	*env
	scim    *scimtest.Server
	descope *descopetest.Server
	domo    *domotest.Server
	icure   *icuretest.Server
}

// sinkNames are the fleet's sinks, in the configuration's order.
var sinkNames = []string{"haplo", "app", "auth", "bi", "ehr"}

// disabledRole is the custom Domo role leavers get (disable_action: role).
const disabledRole = 90

func newFleet(t *testing.T, n int) *fleet {
	t.Helper()
	f := &fleet{
		scim:    scimtest.Start(t),
		descope: descopetest.Start(t, descopetest.Options{}),
		domo:    domotest.Start(t, domotest.Options{CustomRoles: map[int64]string{disabledRole: "No access"}}),
		icure:   icuretest.Start(t, icuretest.Options{}),
	}
	t.Setenv("TEST_DESCOPE_KEY", f.descope.ManagementKey())
	t.Setenv("TEST_DOMO_SECRET", f.domo.ClientSecret())
	t.Setenv("TEST_ICURE_PASSWORD", f.icure.Password())
	// Haplo with profile codes: a profile made by a killed run is found again.
	extra := fmt.Sprintf(`      profile_codes: true
  - name: app
    scim:
      url: %s
      token_file: scim.token
      groups: {engineering: Engineering}
  - name: auth
    descope:
      url: %s
      project_id: %s
      management_key: ${TEST_DESCOPE_KEY}
      roles: {engineering: engineer}
      custom_attributes: {job_title: jobTitle}
  - name: bi
    domo:
      url: %s
      client_id: %s
      client_secret: ${TEST_DOMO_SECRET}
      roles: [{group: engineering, role: Privileged}]
      attributes: {job_title: title}
      disable_action: role
      disabled_role: "%d"
  - name: ehr
    icure:
      url: %s
      auth: token
      username: %s
      password: ${TEST_ICURE_PASSWORD}
      max_retries: 1
`, f.scim.URL, f.descope.URL, f.descope.ProjectID(), f.domo.URL, f.domo.ClientID(), disabledRole, f.icure.URL, f.icure.Username())
	f.env = newEnv(t, n, extra)
	f.srv.SetPersonHasBehaviour(true)
	if err := os.WriteFile(filepath.Join(f.dir, "scim.token"), []byte(f.scim.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// requests counts the requests the in-process servers received (scimmy's are not
// counted).
func (f *fleet) requests() int {
	n := totalRequests(f.srv) + f.descope.Total() + f.domo.Total()
	for _, c := range f.icure.Requests() {
		n += c
	}
	return n
}

// setLatency delays every request to the in-process servers: three times d where a
// person takes one request instead of Haplo's three, and a hundred times for
// Descope's batches of 50, so that every sink is still creating when a run is killed.
func (f *fleet) setLatency(d time.Duration) {
	f.srv.SetLatency(d)
	f.descope.SetLatency(100 * d)
	f.domo.SetLatency(3 * d)
	f.icure.SetLatency(3 * d)
}

// applied returns the operations the last run applied in each sink.
func (f *fleet) applied() map[string]map[dsync.OpKind]int {
	got := map[string]map[dsync.OpKind]int{}
	for _, s := range f.lastRun().Sinks {
		if len(s.Applied) > 0 {
			got[s.Sink] = s.Applied
		}
	}
	return got
}

// account is what every sink's server holds for one person, reduced to what the
// test checks.
type account struct {
	email  string
	active bool
}

// check asserts that every sink holds exactly one account per identity that was ever
// active, with the row's email, active exactly when the row is.
func (f *fleet) check(everActive int) {
	f.t.Helper()
	f.checkServer(everActive)
	want := map[string]account{} // by email
	for _, r := range f.rows {
		want[r.email] = account{r.email, r.status == "active"}
	}
	var scimAccounts, descopeAccounts, domoAccounts, icureAccounts []account
	for _, u := range f.scim.Users(f.t) {
		emails, _ := u["emails"].([]any)
		var email string
		if len(emails) > 0 {
			email, _ = emails[0].(map[string]any)["value"].(string)
		}
		scimAccounts = append(scimAccounts, account{email, u["active"] == true})
	}
	for _, u := range f.descope.Users() {
		descopeAccounts = append(descopeAccounts, account{u.Email, u.Status == "enabled"})
	}
	for _, u := range f.domo.Users() {
		domoAccounts = append(domoAccounts, account{u.Email, u.RoleID != disabledRole})
	}
	for _, u := range f.icure.Users() {
		if !u.Deleted() {
			icureAccounts = append(icureAccounts, account{u.Email, u.Status == "ACTIVE"})
		}
	}
	for sink, accounts := range map[string][]account{"app (scim)": scimAccounts, "auth (descope)": descopeAccounts, "bi (domo)": domoAccounts, "ehr (icure)": icureAccounts} {
		if len(accounts) != everActive {
			f.t.Errorf("%s holds %d accounts, want %d", sink, len(accounts), everActive)
		}
		seen := map[string]bool{}
		for _, a := range accounts {
			w, ok := want[a.email]
			switch {
			case seen[a.email]:
				f.t.Errorf("%s: two accounts with email %s", sink, a.email)
			case !ok:
				f.t.Errorf("%s: an account with email %q, which no row has", sink, a.email)
			case a != w:
				f.t.Errorf("%s: account %+v, want %+v", sink, a, w)
			}
			seen[a.email] = true
		}
	}
}

// TestEverySinkEndToEnd runs 200 people from a CSV into a sink of every kind at once:
// a first run killed twice and resumed, a no-op, an update, a disable, an enable, and
// a run in which two sinks fail while the others carry on.
func TestEverySinkEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds idsync and starts a server per sink")
	}
	const n = 200
	f := newFleet(t, n)
	bin := buildIdsync(t)

	// 1. The first run, killed with SIGKILL twice during its apply, then resumed.
	f.setLatency(2 * time.Millisecond)
	rng := crashRand(t)
	kills := 0
	for attempt := 1; ; attempt++ {
		if attempt > 6 {
			t.Fatal("no clean run within 6 attempts")
		}
		kill := -1
		if kills < 2 {
			kill = f.requests() + 100 + rng.IntN(250) // a first run makes about 1,200 requests
		}
		start := time.Now()
		code, killed, out := runChild(t, bin, f.config, f.requests, kill, time.Duration(rng.Int64N(int64(3*time.Millisecond))))
		took := time.Since(start).Round(time.Millisecond)
		if killed {
			kills++
			t.Logf("run %d killed after %v and %d requests: haplo %d users, descope %d, domo %d, icure %d", attempt,
				took, f.requests(), len(f.srv.Users()), len(f.descope.Users()), len(f.domo.Users()), len(f.icure.Users()))
			continue
		}
		if code != exitOK {
			t.Fatalf("run %d: exit %d:\n%s", attempt, code, tail(out, 30))
		}
		t.Logf("run %d: exit 0 after %v", attempt, took)
		if os.Getenv("IDSYNC_FLEET_LOG") != "" {
			t.Log(out)
		}
		break
	}
	if kills < 2 {
		t.Fatalf("only %d kills landed in the first run", kills)
	}
	f.setLatency(0)
	f.check(n)

	// 2. A no-op: nothing applied, and not one request to the servers.
	before := f.requests()
	f.mustRun(exitOK, "--once")
	if got := f.applied(); len(got) != 0 {
		t.Errorf("no-op run applied %v", got)
	}
	if got := f.requests() - before; got != 0 {
		t.Errorf("no-op run made %d requests", got)
	}

	// 3. Updates: two people change email and name; every sink gets one update each.
	for _, i := range []int{3, 4} {
		f.rows[i].email = fmt.Sprintf("renamed%d@example.org", i)
		f.rows[i].last = "Renamed"
	}
	f.writeCSV()
	f.mustRun(exitOK, "--once")
	for _, sink := range sinkNames {
		if got := f.applied()[sink][dsync.UpdateUser]; got != 2 {
			t.Errorf("update run: %s applied %v, want 2 update_user", sink, f.applied()[sink])
		}
	}
	f.check(n)

	// 4. Leavers: three people leave; each sink disables exactly them.
	for _, i := range []int{10, 11, 12} {
		f.rows[i].status = "left"
	}
	f.writeCSV()
	f.mustRun(exitOK, "--once")
	for _, sink := range sinkNames {
		if got := f.applied()[sink]; got[dsync.DisableUser] != 3 || len(got) != 1 {
			t.Errorf("disable run: %s applied %v, want 3 disable_user", sink, got)
		}
	}
	f.check(n)
	if u, _ := f.domo.UserByEmail(f.rows[10].email); u.RoleID != disabledRole {
		t.Errorf("domo leaver has role %q (%d), want the disabled role", u.Role, u.RoleID)
	}

	// 5. They come back.
	for _, i := range []int{10, 11, 12} {
		f.rows[i].status = "active"
	}
	f.writeCSV()
	f.mustRun(exitOK, "--once")
	for _, sink := range sinkNames {
		if got := f.applied()[sink]; got[dsync.EnableUser] != 3 || len(got) != 1 {
			t.Errorf("enable run: %s applied %v, want 3 enable_user", sink, got)
		}
	}
	f.check(n)
	if u, _ := f.domo.UserByEmail(f.rows[10].email); u.Role != "Privileged" {
		t.Errorf("domo returner has role %q, want Privileged (engineering) back", u.Role)
	}

	// 6. Domo refuses idsync's credentials and iCure answers 500 to everything: the
	// run fails (exit 1) in those two sinks only, the others are updated, and the
	// next run catches the two up.
	f.rows[20].last = "Changed"
	f.writeCSV()
	f.domo.SetTokensRefused(true)
	f.icure.FailNext(1000, 500)
	f.mustRun(exitFailed, "--once")
	f.checkServer(n) // haplo has the new name
	if got := f.applied(); got["haplo"][dsync.UpdateUser] != 1 || got["app"][dsync.UpdateUser] != 1 || got["bi"] != nil || got["ehr"] != nil {
		t.Errorf("the run with two failing sinks applied %v, want one update in haplo and app only", got)
	}
	f.domo.SetTokensRefused(false)
	f.icure.FailNext(0, 0)
	f.mustRun(exitOK, "--once")
	got := f.applied()
	if got["bi"][dsync.UpdateUser] != 1 || got["ehr"][dsync.UpdateUser] != 1 || got["haplo"] != nil || got["app"] != nil {
		t.Errorf("the catch-up run applied %v, want one update in bi and ehr only", got)
	}
	f.check(n)
}
