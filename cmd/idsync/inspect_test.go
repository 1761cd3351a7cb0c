package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

// TestHistoryShowInspect: after a run and a run where one operation failed, history
// lists both, show tells the failed one's error per identity, and inspect tells one
// person's sources' view, snapshot, last operation and last error.
func TestHistoryShowInspect(t *testing.T) {
	e := newEnv(t, 4, "")
	e.mustRun(exitOK, "--once")
	e.rows[1].last, e.rows[2].last = "Changed1", "Changed2"
	e.writeCSV()
	e.srv.FailNext(1, http.StatusBadRequest)
	e.mustRun(exitFailed, "--once")
	run := e.lastRun()
	if len(run.Sinks[0].Errors) != 1 {
		t.Fatalf("errors %+v, want one", run.Sinks[0].Errors)
	}
	failed := run.Sinks[0].Errors[0]
	ok := map[string]string{"E00001": "E00002", "E00002": "E00001"}[failed.ID]

	out := e.mustRun(exitOK, "history")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "RUN") || !strings.HasPrefix(lines[1], "2 ") || !strings.Contains(lines[1], "partial") ||
		!strings.HasPrefix(lines[2], "1 ") || !strings.Contains(lines[2], "success") || !strings.Contains(lines[2], "create_user 4") {
		t.Errorf("history:\n%s", out)
	}

	out = e.mustRun(exitOK, "show", "2")
	for _, want := range []string{"run 2: partial", "source hr: 4 identities, full read", "failed (" + failed.Kind.String() + " 1)",
		"    " + failed.Kind.String() + " " + failed.ID + ": " + failed.Error} {
		if !strings.Contains(out, want) {
			t.Errorf("show 2 lacks %q:\n%s", want, out)
		}
	}

	out = e.mustRun(exitOK, "inspect", failed.ID)
	for _, want := range []string{"identity " + failed.ID, "hr (", `last_name "Changed`, "account " + strconv.Itoa(e.user(failed.ID).ID),
		"state: active", "last error: " + failed.Kind.String(), "1 failed in a row", "errors in the last 2 runs: 1", "run 2 ("} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect %s lacks %q:\n%s", failed.ID, want, out)
		}
	}
	out = e.mustRun(exitOK, "--log-level", "warn", "inspect", ok)
	if !strings.Contains(out, "last operation: "+dsync.UpdateUser.String()) || strings.Contains(out, "last error") {
		t.Errorf("inspect %s:\n%s", ok, out)
	}
	out = e.mustRun(exitOK, "inspect", "NOBODY")
	if !strings.Contains(out, "not listed by any source") || !strings.Contains(out, "no snapshot entry") {
		t.Errorf("inspect NOBODY:\n%s", out)
	}

	if code, _, errOut := e.idsync(t.Context(), "show", "99"); code != exitFailed || !strings.Contains(errOut, "no run 99") {
		t.Errorf("show 99: exit %d, %s", code, errOut)
	}
	for _, args := range [][]string{{"history", "x"}, {"show"}, {"inspect", "a", "b"}, {"history", "--once"}, {"frobnicate"}} {
		if code, _, errOut := e.idsync(t.Context(), args...); code != exitUsage {
			t.Errorf("idsync %v: exit %d, want %d (%s)", args, code, exitUsage, errOut)
		}
	}
}

// TestCommandsBesideDaemon: while the daemon holds the state file's lock, history and
// inspect ask it, with the status token; without the token it answers 401.
func TestCommandsBesideDaemon(t *testing.T) {
	e := newEnv(t, 3, "status_token: s3cret-token-0123\n")
	d := startDaemon(t, e)
	d.eventually(30*time.Second, "a run is recorded", func() bool {
		code, body := d.get("/api/runs?token=s3cret-token-0123")
		return code == http.StatusOK && strings.Contains(body, `"result": "success"`)
	})
	for _, path := range []string{"/api/runs", "/api/identities/E00000", "/status", "/api/runs?token=wrong"} {
		if code, _ := d.get(path); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
	}
	if code, _ := d.get("/metrics"); code != http.StatusOK {
		t.Errorf("/metrics: %d: it stays open for Prometheus", code)
	}
	// The commands find the daemon at the configuration's listen address.
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "listen: %s\n", d.addr)
	f.Close()
	out := e.mustRun(exitOK, "history")
	if !strings.Contains(out, "success") {
		t.Errorf("history through the daemon:\n%s", out)
	}
	out = e.mustRun(exitOK, "inspect", "E00000")
	if !strings.Contains(out, "account "+strconv.Itoa(e.user("E00000").ID)) || !strings.Contains(out, "last operation: create_user") {
		t.Errorf("inspect through the daemon:\n%s", out)
	}
}

// TestRunsBesideDaemon: with a daemon holding the state file, --dry-run, --once and
// --once --accept-guard are done by the daemon, and print as they would have: a guard
// hold is accepted with the same commands whether or not a daemon runs.
func TestRunsBesideDaemon(t *testing.T) {
	e := newEnv(t, 10, "schedule: \"@every 1h\"\n")
	d := startDaemon(t, e)
	d.eventually(30*time.Second, "the first run is recorded", func() bool {
		s := d.status()
		return len(s.Runs) > 0 && s.Runs[0].Result == dsync.ResultSuccess
	})
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "listen: %s\n", d.addr)
	f.Close()

	e.rows = e.rows[2:] // 20% leave: max_disable_percent holds the run
	e.writeCSV()
	out := e.mustRun(exitHeld, "--dry-run")
	if !strings.Contains(out, "disable_user (2)") || !strings.Contains(out, "HELD") {
		t.Errorf("--dry-run through the daemon:\n%s", out)
	}
	if out := e.mustRun(exitDrift, "--check", "--plan-format", "json"); !strings.Contains(out, `"format": "idsync-plan/1"`) {
		t.Errorf("--check --plan-format json through the daemon:\n%s", out)
	}
	e.mustRun(exitHeld, "--once")
	if e.user("E00000").Blocked {
		t.Fatal("a held run blocked someone")
	}
	out = e.mustRun(exitOK, "--once", "--accept-guard")
	if !strings.Contains(out, "disable_user 2") || !e.user("E00000").Blocked || !e.user("E00001").Blocked {
		t.Errorf("--once --accept-guard through the daemon:\n%s", out)
	}
	if s := d.status(); s.Runs[0].Result != dsync.ResultSuccess || !s.Runs[0].Accepted {
		t.Errorf("the daemon's last run: %+v", s.Runs[0])
	}
	if code, _, errOut := e.idsync(t.Context(), "--once", "--verify"); code != exitFailed || !strings.Contains(errOut, "verify_every") {
		t.Errorf("--verify beside the daemon: exit %d, %s", code, errOut)
	}
	resp, err := http.Post("http://"+d.addr+"/api/run", "text/plain", strings.NewReader(`{"accept_guard":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("a form-like POST (what another site's page could send): %s, want 415", resp.Status)
	}
}

func TestLoopback(t *testing.T) {
	for listen, want := range map[string]bool{"127.0.0.1:9464": true, "[::1]:9464": true, "localhost:9464": true,
		"0.0.0.0:9464": false, ":9464": false, "10.0.0.5:9464": false, "idsync.example.org:9464": false} {
		if got := loopback(listen); got != want {
			t.Errorf("loopback(%q) = %v, want %v", listen, got, want)
		}
	}
}
