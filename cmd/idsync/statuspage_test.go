package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium runs headless Chromium (Debian's chromium, which .ci/run installs) with
// args, as this machine allows it: no sandbox as root, no background networking, a
// fresh profile. It returns stdout.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is needed for the status page's test: apt-get install chromium (.ci/run does)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, path, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestStatusPageInChromium: the page at / as a real browser renders it, with a run
// history, a failing identity and a guard hold, behind the status token.
func TestStatusPageInChromium(t *testing.T) {
	const token = "page-token-0123456789"
	e := newEnv(t, 10, "schedule: \"@every 1h\"\nstatus_token: "+token+"\n")
	d := startDaemon(t, e)
	d.eventually(30*time.Second, "the first run is recorded", func() bool {
		code, body := d.get("/api/runs?token=" + token)
		return code == http.StatusOK && strings.Contains(body, `"result": "success"`)
	})
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "listen: %s\n", d.addr)
	f.Close()

	// A run where one operation fails, then a run the guard holds.
	e.rows[3].last = "Changed"
	e.writeCSV()
	e.srv.FailNext(1, http.StatusBadRequest)
	e.mustRun(exitFailed, "--once")
	e.rows = e.rows[5:]
	e.writeCSV()
	e.mustRun(exitHeld, "--once")

	url := "http://" + d.addr + "/?token=" + token
	dom := chromium(t, "--dump-dom", url)
	abs, _ := filepath.Abs(e.config)
	for _, want := range []string{
		"<h2>Guard hold</h2>", "Run 3 was held",
		"max_disable_percent: sink haplo would disable 50% of its managed accounts",
		`<pre id="accept-command">idsync --config ` + abs + ` --once --accept-guard</pre>`,
		`idsync --config ` + abs + ` --dry-run`,
		"<td><code>E00003</code></td><td>update_profile</td><td>haplo: update_profile E00003: push-data: HTTP 400",
		`<a href="/metrics">Metrics</a>`, `<td id="next-run">`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	rows := regexp.MustCompile(`<tr><td>(\d+)</td>`).FindAllStringSubmatch(dom, -1)
	var ids []string
	for _, r := range rows {
		ids = append(ids, r[1])
	}
	if strings.Join(ids, ",") != "3,2,1" {
		t.Errorf("runs listed: %v, want 3,2,1 (newest first)", ids)
	}
	if t.Failed() {
		t.Logf("page:\n%s", dom)
	}

	// Without the token, the browser gets the refusal, not the page.
	if dom := chromium(t, "--dump-dom", "http://"+d.addr+"/"); !strings.Contains(dom, "a token is needed") || strings.Contains(dom, "Guard hold") {
		t.Errorf("without the token:\n%s", dom)
	}

	// And it draws: a screenshot of the page (kept with IDSYNC_SCREENSHOT=path).
	shot := filepath.Join(t.TempDir(), "status.png")
	chromium(t, "--screenshot="+shot, "--window-size=1280,1100", "--hide-scrollbars", url)
	fi, err := os.Stat(shot)
	if err != nil || fi.Size() < 20_000 {
		t.Fatalf("screenshot: %v, %d bytes", err, fi.Size())
	}
	if keep := os.Getenv("IDSYNC_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(keep, b, 0o644)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/idsync/config.yaml": "/etc/idsync/config.yaml",
		"/srv/my idsync/c.yaml":   "'/srv/my idsync/c.yaml'",
		"/srv/it's/c.yaml":        `'/srv/it'\''s/c.yaml'`,
		"":                        "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
