package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"

	"github.com/idsync/idsync/internal/secret"
	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

// daemon is idsync as a service: a run at start, then on the schedule, never two at
// once; SIGHUP reloads the configuration; /metrics, /healthz, /readyz and /status.
type daemon struct {
	path    string // the configuration file, read again on reload
	log     *slog.Logger
	store   *state.Store
	metrics *dsync.Metrics
	cron    *cron.Cron

	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge

	running sync.Mutex // held by the run in progress

	mu           sync.Mutex // guards what follows
	cfg          *Config
	eng          *dsync.Engine
	entry        cron.EntryID
	failingSince time.Time // when the current streak of failed runs began
	inRun        bool
	lastVerify   time.Time
	token        secret.Secret   // the status page's and /api/'s; empty: open
	ctx          context.Context // the daemon's: runs asked over HTTP end with it, not with their request
}

// serve runs the daemon until ctx ends, then stops scheduling, lets the run in
// progress finish what it has in flight, and exits 0.
func serve(ctx context.Context, f *flags, cfg *Config, stderr io.Writer, log *slog.Logger) int {
	// SIGHUP first: once the daemon answers on its address, a reload never kills it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	reg, metrics := newRegistry(true)
	d := &daemon{path: f.config, log: log, metrics: metrics, cfg: cfg,
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idsync_config_last_reload_successful", Help: "Whether the last configuration (re)load succeeded.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idsync_config_last_reload_success_timestamp_seconds", Help: "When the configuration was last (re)loaded successfully.",
		}),
	}
	d.ctx = ctx
	reg.MustRegister(d.reloadOK, d.reloadTime)
	d.reloadOK.Set(1)
	d.reloadTime.SetToCurrentTime()

	store, err := state.Open(cfg.StatePath, state.Options{LockTimeout: cfg.LockTimeout})
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitFailed
	}
	defer store.Close()
	d.store = store
	if d.token, err = cfg.statusToken(); err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitUsage
	}
	if d.eng, err = newEngine(cfg, store, metrics, log, nil); err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitUsage
	}

	// The schedule is set before the HTTP server starts: /status reads it.
	d.cron = cron.New(cron.WithParser(cronParser))
	if d.entry, err = d.cron.AddFunc(cfg.Schedule, func() { d.tick(ctx) }); err != nil {
		fmt.Fprintln(stderr, "idsync: schedule:", err)
		return exitUsage
	}

	addr := cmpOr(f.listen, cfg.Listen)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(stderr, "idsync: listen:", err)
		return exitFailed
	}
	srv := &http.Server{
		Handler:           d.routes(reg),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	log.Info("idsync started", "listen", ln.Addr().String(), "schedule", cfg.Schedule, "state", cfg.StatePath)

	d.cron.Start()
	go d.tick(ctx) // the first run, at start

wait:
	for {
		select {
		case <-hup:
			d.reload(ctx)
		case <-ctx.Done():
			break wait
		}
	}

	log.Info("stopping: no new run; the run in progress finishes what it has in flight")
	<-d.cron.Stop().Done()
	waited := make(chan struct{})
	go func() { d.running.Lock(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(cfg.DrainTimeout + 10*time.Second):
		log.Error("the run in progress did not stop in time")
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	log.Info("stopped")
	return exitOK
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tick is one scheduled run. A run still in progress makes it a no-op: runs never
// overlap.
func (d *daemon) tick(ctx context.Context) {
	if !d.running.TryLock() {
		d.log.Warn("the previous run is still running: this one is skipped")
		return
	}
	defer d.running.Unlock()
	d.runLocked(ctx, dsync.RunOptions{}, true)
}

// runLocked does one run; the caller holds d.running. A scheduled run first verifies
// when verify_every is due. A panic is recovered, counted and logged.
func (d *daemon) runLocked(ctx context.Context, ro dsync.RunOptions, scheduled bool) (rep *dsync.Report, err error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	d.mu.Lock()
	eng := d.eng
	d.inRun = true
	verify := scheduled && d.cfg.VerifyEvery > 0 && time.Since(d.lastVerify) >= d.cfg.VerifyEvery
	d.mu.Unlock()
	failed := true
	defer func() {
		if r := recover(); r != nil {
			d.metrics.Panicked()
			d.log.Error("run panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("the run panicked: %v", r)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.inRun = false
		switch {
		case ro.DryRun:
		case !failed:
			d.failingSince = time.Time{}
		case d.failingSince.IsZero():
			d.failingSince = time.Now()
		}
	}()
	if verify {
		if _, err := eng.Verify(ctx); err != nil {
			d.log.Error("verification failed: the run goes on without it", "err", err)
		} else {
			d.mu.Lock()
			d.lastVerify = time.Now()
			d.mu.Unlock()
		}
	}
	rep, err = eng.Run(ctx, ro)
	failed = err != nil
	return rep, err
}

// reload builds a complete new engine from the configuration file and swaps it in,
// or keeps the running one if anything is wrong.
func (d *daemon) reload(ctx context.Context) {
	cfg, err := LoadConfig(d.path)
	var (
		eng   *dsync.Engine
		token secret.Secret
	)
	if err == nil {
		eng, err = newEngine(cfg, d.store, d.metrics, d.log, nil)
	}
	if err == nil {
		token, err = cfg.statusToken()
	}
	if err != nil {
		d.reloadOK.Set(0)
		d.log.Error("reload failed: the previous configuration stays in force", "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cfg.StatePath != d.cfg.StatePath || cfg.Listen != d.cfg.Listen || cfg.LockTimeout != d.cfg.LockTimeout {
		d.log.Warn("state_path, listen and lock_timeout take effect at the next start")
	}
	if cfg.Schedule != d.cfg.Schedule {
		entry, err := d.cron.AddFunc(cfg.Schedule, func() { d.tick(ctx) })
		if err != nil { // validated already; kept for safety
			d.reloadOK.Set(0)
			d.log.Error("reload failed: the previous configuration stays in force", "err", err)
			return
		}
		d.cron.Remove(d.entry)
		d.entry = entry
	}
	d.cfg, d.eng, d.token = cfg, eng, token
	d.reloadOK.Set(1)
	d.reloadTime.SetToCurrentTime()
	d.log.Info("configuration reloaded", "sources", len(cfg.Sources), "sinks", len(cfg.Sinks), "schedule", cfg.Schedule)
}

func (d *daemon) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 10 * time.Second}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("GET /{$}", d.guarded(d.page))
	mux.Handle("GET /status", d.guarded(d.status))
	mux.Handle("GET /api/runs", d.guarded(d.apiRuns))
	mux.Handle("GET /api/identities/{id}", d.guarded(d.apiIdentity))
	mux.Handle("POST /api/run", d.guarded(d.apiRun)) // its own, larger, body limit
	small := http.MaxBytesHandler(mux, 1<<10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/run" {
			mux.ServeHTTP(w, r)
			return
		}
		small.ServeHTTP(w, r)
	})
}

// guarded asks for the status token, when one is configured: as a bearer token, or as
// ?token= (which a browser keeps in a cookie for the pages it then follows).
func (d *daemon) guarded(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		token := d.token
		d.mu.Unlock()
		if !token.Empty() && !tokenGiven(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="idsync"`)
			http.Error(w, "a token is needed: status_token is set (Authorization: Bearer TOKEN, or ?token=TOKEN)", http.StatusUnauthorized)
			return
		}
		if q := r.URL.Query().Get("token"); q != "" && !token.Empty() {
			http.SetCookie(w, &http.Cookie{Name: "idsync_token", Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		}
		h(w, r)
	})
}

func tokenGiven(r *http.Request, token secret.Secret) bool {
	want := []byte(token.Reveal())
	var given []string
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		given = append(given, auth)
	}
	if q := r.URL.Query().Get("token"); q != "" {
		given = append(given, q)
	}
	if c, err := r.Cookie("idsync_token"); err == nil {
		given = append(given, c.Value)
	}
	for _, g := range given {
		if subtle.ConstantTimeCompare([]byte(g), want) == 1 {
			return true
		}
	}
	return false
}

// apiRuns is the run history, newest first, as idsync history reads it.
func (d *daemon) apiRuns(w http.ResponseWriter, _ *http.Request) {
	runs, err := d.store.Runs(0)
	if err != nil {
		http.Error(w, "run history: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, runs)
}

// apiIdentity is one identity's snapshot entries, by sink, as idsync inspect reads them.
func (d *daemon) apiIdentity(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	sinks := make([]string, len(d.cfg.Sinks))
	for i, s := range d.cfg.Sinks {
		sinks[i] = s.Name
	}
	d.mu.Unlock()
	entries, err := storeRecords{store: d.store, sinks: sinks}.Entries(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, entries)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// readyz is ready while runs have not been failing for longer than unready_after.
func (d *daemon) readyz(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	since, limit := d.failingSince, d.cfg.UnreadyAfter
	d.mu.Unlock()
	if !since.IsZero() && time.Since(since) > limit {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: runs have been failing since %s\n", since.UTC().Format(time.RFC3339))
		return
	}
	fmt.Fprintln(w, "ready")
}

// statusPage is /status: the schedule, whether a run is in progress, and the last runs
// with their counts and errors. It holds nothing secret: ids, counts and messages.
type statusPage struct {
	Schedule     string             `json:"schedule"`
	NextRun      time.Time          `json:"next_run,omitzero"`
	Running      bool               `json:"running"`
	FailingSince time.Time          `json:"failing_since,omitzero"`
	Runs         []dsync.RunSummary `json:"runs"`
}

func (d *daemon) status(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	page := statusPage{Schedule: d.cfg.Schedule, NextRun: d.cron.Entry(d.entry).Next, Running: d.inRun, FailingSince: d.failingSince}
	d.mu.Unlock()
	runs, err := d.store.Runs(10)
	if err != nil {
		http.Error(w, "run history: "+err.Error(), http.StatusInternalServerError)
		return
	}
	page.Runs = runs
	writeJSON(w, page)
}
