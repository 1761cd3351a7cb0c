package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	dsync "github.com/idsync/idsync/sync"
)

// TestPlanFormats reviews the plans of a first import and of an update in the three
// formats, through run(args) against the Haplo contract server, and checks --check's
// exit codes: 4 while the plan is not empty, 0 once it is.
func TestPlanFormats(t *testing.T) {
	e := newEnv(t, 5, "")

	// First import: five people, each a create_profile and a create_user.
	out := e.mustRun(exitDrift, "--check")
	for _, want := range []string{"sink haplo: 10 operations (create_profile 5, create_user 5), 0 held", "  create_user (5)", "    E00001 (user00001)",
		"plan: 10 operations (create_profile 5, create_user 5) in 1 sink, 0 identities held, no guard tripped"} {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
			t.Errorf("text plan lacks %q:\n%s", want, out)
		}
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); !strings.HasPrefix(lines[len(lines)-1], "plan: ") {
		t.Errorf("the summary line is not last:\n%s", out)
	}
	if total := totalRequests(e.srv); total != 0 {
		t.Fatalf("--check made %d requests to the sink", total)
	}

	planPath := filepath.Join(e.dir, "plan.json")
	out = e.mustRun(exitOK, "--dry-run", "--plan-format", "json", "--plan-out", planPath)
	if !strings.Contains(out, "plan written to "+planPath) {
		t.Errorf("stdout: %s", out)
	}
	fi, err := os.Stat(planPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("plan file mode %v, want 0600: it holds people's data", fi.Mode().Perm())
	}
	var pf planFile
	b, _ := os.ReadFile(planPath)
	if err := json.Unmarshal(b, &pf); err != nil {
		t.Fatal(err)
	}
	if pf.Format != "idsync-plan/1" || len(pf.Sinks) != 1 || pf.Summary.Operations != 10 || pf.Summary.Counts["create_user"] != 5 || pf.Held {
		t.Fatalf("json plan: %+v", pf)
	}
	op := pf.Sinks[0].Operations[0]
	if op.Kind != dsync.CreateProfile || op.ID != "E00000" || op.Want.Email != "user00000@example.org" || op.Have != nil {
		t.Errorf("first operation: %+v", op)
	}

	e.mustRun(exitOK, "--once")
	if out := e.mustRun(exitOK, "--check"); !strings.Contains(out, "plan: 0 operations in 1 sink") {
		t.Errorf("after the import, --check: %s", out)
	}

	// An update: a new last name, a team less, a new title.
	e.rows[1].last, e.rows[1].teams, e.rows[1].title = "Leigh", "sales", "Professor"
	e.writeCSV()
	out = e.mustRun(exitDrift, "--check")
	for _, want := range []string{
		`last_name: "Lee1" -> "Leigh"`,
		`groups: ["engineering", "sales"] -> ["sales"]`,
		`attributes.job_title: ["Lecturer"] -> ["Professor"]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text plan of the update lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut := e.idsync(t.Context(), "--dry-run", "--plan-format", "csv")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows[0], []string{"sink", "kind", "id", "username", "user_id", "field", "old", "new"}) {
		t.Errorf("header %v", rows[0])
	}
	var fields []string
	for _, r := range rows[1:] {
		if r[2] != "E00001" {
			t.Errorf("row for %s: only E00001 changed: %v", r[2], r)
		}
		fields = append(fields, r[1]+" "+r[5]+": "+r[6]+" -> "+r[7])
	}
	want := []string{
		"update_profile last_name: Lee1 -> Leigh",
		"update_profile attributes.job_title: Lecturer -> Professor",
		"update_user last_name: Lee1 -> Leigh",
		"update_user groups: engineering; sales -> sales",
	}
	if !slices.Equal(fields, want) {
		t.Errorf("csv rows:\n%s\nwant:\n%s", strings.Join(fields, "\n"), strings.Join(want, "\n"))
	}

	// A formula in a directory field is defused in the csv.
	e.rows[4].title = "=SUM(A1:A9)"
	e.writeCSV()
	_, out, _ = e.idsync(t.Context(), "--dry-run", "--plan-format", "csv")
	if !strings.Contains(out, `,'=SUM(A1:A9)`) || strings.Contains(out, `,=SUM`) {
		t.Errorf("a formula reached the csv undefused:\n%s", out)
	}
}

