package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idsync/idsync/sinks/haplo/haplotest"
)

// No secret appears in any log line at any level, in the output, in /status or in
// /metrics; a world-readable key file is warned about.
func TestSecretsStayOut(t *testing.T) {
	e := newEnv(t, 5, "schedule: \"@every 1s\"\n")
	userKey, importKey := e.srv.UserAPIKey(), e.srv.ImportAPIKey()
	os.Chmod(filepath.Join(e.dir, "user.key"), 0o644)
	code, out, errOut := e.idsync(t.Context(), "--once", "--log-level", "debug")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "secret file is readable by every user") {
		t.Error("no warning about a world-readable key file")
	}
	// A failing run too: errors are where secrets like to hide.
	e.srv.SetFaults(hapDown())
	_, out2, errOut2 := e.idsync(t.Context(), "--once", "--log-level", "debug", "--log-format", "json")
	e.srv.SetFaults(hapUp())

	d := startDaemon(t, e)
	d.eventually(10*time.Second, "a run", func() bool { return len(d.status().Runs) >= 1 })
	_, status := d.get("/status")
	_, metrics := d.get("/metrics")
	if code, _ := d.get("/status"); code != http.StatusOK {
		t.Fatal("/status")
	}
	d.stop()
	for name, text := range map[string]string{"stdout": out + out2, "logs": errOut + errOut2 + d.log.String(), "/status": status, "/metrics": metrics} {
		for _, secret := range []string{userKey, importKey} {
			if strings.Contains(text, secret) {
				t.Errorf("a key appears in %s", name)
			}
		}
		// People's emails never become metric labels.
		if name == "/metrics" && strings.Contains(text, "@example.org") {
			t.Error("an email appears in /metrics")
		}
	}
}

func hapDown() haplotest.Faults { return haplotest.Faults{Down: true} }
func hapUp() haplotest.Faults   { return haplotest.Faults{} }
