package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

// A daemon holds the state file's lock for as long as it runs, so that nothing else can
// write the snapshot behind its back. idsync --once, --dry-run, --check and --apply-plan
// started beside it ask it to do the run instead (POST /api/run), and print what it
// answers as they would print their own run: a guard hold is accepted, and a plan
// reviewed, with the same commands whether or not a daemon is running.

// runRequest is a run asked of the daemon.
type runRequest struct {
	DryRun      bool `json:"dry_run,omitempty"`
	AcceptGuard bool `json:"accept_guard,omitempty"`
	FullRead    bool `json:"full_read,omitempty"`
	// Plan is --apply-plan's reviewed plan.
	Plan *planFile `json:"plan,omitempty"`
}

// runResponse is the daemon's answer: the run's report, and its error.
type runResponse struct {
	Report *dsync.Report `json:"report"`
	Error  string        `json:"error,omitempty"`
}

// maxRunRequest bounds a run request's body: a reviewed plan of 100,000 people is some
// 100 MB of JSON.
const maxRunRequest = 512 << 20

// runThroughDaemon is runOnce when a daemon holds the state file.
func runThroughDaemon(ctx context.Context, f *flags, cfg *Config, stdout, stderr io.Writer, log *slog.Logger) int {
	switch {
	case f.verify:
		fmt.Fprintln(stderr, "idsync: a running idsync holds the state file: it verifies on its own (verify_every); stop it to run --verify by hand")
		return exitFailed
	case f.pushGateway != "" || f.metricsFile != "":
		fmt.Fprintln(stderr, "idsync: a running idsync holds the state file and does the run: its /metrics has the run's figures (--push-gateway and --metrics-file are for runs of this process)")
		return exitFailed
	}
	req := runRequest{DryRun: f.dryRun, AcceptGuard: f.acceptGuard, FullRead: f.fullRead}
	if f.applyPlan != "" {
		p, err := readPlanFile(f.applyPlan)
		if err != nil {
			fmt.Fprintln(stderr, "idsync:", err)
			return exitUsage
		}
		req.Plan = p
	}
	token, err := cfg.statusToken()
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitUsage
	}
	body, err := json.Marshal(req)
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitFailed
	}
	log.Info("a running idsync holds the state file: asking it to do the run", "listen", cfg.Listen)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+cfg.Listen+"/api/run", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitFailed
	}
	hr.Header.Set("Content-Type", "application/json")
	if !token.Empty() {
		hr.Header.Set("Authorization", "Bearer "+token.Reveal())
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		fmt.Fprintf(stderr, "idsync: the state file is locked by another idsync, and asking the daemon at %s failed: %v\n", cfg.Listen, err)
		return exitFailed
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		fmt.Fprintf(stderr, "idsync: the state file is locked by a running idsync, which refused the run: %s: %s\n", resp.Status, bytes.TrimSpace(b))
		return exitFailed
	}
	var rr runResponse
	if err := json.NewDecoder(resp.Body).Decode(&rr); err != nil || rr.Report == nil {
		fmt.Fprintf(stderr, "idsync: the daemon's answer: %v\n", cmpOr(fmt.Sprint(err), "no report"))
		return exitFailed
	}
	var runErr error
	if rr.Error != "" {
		runErr = errors.New(rr.Error)
	}
	return printRun(f, rr.Report, runErr, stdout, stderr)
}

// apiRun does a run asked by an idsync command beside the daemon, once the run in
// progress, if any, has finished. It takes only JSON, which a web page of another
// origin cannot send without asking first (CORS), and, without status_token, only on a
// loopback listen address: anyone who can reach the address could otherwise accept a
// guard.
func (d *daemon) apiRun(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(w, "POST a JSON run request (Content-Type: application/json)", http.StatusUnsupportedMediaType)
		return
	}
	d.mu.Lock()
	open, listen := d.token.Empty(), d.cfg.Listen
	d.mu.Unlock()
	if open && !loopback(listen) {
		http.Error(w, "runs are asked of this idsync only with status_token set, since it listens beyond loopback", http.StatusForbidden)
		return
	}
	var req runRequest
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(5 * time.Minute)) // a plan can be large
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRunRequest)).Decode(&req); err != nil {
		http.Error(w, "run request: "+err.Error(), http.StatusBadRequest)
		return
	}
	// A run can outlast the server's write timeout.
	rc.SetWriteDeadline(time.Time{})
	for !d.running.TryLock() {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer d.running.Unlock()
	ro := dsync.RunOptions{DryRun: req.DryRun, AcceptGuard: req.AcceptGuard, FullRead: req.FullRead}
	if req.Plan != nil {
		ro.AcceptGuard, ro.Approve = true, approvePlan(req.Plan)
	}
	d.log.Info("a run asked by an idsync command", "dry_run", req.DryRun, "accept_guard", req.AcceptGuard,
		"full_read", req.FullRead, "apply_plan", req.Plan != nil, "from", r.RemoteAddr)
	rep, err := d.runLocked(d.ctx, ro, false)
	resp := runResponse{Report: rep}
	if err != nil {
		resp.Error = err.Error()
	}
	writeJSON(w, resp)
}

// loopback reports whether a listen address takes connections from this machine only.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