func TestPlanFlagsRefused(t *testing.T) {
	e := newEnv(t, 2, "")
	for _, args := range [][]string{
		{"--once", "--plan-format", "json"},
		{"--once", "--plan-out", "x"},
		{"--dry-run", "--plan-format", "yaml"},
		{"--check", "--once"},
	} {
		if code, _, errOut := e.idsync(t.Context(), args...); code != exitUsage {
			t.Errorf("idsync %v: exit %d, want %d (%s)", args, code, exitUsage, errOut)
		}
	}
}

// TestApplyPlan: --apply-plan applies a reviewed plan exactly, guards it showed
// included, and refuses, with no request to the sink, a plan the sources or the
// snapshot have changed since the review.
func TestApplyPlan(t *testing.T) {
	e := newEnv(t, 6, "")
	e.mustRun(exitOK, "--once")
	plan := filepath.Join(e.dir, "plan.json")
	review := func() {
		t.Helper()
		e.mustRun(exitOK, "--dry-run", "--plan-format", "json", "--plan-out", plan)
	}

	// Reviewed, then the directory changes again: refused, and it says what changed.
	e.rows[1].last = "Leigh"
	e.writeCSV()
	review()
	e.rows[1].last = "Lyle"
	e.rows[2].email = "new2@example.org"
	e.writeCSV()
	before := totalRequests(e.srv)
	code, out, errOut := e.idsync(t.Context(), "--apply-plan", plan)
	if code != exitFailed || totalRequests(e.srv) != before {
		t.Fatalf("--apply-plan of a changed plan: exit %d, %d requests; want %d and none\n%s%s", code, totalRequests(e.srv)-before, exitFailed, out, errOut)
	}
	for _, want := range []string{"the plan is no longer the one reviewed", "update_user E00001: the sources' values changed", "update_user E00002: new since the review"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal lacks %q:\n%s", want, out)
		}
	}

	// Reviewed again and applied as it is.
	review()
	e.mustRun(exitOK, "--apply-plan", plan)
	if got := applied(e.lastRun()); got[dsync.UpdateUser] != 2 || got[dsync.UpdateProfile] != 2 || len(got) != 2 {
		t.Errorf("applied %v, want the reviewed 2 update_user and 2 update_profile", got)
	}
	if u := e.user("E00002"); u.Email != "new2@example.org" {
		t.Errorf("E00002's email is %q", u.Email)
	}
	// The same plan again: the snapshot has moved on, so it is no longer the plan.
	if code, out, _ := e.idsync(t.Context(), "--apply-plan", plan); code != exitFailed || !strings.Contains(out, "no longer planned") {
		t.Errorf("a plan applied twice: exit %d\n%s", code, out)
	}

	// A plan the guard holds (one of six leaves: 16.7% > 10%) is applied once reviewed;
	// the guard is accepted because the reviewer saw it trip.
	e.rows = e.rows[1:]
	e.writeCSV()
	e.mustRun(exitHeld, "--once")
	code, out, _ = e.idsync(t.Context(), "--dry-run", "--plan-format", "json", "--plan-out", plan)
	if code != exitHeld {
		t.Fatalf("review of a held plan: exit %d\n%s", code, out)
	}
	e.mustRun(exitOK, "--apply-plan", plan)
	if u := e.user("E00000"); !u.Blocked {
		t.Error("E00000 left and was reviewed as a disable, but is not blocked")
	}

	// A plan that is not a plan.
	os.WriteFile(plan, []byte(`{"format":"something/2"}`), 0o600)
	if code, _, errOut := e.idsync(t.Context(), "--apply-plan", plan); code != exitUsage || !strings.Contains(errOut, "idsync-plan/1") {
		t.Errorf("a foreign file: exit %d: %s", code, errOut)
	}
}
