package main

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/idsync/idsync/sinks/haplo/haplotest"
	dsync "github.com/idsync/idsync/sync"
)

// A sink answering 503 to 20% of requests and 429 with Retry-After to 10%: everything
// converges within three runs, and the retry metrics show the retries.
func TestFlakySinkConverges(t *testing.T) {
	const n = 50
	e := newEnv(t, n, "")
	e.srv.SetFaults(haplotest.Faults{Rate5xx: 0.2, Statuses5xx: []int{http.StatusServiceUnavailable}, Rate429: 0.1, RetryAfter: "1"})
	file := e.dir + "/idsync.prom"
	code := -1
	for range 3 {
		if code, _, _ = e.idsync(t.Context(), "--once", "--metrics-file", file); code == exitOK {
			break
		}
	}
	if code != exitOK {
		t.Fatalf("no clean run within three: exit %d", code)
	}
	e.srv.SetFaults(haplotest.Faults{})
	e.checkServer(n)
	// The metrics file is the last run's; its retries come from the first if it was
	// the only one.
	runs := e.runs()
	if len(runs) == 1 {
		text := string(mustRead(t, file))
		for _, reason := range []string{"status_5xx", "status_429"} {
			if v := metric(text, `idsync_sink_retries_total{reason="`+reason+`",sink="haplo"}`); v <= 0 {
				t.Errorf("retries for %s = %g, want some", reason, v)
			}
		}
	}
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("after convergence the run applied %v, want nothing", got)
	}
}

// A sink that is down: the circuit opens and the run exits 1 after a handful of
// requests, not one per person; with the sink back, the next run converges.
func TestDownSinkOpensCircuit(t *testing.T) {
	const n = 100
	e := newEnv(t, n, "      max_retries: 1\n    circuit_breaker: 5\n")
	e.srv.SetFaults(haplotest.Faults{Down: true})
	code, out, _ := e.idsync(t.Context(), "--once")
	if code != exitFailed || !strings.Contains(out, "circuit breaker open") {
		t.Fatalf("exit %d, output %q; want %d and the breaker", code, out, exitFailed)
	}
	// 5 failed operations opened it; past them, one result waiting to be counted and
	// one operation in flight per worker (concurrency 8), each of 2 attempts. The
	// breaker bounds the damage; it cannot recall what is already on its way.
	if got := totalRequests(e.srv); got > 2*(5+8+8) {
		t.Errorf("%d requests to a sink that is down, want at most %d", got, 2*(5+8+8))
	}
	r := e.lastRun()
	if r.Result != dsync.ResultFailed || r.Sinks[0].Skipped[dsync.CreateUser] == 0 {
		t.Errorf("run %v, skipped %v; want failed with operations not attempted", r.Result, r.Sinks[0].Skipped)
	}
	e.srv.SetFaults(haplotest.Faults{})
	e.mustRun(exitOK, "--once")
	e.checkServer(n)
}

// A lost state file: the next run adopts every account by its tags and reuses its
// profile; nothing is created twice.
func TestLostSnapshotAdopts(t *testing.T) {
	const n = 30
	e := newEnv(t, n, "")
	e.mustRun(exitOK, "--once")
	if err := os.Remove(e.state); err != nil {
		t.Fatal(err)
	}
	e.mustRun(exitOK, "--once")
	e.checkServer(n)
	if got := applied(e.lastRun()); got[dsync.CreateUser] != n {
		t.Errorf("the run after the loss applied %v, want %d adoptions through create_user", got, n)
	}
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("the run after that applied %v, want nothing", got)
	}
}

// An administrator blocks an account, changes an email and removes a managed group by
// hand: --verify finds it, and the same run repairs it.
func TestVerifyRepairsDrift(t *testing.T) {
	e := newEnv(t, 10, "")
	e.mustRun(exitOK, "--once")
	blocked, renamed := e.user("E00001"), e.user("E00002")
	blocked.Blocked = true
	renamed.Email = "by.hand@example.org"
	renamed.Groups = []string{"haplo:group:sales"}
	e.srv.SetUser(blocked)
	e.srv.SetUser(renamed)
	out := e.mustRun(exitOK, "--once", "--verify")
	for _, want := range []string{"drift: sink haplo: E00001: blocked or unblocked", "drift: sink haplo: E00002: changed: email,groups"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := applied(e.lastRun()); got[dsync.EnableUser] != 1 || got[dsync.UpdateUser] != 1 || len(got) != 2 {
		t.Errorf("repair applied %v, want one enable and one update", got)
	}
	e.checkServer(10)
	if g := e.user("E00002").Groups; len(g) != 2 {
		t.Errorf("groups after repair %v, want both managed groups back", g)
	}
	if out := e.mustRun(exitOK, "--once", "--verify"); strings.Contains(out, "drift") {
		t.Errorf("a second verification found drift:\n%s", out)
	}
}

// --rebuild-snapshot after a lost state file: nobody is created again, and a person
// who then leaves is disabled, which adoption alone could not do.
func TestRebuildSnapshot(t *testing.T) {
	e := newEnv(t, 20, "")
	e.mustRun(exitOK, "--once")
	os.Remove(e.state)
	before := len(e.srv.Users())
	out := e.mustRun(exitOK, "--rebuild-snapshot")
	if !strings.Contains(out, "20 accounts carry idsync's mark, 20 added") {
		t.Errorf("rebuild printed %q", out)
	}
	e.rows = e.rows[1:]
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); got[dsync.DisableUser] != 1 || got[dsync.CreateUser] != 0 || got[dsync.CreateProfile] != 0 {
		t.Errorf("after the rebuild applied %v, want one disable and no create", got)
	}
	if n := len(e.srv.Users()); n != before {
		t.Errorf("%d users, want %d", n, before)
	}
	if u := e.user("E00000"); !u.Blocked {
		t.Error("the leaver is not blocked")
	}
}
