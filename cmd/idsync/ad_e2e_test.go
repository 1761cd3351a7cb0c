package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/sambatest"
	"github.com/idsync/idsync/sinks/haplo"
	"github.com/idsync/idsync/sinks/haplo/haplotest"
	dsync "github.com/idsync/idsync/sync"
)

// TestADEndToEnd: 1,500 accounts of a real Samba AD DC synced into Haplo, as
// config.example.yaml's AD example reads them (LDAPS, objectGUID, sAMAccountName,
// userAccountControl, nested groups in chain): first run, no-op, an account disabled and enabled again, renamed,
// moved inside the search base and out of it.
func TestADEndToEnd(t *testing.T) {
	start := time.Now()
	dc := sambatest.Start(t)
	dc.AddOUs(t, "OU=People", "OU=A,OU=People", "OU=B,OU=People", "OU=Outside")
	const n = 1500
	users := sambatest.Users(n) // every tenth disabled
	for i := range users {
		users[i].Container = "OU=A,OU=People"
	}
	dc.AddUsers(t, users)
	// staff holds team-a, which holds u00001-u00050; managers holds u00051-u00060.
	teamA := sambatest.Group{Name: "team-a", Container: "OU=People"}
	for _, u := range users[:50] {
		teamA.Members = append(teamA.Members, u.DN())
	}
	staff := sambatest.Group{Name: "staff", Container: "OU=People", Members: []string{teamA.DN()}}
	managers := sambatest.Group{Name: "managers", Container: "OU=People"}
	for _, u := range users[50:60] {
		managers.Members = append(managers.Members, u.DN())
	}
	dc.AddGroups(t, []sambatest.Group{teamA, staff, managers})
	t.Logf("DC ready with %d users in %v", n, time.Since(start).Round(time.Millisecond))

	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "config.yaml"), state: filepath.Join(dir, "idsync.db")}
	e.srv = haplotest.Start(t, haplotest.Options{ControlFile: haplo.ControlFile, Groups: []string{"haplo:group:staff", "haplo:group:managers"}})
	os.WriteFile(filepath.Join(dir, "ad.password"), []byte(dc.ServicePassword+"\n"), 0o600)
	cfg := fmt.Sprintf(`state_path: idsync.db
sources:
  - name: ad
    ldap:
      url: %s
      ca_file: %s
      bind_dn: %s
      bind_password_file: ad.password
      searches:
        - base_dn: OU=People,%s
          filter: (&(objectCategory=person)(objectClass=user))
      referrals: skip
      attributes:
        id: objectGUID
        username: sAMAccountName
        email: mail
        display_name: displayName
      active: {from: ad}
      groups:
        search:
          base_dn: OU=People,%s
          filter: (&(objectClass=group)(|(cn=staff)(cn=managers)))
          nested: true
sinks:
  - name: haplo
    haplo:
      url: %s
      user_api_key: %s
      import_api_key: %s
      import_name: %s
      groups: {staff: "haplo:group:staff", managers: "haplo:group:managers"}
      concurrency: 8
`, dc.URL, dc.CAFile, dc.ServiceDN, dc.BaseDN, dc.BaseDN, e.srv.URL(), e.srv.UserAPIKey(), e.srv.ImportAPIKey(), e.srv.ImportName())
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// 1. First run: an account for each enabled user; the disabled get none.
	const active = n - n/10
	t1 := time.Now()
	e.mustRun(exitOK, "--once")
	t.Logf("first run: %v", time.Since(t1).Round(time.Millisecond))
	accounts := e.srv.Users()
	if got := applied(e.lastRun()); len(accounts) != active || got[dsync.CreateUser] != active || got[dsync.CreateProfile] != active {
		t.Fatalf("haplo has %d accounts after applying %v, want %d", len(accounts), got, active)
	}
	groups := map[string]int{}
	blocked := 0
	for _, u := range accounts {
		for _, g := range u.Groups {
			groups[g]++
		}
		if u.Blocked {
			blocked++
		}
	}
	// u00010, u00020, ... are disabled: 45 of team-a's 50 and 9 of the 10 managers.
	if blocked != 0 || groups["haplo:group:staff"] != 45 || groups["haplo:group:managers"] != 9 {
		t.Errorf("%d blocked, groups %v; want none blocked, 45 in staff (through team-a), 9 managers", blocked, groups)
	}
	u1 := e.userByUsername("u00001")
	if want := dc.GUID(t, "u00001"); u1.Tags["idsync_id"] != want {
		t.Errorf("u00001's idsync_id %q, want its objectGUID %q", u1.Tags["idsync_id"], want)
	}

	// 2. No-op.
	before := totalRequests(e.srv)
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 || totalRequests(e.srv) != before {
		t.Errorf("no-op run applied %v with %d requests, want nothing", got, totalRequests(e.srv)-before)
	}

	step := func(what, ldif string, want map[dsync.OpKind]int) {
		t.Helper()
		dc.Modify(t, ldif)
		e.mustRun(exitOK, "--once")
		got := applied(e.lastRun())
		if len(got) != len(want) {
			t.Errorf("%s: applied %v, want %v", what, got, want)
			return
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: applied %v, want %v", what, got, want)
			}
		}
	}
	u := users[10] // u00011, active
	uac := func(flags int) string {
		return fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: %d\n", u.DN(), flags)
	}

	// 3. Disabled in AD: one block.
	step("disabled", uac(sambatest.UACNormalAccount|sambatest.UACPasswordNotReqd|sambatest.UACAccountDisable), map[dsync.OpKind]int{dsync.DisableUser: 1})
	if !e.userByUsername(u.Name).Blocked {
		t.Error("the disabled account is not blocked")
	}
	// 4. Enabled again: one enable.
	step("enabled", uac(sambatest.UACNormalAccount|sambatest.UACPasswordNotReqd), map[dsync.OpKind]int{dsync.EnableUser: 1})
	if e.userByUsername(u.Name).Blocked {
		t.Error("the enabled account is blocked")
	}
	before11 := e.userByUsername(u.Name)
	// 5. Renamed: a new sAMAccountName, the same objectGUID: one update, no new account.
	step("renamed", fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: renamed11\n", u.DN()),
		map[dsync.OpKind]int{dsync.UpdateUser: 1})
	if r := e.userByUsername("renamed11"); r.ID != before11.ID || len(e.srv.Users()) != active {
		t.Errorf("after the rename haplo has %d accounts, want %d", len(e.srv.Users()), active)
	}
	// 6. Moved to another OU inside the search base: no change.
	step("moved inside", fmt.Sprintf("dn: %s\nchangetype: modrdn\nnewrdn: CN=%s\ndeleteoldrdn: 1\nnewsuperior: OU=B,OU=People,%s\n", u.DN(), u.Name, dc.BaseDN),
		map[dsync.OpKind]int{})
	// 7. Moved out of the search base: one disable.
	moved := u
	moved.Container = "OU=B,OU=People"
	step("moved out", fmt.Sprintf("dn: %s\nchangetype: modrdn\nnewrdn: CN=%s\ndeleteoldrdn: 1\nnewsuperior: OU=Outside,%s\n", moved.DN(), u.Name, dc.BaseDN),
		map[dsync.OpKind]int{dsync.DisableUser: 1})
	if !e.userByUsername("renamed11").Blocked {
		t.Error("the account moved out of the search base is not blocked")
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// TestExampleADConfig: config.example.yaml's commented Active Directory source, taken
// as it is written, is a configuration idsync accepts, and so is its incremental form.
func TestExampleADConfig(t *testing.T) {
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	in := false
	for line := range strings.Lines(string(example)) {
		switch {
		case strings.HasPrefix(line, "  # - name: ad"):
			in = true
		case in && !strings.HasPrefix(line, "  #"):
			in = false
		}
		if in {
			block = append(block, strings.Replace(line, "# ", "", 1))
		}
	}
	if len(block) < 10 {
		t.Fatalf("no Active Directory example in config.example.yaml (found %q)", block)
	}
	source := strings.Join(block, "")
	const sink = "sinks:\n  - name: haplo\n    haplo: {url: https://haplo.example.org, user_api_key: k, import_api_key: k, import_name: n}\n"
	if _, err := LoadConfig(writeConfig(t, "sources:\n"+source+sink)); err != nil {
		t.Errorf("the AD example is refused: %v\n%s", err, source)
	}
	// Its incremental form: groups from memberOf, uSNChanged.
	incremental := regexp.MustCompile(`(?s)      search:\n.*?nested: true\n`).ReplaceAllString(source, "      member_of: memberOf\n")
	incremental = strings.NewReplacer("    # incremental: true", "    incremental: true", "    # incremental_by:", "    incremental_by:").Replace(incremental)
	if !strings.Contains(incremental, "    incremental_by: uSNChanged") {
		t.Fatalf("the example's incremental lines are not where expected:\n%s", incremental)
	}
	if _, err := LoadConfig(writeConfig(t, "sources:\n"+incremental+sink)); err != nil {
		t.Errorf("the incremental AD example is refused: %v\n%s", err, incremental)
	}
}
