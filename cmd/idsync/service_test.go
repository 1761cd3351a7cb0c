package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

// lockedBuffer is a bytes.Buffer safe for the daemon's logger and the test at once.
type lockedBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemonUnderTest is `idsync --config ...` without --once, run in-process.
type daemonUnderTest struct {
	t      *testing.T
	addr   string
	cancel context.CancelFunc
	done   chan int
	log    *lockedBuffer
}

func startDaemon(t *testing.T, e *env) *daemonUnderTest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	d := &daemonUnderTest{t: t, addr: addr, cancel: cancel, done: make(chan int, 1), log: &lockedBuffer{}}
	go func() { d.done <- run(ctx, []string{"--config", e.config, "--listen", addr}, io.Discard, d.log) }()
	t.Cleanup(func() {
		cancel()
		<-d.done
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log.String())
		}
	})
	d.eventually(5*time.Second, "the daemon answers /healthz", func() bool {
		code, _ := d.get("/healthz")
		return code == http.StatusOK
	})
	return d
}

func (d *daemonUnderTest) get(path string) (int, string) {
	resp, err := http.Get("http://" + d.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop sends the daemon what SIGTERM would, and returns its exit code.
func (d *daemonUnderTest) stop() int {
	d.cancel()
	select {
	case code := <-d.done:
		d.done <- code
		return code
	case <-time.After(45 * time.Second):
		d.t.Fatal("the daemon did not stop")
		return -1
	}
}

func (d *daemonUnderTest) eventually(limit time.Duration, what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("after %v, still not: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemonUnderTest) status() statusPage {
	d.t.Helper()
	code, body := d.get("/status")
	var s statusPage
	if code != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
		d.t.Fatalf("/status: %d %s", code, body)
	}
	return s
}

// metric returns the value of the series with exactly this name and labels in a
// scrape, or -1.
func metric(scrape, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(scrape)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// promtool runs `promtool check metrics` on a scrape: it must report nothing.
func promtool(t *testing.T, scrape string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is needed: apt-get install prometheus (.ci/run does)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestDaemonRunsOnScheduleAndServesMetrics(t *testing.T) {
	e := newEnv(t, 20, "schedule: \"@every 1s\"\n")
	d := startDaemon(t, e)
	// Three runs in the history, then in the metrics: a run is recorded in the state
	// file a moment before its metrics are counted, so a scrape can fall between.
	d.eventually(10*time.Second, "three runs", func() bool { return len(d.status().Runs) >= 3 })
	var code int
	var scrape string
	d.eventually(10*time.Second, "three runs counted", func() bool {
		code, scrape = d.get("/metrics")
		return code == http.StatusOK && metric(scrape, `idsync_runs_total{result="success"}`) >= 3
	})
	runs := metric(scrape, `idsync_runs_total{result="success"}`)
	for series, want := range map[string]float64{
		`idsync_operations_total{operation="create_user",result="success",sink="haplo"}`:    20,
		`idsync_operations_total{operation="create_profile",result="success",sink="haplo"}`: 20,
		`idsync_operations_total{operation="disable_user",result="failure",sink="haplo"}`:   0,
		`idsync_planned_operations{operation="create_user",sink="haplo"}`:                   0,
		`idsync_snapshot_identities{sink="haplo"}`:                                          20,
		`idsync_source_identities{source="hr"}`:                                             20,
		`idsync_guard_trips_total{guard="max_disables"}`:                                    0,
		`idsync_config_last_reload_successful`:                                              1,
		`idsync_run_duration_seconds_count`:                                                 runs,
	} {
		if got := metric(scrape, series); got != want {
			t.Errorf("%s = %g, want %g", series, got, want)
		}
	}
	if runs < 3 {
		t.Errorf("runs_total{success} = %g, want at least 3", runs)
	}
	for _, name := range []string{"idsync_build_info{", "go_goroutines ", "process_resident_memory_bytes ",
		`idsync_sink_request_duration_seconds_count{endpoint="user.create",sink="haplo"} 20`,
		"idsync_last_success_timestamp_seconds "} {
		if !strings.Contains(scrape, name) {
			t.Errorf("the scrape lacks %s", name)
		}
	}
	promtool(t, scrape)
	s := d.status()
	if s.Schedule != "@every 1s" || s.NextRun.IsZero() || s.Runs[0].Result != dsync.ResultSuccess {
		t.Errorf("/status = %+v", s)
	}
	if code, _ := d.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d, want 200", code)
	}
	if code := d.stop(); code != exitOK {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// A run slower than the schedule is never overlapped: ticks during it are skipped.
func TestDaemonNeverOverlapsRuns(t *testing.T) {
	e := newEnv(t, 200, "schedule: \"@every 1s\"\n")
	e.srv.SetLatency(25 * time.Millisecond)
	d := startDaemon(t, e)
	d.eventually(30*time.Second, "three runs", func() bool { return len(d.status().Runs) >= 3 })
	d.stop()
	runs := e.runs()
	slow := false
	for i := 1; i < len(runs); i++ {
		newer, older := runs[i-1], runs[i]
		if newer.Started.Before(older.Finished) {
			t.Errorf("run %d started at %v, before run %d finished at %v", newer.ID, newer.Started, older.ID, older.Finished)
		}
	}
	for _, r := range runs {
		slow = slow || r.Finished.Sub(r.Started) > time.Second
	}
	if !slow {
		t.Error("no run took longer than the schedule's interval: the test proves nothing")
	}
	if !strings.Contains(d.log.String(), "still running") {
		t.Error("no tick was skipped")
	}
}

// SIGTERM in the middle of a run: in-flight operations finish and are recorded, the
// daemon exits 0, and the next run converges with no duplicate.
func TestDaemonStopMidRun(t *testing.T) {
	const n = 200
	e := newEnv(t, n, "")
	e.srv.SetLatency(10 * time.Millisecond)
	d := startDaemon(t, e)
	d.eventually(10*time.Second, "some accounts created", func() bool { return len(e.srv.Users()) >= 10 })
	if code := d.stop(); code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	if users := len(e.srv.Users()); users == n {
		t.Fatal("the run finished before the stop: the test proves nothing")
	}
	e.srv.SetLatency(0)
	e.mustRun(exitOK, "--once")
	e.checkServer(n)
}

func TestDaemonReload(t *testing.T) {
	e := newEnv(t, 10, "schedule: \"@every 1s\"\n")
	d := startDaemon(t, e)
	d.eventually(10*time.Second, "the first run", func() bool { return len(e.srv.Users()) == 10 })

	good, _ := os.ReadFile(e.config)
	// A good reload: a second CSV with one more person becomes the source.
	extra := e.rows[len(e.rows)-1]
	extra.id, extra.login, extra.email = "E99999", "newcomer", "newcomer@example.org"
	os.WriteFile(e.dir+"/people2.csv", append(mustRead(t, e.csv), []byte(extra.String()+"\n")...), 0o600)
	os.WriteFile(e.config, bytes.Replace(good, []byte("path: people.csv"), []byte("path: people2.csv"), 1), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	d.eventually(10*time.Second, "the newcomer created after the reload", func() bool { return len(e.srv.Users()) == 11 })
	_, scrape := d.get("/metrics")
	if got := metric(scrape, "idsync_config_last_reload_successful"); got != 1 {
		t.Errorf("reload successful = %g after a good reload", got)
	}

	// A bad reload keeps the running configuration.
	os.WriteFile(e.config, []byte("sources: [\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	d.eventually(5*time.Second, "the failed reload seen", func() bool {
		_, scrape := d.get("/metrics")
		return metric(scrape, "idsync_config_last_reload_successful") == 0
	})
	before := len(d.status().Runs)
	d.eventually(10*time.Second, "two more runs", func() bool { return len(d.status().Runs) >= min(before+2, 10) })
	if r := d.status().Runs[0]; r.Result != dsync.ResultSuccess || r.Identities != 11 {
		t.Errorf("run after a bad reload: %v with %d identities, want success with 11", r.Result, r.Identities)
	}
	if !strings.Contains(d.log.String(), "reload failed") {
		t.Error("the failed reload was not logged")
	}
}

func TestDaemonUnreadyWhenRunsKeepFailing(t *testing.T) {
	e := newEnv(t, 5, "schedule: \"@every 1s\"\nunready_after: 1s\n")
	d := startDaemon(t, e)
	d.eventually(10*time.Second, "the first run", func() bool { return len(e.srv.Users()) == 5 })
	saved := mustRead(t, e.csv)
	os.Remove(e.csv)
	d.eventually(10*time.Second, "/readyz fails", func() bool { code, _ := d.get("/readyz"); return code == http.StatusServiceUnavailable })
	if code, _ := d.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d while unready, want 200", code)
	}
	os.WriteFile(e.csv, saved, 0o600)
	d.eventually(10*time.Second, "/readyz recovers", func() bool { code, _ := d.get("/readyz"); return code == http.StatusOK })
}

func TestOnceMetricsFileAndPush(t *testing.T) {
	e := newEnv(t, 5, "")
	var (
		mu     gosync.Mutex
		pushed []string
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushed = append(pushed, r.Method+" "+r.URL.Path+"\n"+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	file := e.dir + "/idsync.prom"
	e.mustRun(exitOK, "--once", "--metrics-file", file, "--push-gateway", gw.URL)
	text := string(mustRead(t, file))
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("metrics file mode %v, %v; want 0644, for node_exporter", fi.Mode(), err)
	}
	if got := metric(text, `idsync_runs_total{result="success"}`); got != 1 {
		t.Errorf("metrics file: runs_total{success} = %g, want 1\n%s", got, text)
	}
	if strings.Contains(text, "go_goroutines") {
		t.Error("the metrics file has go_* series, which clash with node_exporter's own")
	}
	promtool(t, text)
	mu.Lock()
	defer mu.Unlock()
	if len(pushed) != 1 || !strings.HasPrefix(pushed[0], "PUT /metrics/job/idsync\n") ||
		metric(pushed[0], `idsync_operations_total{operation="create_user",result="success",sink="haplo"}`) != 5 {
		t.Errorf("pushed %q, want one PUT to /metrics/job/idsync with 5 created users", pushed)
	}
	code, _, errOut := e.idsync(t.Context(), "--once", "--push-gateway", "http://127.0.0.1:1")
	if code != exitFailed || !strings.Contains(errOut, "--push-gateway") {
		t.Errorf("unreachable gateway: exit %d, %q; want %d naming the flag", code, errOut, exitFailed)
	}
}

// runs reads the whole run history, newest first.
func (e *env) runs() []dsync.RunSummary {
	e.t.Helper()
	st, err := openStateReadOnly(e.state)
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(0)
	if err != nil {
		e.t.Fatal(err)
	}
	return runs
}

type panickingSource struct{}

func (panickingSource) Read(context.Context) ([]dsync.Identity, error) { panic("a bug in a source") }

// A panic in a run is recovered, counted, logged, and counts as a failed run; the next
// tick runs as usual.
func TestDaemonRecoversPanics(t *testing.T) {
	reg, metrics := newRegistry(false)
	log := &lockedBuffer{}
	d := &daemon{log: slog.New(slog.NewTextHandler(log, nil)), metrics: metrics, cfg: &Config{UnreadyAfter: time.Hour}}
	st, err := state.Open(filepath.Join(t.TempDir(), "idsync.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d.eng = dsync.New([]dsync.SourceSpec{{Name: "bad", Source: panickingSource{}}}, nil, st, dsync.Options{Metrics: metrics}, d.log)
	d.tick(t.Context())
	d.tick(t.Context())
	var out strings.Builder
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "idsync_run_panics_total" {
			fmt.Fprint(&out, mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	if out.String() != "2" {
		t.Errorf("idsync_run_panics_total = %q, want 2", out.String())
	}
	if !strings.Contains(log.String(), "run panicked") || !strings.Contains(log.String(), "a bug in a source") {
		t.Errorf("log %q, want the panic", log.String())
	}
	if d.failingSince.IsZero() {
		t.Error("a panicked run does not count as failing")
	}
}
