package main

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

//go:embed web/status.html
var statusHTML string

// statusTemplate is the page at /: server-side, no script. html/template escapes every
// value; nothing on the page is a secret (ids, counts, errors, the configuration's path).
var statusTemplate = template.Must(template.New("status").Parse(statusHTML))

type statusView struct {
	Generated    time.Time
	Schedule     string
	NextRun      time.Time
	Running      bool
	FailingSince time.Time
	Held         *heldView
	Failing      []failRow
	FailingRun   uint64
	Runs         []runRow
}

// heldView is the newest run when a guard held it, with the commands that decide.
type heldView struct {
	Run    uint64
	Guards []string
	DryRun string
	Accept string
}

type failRow struct {
	Sink, ID, Kind, Error string
}

type runRow struct {
	ID                           uint64
	Started, Took, Result, Class string
	Identities, Held             int
	Applied, Failed, Guards      string
}

// statusRuns is how many runs the page lists.
const statusRuns = 20

// page is the status page at /.
func (d *daemon) page(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	v := statusView{Generated: time.Now(), Schedule: d.cfg.Schedule, NextRun: d.cron.Entry(d.entry).Next,
		Running: d.inRun, FailingSince: d.failingSince}
	config := d.path
	d.mu.Unlock()
	runs, err := d.store.Runs(0)
	if err != nil {
		http.Error(w, "run history: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if len(runs) > 0 && runs[0].Result == dsync.ResultHeld {
		h := &heldView{Run: runs[0].ID}
		for _, g := range runs[0].Guards {
			h.Guards = append(h.Guards, g.String())
		}
		if abs, err := filepath.Abs(config); err == nil {
			config = abs
		}
		h.DryRun = "idsync --config " + shellQuote(config) + " --dry-run"
		h.Accept = "idsync --config " + shellQuote(config) + " --once --accept-guard"
		v.Held = h
	}
	// The failing identities are those of the newest run that applied operations: a
	// failed operation stays in the plan, and is tried again, until it succeeds.
	for _, r := range runs {
		if r.Result != dsync.ResultSuccess && r.Result != dsync.ResultPartial && !(r.Result == dsync.ResultFailed && len(r.Sinks) > 0) {
			continue
		}
		v.FailingRun = r.ID
		for _, s := range r.Sinks {
			for _, e := range s.Errors {
				v.Failing = append(v.Failing, failRow{Sink: s.Sink, ID: e.ID, Kind: e.Kind.String(), Error: e.Error})
			}
		}
		break
	}
	for _, r := range runs[:min(len(runs), statusRuns)] {
		row := runRow{ID: r.ID, Started: r.Started.Local().Format(time.DateTime), Took: r.Finished.Sub(r.Started).Round(time.Millisecond).String(),
			Result: string(r.Result), Identities: r.Identities, Held: r.Held}
		applied, failed := runTotals(&r)
		row.Applied, row.Failed = bareCounts(applied), bareCounts(failed)
		switch r.Result {
		case dsync.ResultSuccess:
			row.Class = "ok"
		case dsync.ResultFailed, dsync.ResultHeld, dsync.ResultPartial:
			row.Class = "bad"
		}
		if len(r.Guards) > 0 {
			row.Guards = strconv.Itoa(len(r.Guards))
			if r.Accepted {
				row.Guards += " accepted"
			}
		}
		v.Runs = append(v.Runs, row)
	}
	var b bytes.Buffer
	if err := statusTemplate.Execute(&b, v); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Write(b.Bytes())
}

// shellQuote quotes a path for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
