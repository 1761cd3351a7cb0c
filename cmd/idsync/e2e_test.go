package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idsync/idsync/sinks/haplo"
	"github.com/idsync/idsync/sinks/haplo/haplotest"
	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

// env is one idsync installation under test: a CSV export, a config, a state file and
// a Haplo contract server.
type env struct {
	t      testing.TB
	dir    string
	config string
	csv    string
	state  string
	srv    *haplotest.Server
	rows   []row
}

type row struct {
	id, login, email, first, last, status, teams, title string
}

func (r row) String() string {
	return strings.Join([]string{r.id, r.login, r.email, r.first, r.last, r.status, r.teams, r.title}, ",")
}

func genRows(n int) []row {
	rows := make([]row, n)
	for i := range rows {
		rows[i] = row{
			id: fmt.Sprintf("E%05d", i), login: fmt.Sprintf("User%05d", i), email: fmt.Sprintf("user%05d@example.org", i),
			first: "Ann", last: fmt.Sprintf("Lee%d", i), status: "active", teams: "engineering;sales", title: "Lecturer",
		}
	}
	return rows
}

func newEnv(t testing.TB, n int, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "config.yaml"), csv: filepath.Join(dir, "people.csv"),
		state: filepath.Join(dir, "idsync.db"), rows: genRows(n)}
	e.srv = haplotest.Start(t, haplotest.Options{ControlFile: haplo.ControlFile, Groups: []string{"haplo:group:engineering", "haplo:group:sales"}})
	os.WriteFile(filepath.Join(dir, "user.key"), []byte(e.srv.UserAPIKey()+"\n"), 0o600)
	t.Setenv("TEST_IMPORT_KEY", e.srv.ImportAPIKey())
	cfg := fmt.Sprintf(`state_path: idsync.db
sources:
`+csvSource("people.csv")+`sinks:
  - name: haplo
    haplo:
      url: %s
      user_api_key_file: user.key
      import_api_key: ${TEST_IMPORT_KEY}
      import_name: %s
      groups: {engineering: "haplo:group:engineering", sales: "haplo:group:sales"}
      attributes: {job_title: job_title}
      concurrency: 8
%s`, e.srv.URL(), e.srv.ImportName(), extra)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.writeCSV()
	return e
}

// csvSource is the configuration of the source genRows writes, at path: a source
// list's entry.
func csvSource(path string) string {
	return `  - name: hr
    csv:
      path: ` + path + `
      columns: {id: employee_id, username: login, email: email, first_name: given_name, last_name: family_name, active: status, groups: teams}
      active: {true: [active], false: [left]}
      attributes: {job_title: job_title}
`
}

