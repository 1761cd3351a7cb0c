//go:build linux

package main

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashDuringApply starts `idsync --once` as a child process on 5,000 identities
// against the contract server with latency, kills it with SIGKILL at random points in
// the apply, and runs it again until it exits 0. With profile_codes on, Haplo ends
// with exactly one account and one profile per identity, each linked to its own, and
// a last run has nothing to do. IDSYNC_CRASH_SEED repeats a run's kill points.
func TestCrashDuringApply(t *testing.T) {
	if testing.Short() {
		t.Skip("builds idsync and runs it on 5,000 identities")
	}
	const n = 5000
	bin := buildIdsync(t)
	e := newEnv(t, n, "      profile_codes: true\n")
	e.srv.SetPersonHasBehaviour(true)
	e.srv.SetLatency(2 * time.Millisecond)

	kills := crashLoop(t, bin, e, crashRand(t), 5, 15)
	if kills < 3 {
		t.Fatalf("only %d kills landed in the apply; the test needs several", kills)
	}
	e.srv.SetLatency(0)
	e.checkServer(n)
	touched, found := 0, 0
	for _, u := range e.srv.Users() {
		p, _ := e.srv.Profile(u.Ref)
		if p.Saves > 1 {
			found++ // made by a killed run, found again by its code
		}
		codes := p.Attrs["std:attribute:configured-behaviour"]
		if len(codes) == 0 || codes[0] != "idsync:person:"+u.Tags["idsync_id"] {
			t.Errorf("identity %s: profile %s has codes %q, want its own first", u.Tags["idsync_id"], u.Ref, codes)
		}
		if len(codes) > 1 {
			touched++ // killed between a touch push and the push that takes it away
		}
	}
	t.Logf("%d kills; %d profiles made by a killed run were found again by their code; %d keep a touch code until their next update", kills, found, touched)
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("the run after convergence applied %v, want nothing", got)
	}
}

// TestCrashWithoutProfileCodes is the same crash loop without profile_codes, to
// measure the window that codes close: it logs the duplicate profiles the kills
// left, and fails only on duplicate accounts or a run that never converges. It is
// slow, so it runs only with IDSYNC_CRASH_NOCODES=1.
func TestCrashWithoutProfileCodes(t *testing.T) {
	if os.Getenv("IDSYNC_CRASH_NOCODES") == "" {
		t.Skip("set IDSYNC_CRASH_NOCODES=1 to measure duplicate profiles without profile_codes")
	}
	const n = 5000
	bin := buildIdsync(t)
	e := newEnv(t, n, "")
	e.srv.SetLatency(2 * time.Millisecond)
	kills := crashLoop(t, bin, e, crashRand(t), 5, 15)
	e.srv.SetLatency(0)

	users, profiles := e.srv.Users(), e.srv.Profiles()
	linked := map[string]bool{}
	ids := map[string]bool{}
	for _, u := range users {
		linked[u.Ref] = true
		if ids[u.Tags["idsync_id"]] {
			t.Errorf("two accounts for identity %s", u.Tags["idsync_id"])
		}
		ids[u.Tags["idsync_id"]] = true
	}
	unlinked := 0
	for _, p := range profiles {
		if !linked[p.Ref] {
			unlinked++
		}
	}
	if len(users) != n {
		t.Errorf("%d accounts, want %d", len(users), n)
	}
	t.Logf("without profile_codes: %d kills left %d profiles for %d identities: %d duplicates, %d unlinked (%.1f per kill)",
		kills, len(profiles), n, len(profiles)-n, unlinked, float64(len(profiles)-n)/float64(max(kills, 1)))
}

// buildIdsync builds the command into a temporary directory, without -race.
func buildIdsync(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "idsync")
	start := time.Now()
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built idsync in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

func crashRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("IDSYNC_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("IDSYNC_CRASH_SEED: %v", err)
		}
	}
	t.Logf("kill points from seed %d (IDSYNC_CRASH_SEED=%d repeats them)", seed, seed)
	return rand.New(rand.NewPCG(seed, 0x63726173))
}

// crashLoop runs `idsync --once` as a child process until it exits 0, at most
// attempts times. The first kills runs are each killed with SIGKILL at a random point
// of their apply: once the server has had a random number of further requests (800
// to 2,400, of the about 15,000 a first sync of 5,000 people makes), plus up to 4ms,
// so that the requests in flight are caught at every stage. It returns how many runs
// were killed.
func crashLoop(t *testing.T, bin string, e *env, rng *rand.Rand, kills, attempts int) int {
	t.Helper()
	killed := 0
	start := time.Now()
	for attempt := 1; ; attempt++ {
		if attempt > attempts {
			t.Fatalf("no clean run within %d attempts", attempts)
		}
		kill := -1
		var jitter time.Duration
		if killed < kills {
			kill = totalRequests(e.srv) + 800 + rng.IntN(1601)
			jitter = time.Duration(rng.Int64N(int64(4 * time.Millisecond)))
		}
		runStart := time.Now()
		code, signalled, out := runChild(t, bin, e.config, func() int { return totalRequests(e.srv) }, kill, jitter)
		took := time.Since(runStart).Round(time.Millisecond)
		switch {
		case signalled:
			killed++
			t.Logf("run %d: killed after %v at request %d; %d users, %d profiles", attempt, took, totalRequests(e.srv), len(e.srv.Users()), len(e.srv.Profiles()))
			continue
		case strings.Contains(out, "another idsync"):
			t.Fatalf("run %d was refused the state file's lock after a killed run:\n%s", attempt, out)
		case code == exitOK:
			t.Logf("run %d: exit 0 after %v; %d runs killed, %v in all", attempt, took, killed, time.Since(start).Round(time.Millisecond))
			return killed
		}
		t.Logf("run %d: exit %d after %v:\n%s", attempt, code, took, tail(out, 20))
	}
}

// runChild runs `idsync --once` with config to its end, killing it with SIGKILL once
// the servers have had kill requests (as requests counts them) and jitter more has
// passed (never, for kill < 0). It returns
// the exit code, whether it was killed, and its output. The child is always waited
// for; it also dies with the test process (Pdeathsig) and with the test's context.
func runChild(t *testing.T, bin, config string, requests func() int, kill int, jitter time.Duration) (int, bool, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, "--once", "--config", config)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		if kill < 0 {
			return
		}
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for requests() < kill {
			select {
			case <-exited:
				return
			case <-tick.C:
			}
		}
		select {
		case <-exited:
			return
		case <-time.After(jitter):
		}
		_ = cmd.Process.Kill() // SIGKILL; after Wait it is a harmless no-op
	}()
	err := cmd.Wait()
	close(exited)
	<-killerDone
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, false, out.String()
	case errors.As(err, &exit):
		ws, _ := exit.Sys().(syscall.WaitStatus)
		return exit.ExitCode(), ws.Signaled() && ws.Signal() == syscall.SIGKILL, out.String()
	}
	t.Fatalf("idsync: %v\n%s", err, out.String())
	return 0, false, ""
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