func (e *env) writeCSV() {
	var b strings.Builder
	b.WriteString("employee_id,login,email,given_name,family_name,status,teams,job_title\n")
	for _, r := range e.rows {
		b.WriteString(r.String() + "\n")
	}
	if err := os.WriteFile(e.csv, []byte(b.String()), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// idsync runs the command in-process and returns its exit code and outputs.
func (e *env) idsync(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, append([]string{"--config", e.config}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func (e *env) mustRun(want int, args ...string) string {
	e.t.Helper()
	code, out, errOut := e.idsync(e.t.Context(), args...)
	if code != want {
		e.t.Fatalf("idsync %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out, errOut)
	}
	return out
}

// lastRun reads the newest run summary from the state file.
func (e *env) lastRun() dsync.RunSummary {
	e.t.Helper()
	st, err := openStateReadOnly(e.state)
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(1)
	if err != nil || len(runs) == 0 {
		e.t.Fatalf("runs %v, %v", runs, err)
	}
	return runs[0]
}

// openStateReadOnly opens the state file beside a running daemon, which holds its
// lock: a copy is read instead.
func openStateReadOnly(path string) (*state.Store, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cp := path + ".copy"
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		return nil, err
	}
	return state.Open(cp, state.Options{ReadOnly: true})
}

func applied(r dsync.RunSummary) map[dsync.OpKind]int { return r.Sinks[0].Applied }

// checkServer asserts that Haplo holds exactly one account and one profile per
// identity that was ever active, each account linked to its own profile, blocked
// exactly when the identity is not active, its profile past exactly then.
func (e *env) checkServer(everActive int) {
	e.t.Helper()
	users, profiles := e.srv.Users(), e.srv.Profiles()
	if len(users) != everActive || len(profiles) != everActive {
		e.t.Fatalf("haplo has %d users and %d profiles, want %d of each", len(users), len(profiles), everActive)
	}
	byID := map[string]row{}
	for _, r := range e.rows {
		byID[r.id] = r
	}
	refs := map[string]bool{}
	for _, p := range profiles {
		refs[p.Ref] = true
	}
	seen := map[string]bool{}
	for _, u := range users {
		id := u.Tags["idsync_id"]
		if seen[id] {
			e.t.Errorf("two accounts for identity %s", id)
		}
		seen[id] = true
		if !refs[u.Ref] {
			e.t.Errorf("user %d (%s) links to ref %q, which is no profile", u.ID, id, u.Ref)
			continue
		}
		r, present := byID[id]
		wantActive := present && r.status == "active"
		p, _ := e.srv.Profile(u.Ref)
		wantType := "std:type:person"
		if !wantActive {
			wantType = "std:type:person:past"
		}
		if u.Blocked == wantActive || p.Attrs["dc:attribute:type"][0] != wantType {
			e.t.Errorf("identity %s: blocked %v, profile type %v; want blocked %v, type %s", id, u.Blocked, p.Attrs["dc:attribute:type"], !wantActive, wantType)
		}
		if present && (u.Email != r.email || u.Tags["username"] != strings.ToLower(r.login) || p.Attrs["dc:attribute:title"][0] != r.first+" "+r.last) {
			e.t.Errorf("identity %s: user %+v, profile %v; want it to match row %v", id, u, p.Attrs, r)
		}
	}
}

// user returns the account tagged with identity id.
func (e *env) user(id string) haplotest.User {
	e.t.Helper()
	for _, u := range e.srv.Users() {
		if u.Tags["idsync_id"] == id {
			return u
		}
	}
	e.t.Fatalf("no account for identity %s", id)
	return haplotest.User{}
}

func totalRequests(s *haplotest.Server) int {
	n := 0
	for _, c := range s.Requests() {
		n += c
	}
	return n
}

// TestEndToEnd is the core cycle through run(args): first run, no-op, update,
// disable, enable, and a shrunk source held by the guard.
func TestEndToEnd(t *testing.T) {
	const n = 40
	e := newEnv(t, n, "")

	// A dry run contacts no sink and leaves no state behind.
	out := e.mustRun(exitOK, "--dry-run")
	if !strings.Contains(out, "create_profile (40)") || !strings.Contains(out, "create_user (40)") {
		t.Errorf("dry run printed:\n%s\nwant 40 create_profile and 40 create_user", out)
	}
	if got := totalRequests(e.srv); got != 0 {
		t.Errorf("dry run made %d requests, want 0", got)
	}
	if _, err := os.Stat(e.state); !os.IsNotExist(err) {
		t.Errorf("dry run left a state file (%v)", err)
	}

	// 1. The first run creates N profiles, then N users, each linked.
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); got[dsync.CreateProfile] != n || got[dsync.CreateUser] != n {
		t.Errorf("first run applied %v, want %d profiles and %d users", got, n, n)
	}
	e.checkServer(n)
	for _, u := range e.srv.Users() {
		if len(u.Groups) != 2 {
			t.Errorf("user %d groups %v, want engineering and sales", u.ID, u.Groups)
		}
	}

	// 2. The second run plans nothing and sends nothing.
	before := totalRequests(e.srv)
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("second run applied %v, want nothing", got)
	}
	if got := totalRequests(e.srv) - before; got != 0 {
		t.Errorf("second run made %d requests, want 0", got)
	}

	// A dry run against a snapshot: nothing to do, nothing sent.
	if out := e.mustRun(exitOK, "--dry-run"); !strings.Contains(out, "sink haplo: 0 operations") {
		t.Errorf("dry run after a sync printed:\n%s\nwant 0 operations", out)
	}
	if got := totalRequests(e.srv) - before; got != 0 {
		t.Errorf("dry run made %d requests, want 0", got)
	}

	// 3. One changed row gives one update.
	e.rows[3].title = "Professor"
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 1 || got[dsync.UpdateProfile] != 1 {
		t.Errorf("changed title applied %v, want one update_profile", got)
	}
	e.rows[4].email = "ann.lee4@example.org"
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 2 || got[dsync.UpdateProfile] != 1 || got[dsync.UpdateUser] != 1 {
		t.Errorf("changed email applied %v, want one update_profile and one update_user", got)
	}
	e.checkServer(n)

	// 4. One removed row gives one disable, and the profile is marked past.
	gone := e.rows[7]
	e.rows = append(e.rows[:7], e.rows[8:]...)
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 1 || got[dsync.DisableUser] != 1 {
		t.Errorf("removed row applied %v, want one disable_user", got)
	}
	e.checkServer(n)

	// 5. The row put back gives one enable.
	e.rows = append(e.rows, gone)
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 1 || got[dsync.EnableUser] != 1 {
		t.Errorf("restored row applied %v, want one enable_user", got)
	}
	e.checkServer(n)

	// 7. A source shrunk by 60% is held: exit 3, nothing written.
	all := e.rows
	e.rows = e.rows[:len(e.rows)*4/10]
	e.writeCSV()
	before = totalRequests(e.srv)
	out = e.mustRun(exitHeld, "--once")
	if !strings.Contains(out, "min_source_ratio") || !strings.Contains(out, "max_disable_percent") || !strings.Contains(out, "--accept-guard") {
		t.Errorf("held run printed:\n%s\nwant the guards and how to accept them", out)
	}
	if got := totalRequests(e.srv) - before; got != 0 {
		t.Errorf("held run made %d requests, want 0", got)
	}
	if r := e.lastRun(); r.Result != dsync.ResultHeld {
		t.Errorf("held run recorded as %v", r.Result)
	}
	e.rows = all
	e.writeCSV()
	e.checkServer(n)
}

// TestCancelledRunConverges: 6. a run cancelled in the middle of applying, run again,
// leaves no duplicate and nobody missing.
func TestCancelledRunConverges(t *testing.T) {
	const n = 200
	e := newEnv(t, n, "")
	e.srv.SetLatency(10 * time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	code, out, _ := e.idsync(ctx, "--once")
	if code != exitFailed {
		t.Fatalf("cancelled run: exit %d, want %d\n%s", code, exitFailed, out)
	}
	r := e.lastRun()
	if r.Result != dsync.ResultFailed || len(r.Sinks[0].Skipped) == 0 {
		t.Fatalf("cancelled run recorded %v with skipped %v; want failed with operations not attempted", r.Result, r.Sinks[0].Skipped)
	}
	if users := len(e.srv.Users()); users == 0 || users == n {
		t.Fatalf("the cancel came at %d of %d users; the test needs it in the middle", users, n)
	}
	e.srv.SetLatency(0)
	e.mustRun(exitOK, "--once")
	e.checkServer(n)
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("the run after convergence applied %v, want nothing", got)
	}
}

// A second idsync on the same state file refuses at once, naming the lock.
func TestSecondInstanceRefuses(t *testing.T) {
	e := newEnv(t, 5, "lock_timeout: 100ms\n")
	e.mustRun(exitOK, "--once")
	st, err := state.Open(e.state, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	code, _, errOut := e.idsync(t.Context(), "--once")
	if code != exitFailed || !strings.Contains(errOut, "another idsync") {
		t.Errorf("exit %d, stderr %q; want %d and a message about another idsync", code, errOut, exitFailed)
	}
}

// A source that cannot be read whole stops the run before planning: exit 1, nothing
// written, nobody disabled.
func TestBrokenSourceDisablesNobody(t *testing.T) {
	e := newEnv(t, 10, "")
	e.mustRun(exitOK, "--once")
	before := totalRequests(e.srv)
	os.WriteFile(e.csv, []byte("employee_id,login,email,given_name,family_name,status,teams,job_title\nE00000,\"unterminated,x,y,z,active,,\n"), 0o600)
	code, out, _ := e.idsync(t.Context(), "--once", "--accept-guard")
	if code != exitFailed || !strings.Contains(out, "people.csv:2") {
		t.Errorf("exit %d, output %q; want %d naming people.csv:2", code, out, exitFailed)
	}
	if got := totalRequests(e.srv) - before; got != 0 {
		t.Errorf("a broken source led to %d requests, want 0", got)
	}
	os.Remove(e.csv)
	if code, _, _ := e.idsync(t.Context(), "--once", "--accept-guard"); code != exitFailed {
		t.Errorf("missing file: exit %d, want %d", code, exitFailed)
	}
	e.checkServer(10)
}

// An invalid row holds that person in every sink; the others go on.
func TestInvalidRowIsHeld(t *testing.T) {
	e := newEnv(t, 10, "")
	e.mustRun(exitOK, "--once")
	e.rows[2].email = "not-an-email"
	e.rows[3].last = "Changed"
	e.writeCSV()
	out := e.mustRun(exitOK, "--once")
	if !strings.Contains(out, "people.csv:4") || !strings.Contains(out, "invalid email") {
		t.Errorf("output %q, want the invalid row named with its line", out)
	}
	if got := applied(e.lastRun()); got[dsync.DisableUser] != 0 || got[dsync.UpdateUser] != 1 {
		t.Errorf("applied %v, want the other row's update and no disable", got)
	}
	u := e.user("E00002")
	if u.Blocked || u.Email != "user00002@example.org" {
		t.Errorf("held person's account %+v, want it untouched", u)
	}
}

// A failing operation is recorded, the others go on, and the next run retries it.
func TestFailedOperationRetriedNextRun(t *testing.T) {
	e := newEnv(t, 10, "      max_retries: 0\n")
	e.srv.FailNext(1, 500)
	code, out, _ := e.idsync(t.Context(), "--once")
	if code != exitFailed || !strings.Contains(out, "failed (") {
		t.Fatalf("exit %d, output %q; want %d with a failed operation", code, out, exitFailed)
	}
	r := e.lastRun()
	if r.Result != dsync.ResultPartial || r.FailedOps() != 1 {
		t.Errorf("run %v with %d failures, want partial with 1", r.Result, r.FailedOps())
	}
	e.mustRun(exitOK, "--once")
	e.checkServer(10)
}

func TestCheckConfig(t *testing.T) {
	e := newEnv(t, 1, "")
	if out := e.mustRun(exitOK, "--check-config"); !strings.Contains(out, "ok") {
		t.Errorf("check-config printed %q", out)
	}
	bad := `state_path: x.db
schedule: "every day"
colour: blue
sources:
  - name: HR
    csv: {path: p.csv, columns: {email: mail}, extra: 1}
sinks:
  - name: haplo
    haplo: {url: "http://haplo.example.org", import_name: people, user_api_key: "${IDSYNC_TEST_UNSET}"}
  - name: other
`
	os.WriteFile(e.config, []byte(bad), 0o600)
	code, _, errOut := e.idsync(t.Context(), "--check-config")
	if code != exitUsage {
		t.Errorf("bad config: exit %d, want %d", code, exitUsage)
	}
	for _, want := range []string{
		`config.yaml:3: unknown key "colour"`,
		`config.yaml:6: unknown key "extra"`,
		`config.yaml:9: environment variable IDSYNC_TEST_UNSET is not set`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	os.WriteFile(e.config, []byte(strings.NewReplacer("colour: blue\n", "", ", extra: 1", "", `"${IDSYNC_TEST_UNSET}"`, "k").Replace(bad)), 0o600)
	_, _, errOut = e.idsync(t.Context(), "--check-config")
	for _, want := range []string{
		`schedule: "every day"`,
		`sources[0].name: "HR"`,
		`sources[0].csv.columns.id: required`,
		`sinks[0].haplo.url: "http://haplo.example.org": use https`,
		`sinks[0].haplo.import_api_key: required`,
		`sinks[1]: needs a type: haplo`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"extra-arg"}, {"--dry-run", "--accept-guard"}, {"--log-level", "loud", "--once"}} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), args, &out, &errOut); code != exitUsage {
			t.Errorf("idsync %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestShippedExampleDryRun(t *testing.T) {
	t.Setenv("HAPLO_USER_API_KEY", "unused")
	t.Setenv("HAPLO_IMPORT_API_KEY", "unused")
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"--config", "../../config.example.yaml", "--dry-run"}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	// 12 rows, two of whom have left: ten people to create, each with a profile.
	for _, want := range []string{"create_profile (10)", "create_user (10)", "E1001 (zmartin)", "guards: none tripped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run of the example lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat("../../idsync.db"); err == nil {
		t.Error("the dry run created idsync.db next to the example")
	}
}
