// Command idsync keeps applications' user accounts and person profiles true to the
// directory: it reads people from sources, plans against its snapshot, holds
// suspicious plans, and applies the rest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/sources/csv"
	"github.com/idsync/idsync/sources/ldap"
	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

// Exit codes, as DESIGN.md sets them.
const (
	exitOK     = 0 // all applied, or nothing to do
	exitFailed = 1 // the run failed, or some operations failed
	exitUsage  = 2 // bad configuration or usage
	exitHeld   = 3 // a safety limit held the run
	exitDrift  = 4 // --check: the plan is not empty
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type flags struct {
	config      string
	once        bool
	dryRun      bool
	checkConfig bool
	acceptGuard bool
	listen      string
	logLevel    string
	logFormat   string
	pushGateway string
	metricsFile string
	verify      bool
	rebuild     bool
	fullRead    bool
	check       bool
	planFormat  string
	planOut     string
	applyPlan   string
	command     string // history, show or inspect
	commandArgs []string
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet("idsync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage:
  idsync [flags]                  run as a service: a run at start, then on the schedule
  idsync --once [flags]           one run (--dry-run, --check: plan only; --apply-plan FILE)
  idsync [flags] history          the runs kept
  idsync [flags] show RUN         one run: what it planned, applied and failed, by person
  idsync [flags] inspect ID       one person: the sources' view, the snapshot, the last operation and error
flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.config, "config", "./config.yaml", "YAML configuration `file`")
	fs.BoolVar(&f.once, "once", false, "run once, then exit")
	fs.BoolVar(&f.dryRun, "dry-run", false, "read and plan, print the plan, change nothing")
	fs.BoolVar(&f.check, "check", false, "as --dry-run, and exit 4 when the plan is not empty: a drift check for CI and monitoring")
	fs.StringVar(&f.planFormat, "plan-format", "text", "with --dry-run or --check: the plan as text, json or csv")
	fs.StringVar(&f.applyPlan, "apply-plan", "", "run once, applying exactly the plan in this `file` (from --dry-run --plan-format json): refused, with nothing applied, if the sources or the snapshot changed it since")
	fs.StringVar(&f.planOut, "plan-out", "", "with --dry-run or --check: write the plan to this `file` (mode 0600) instead of stdout")
	fs.BoolVar(&f.checkConfig, "check-config", false, "load and validate the configuration, print problems, exit")
	fs.BoolVar(&f.acceptGuard, "accept-guard", false, "apply this one run even though a safety limit tripped")
	fs.StringVar(&f.listen, "listen", "", "HTTP `address` for /metrics and health (service mode)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&f.rebuild, "rebuild-snapshot", false, "add to the snapshot every account the sinks say idsync owns (after a lost state file), then exit")
	fs.BoolVar(&f.fullRead, "full-read", false, "read incremental sources in full this run (after a bulk delete in the directory, say)")
	fs.BoolVar(&f.verify, "verify", false, "before the run, read back the accounts idsync manages and plan the repair of what was changed by hand")
	fs.StringVar(&f.pushGateway, "push-gateway", "", "with --once: push the run's metrics to this Pushgateway `URL`")
	fs.StringVar(&f.metricsFile, "metrics-file", "", "with --once: write the run's metrics to this `file` (node_exporter textfile format), atomically")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		f.command = fs.Arg(0)
		cmd, ok := commands[f.command]
		if !ok {
			return nil, fmt.Errorf("unexpected arguments: %s (commands: history, show RUN, inspect ID)", strings.Join(fs.Args(), " "))
		}
		// Flags may follow the command and its arguments.
		for rest := fs.Args()[1:]; ; rest = fs.Args()[1:] {
			if err := fs.Parse(rest); err != nil {
				return nil, err
			}
			if fs.NArg() == 0 {
				break
			}
			f.commandArgs = append(f.commandArgs, fs.Arg(0))
		}
		if len(f.commandArgs) != cmd.args {
			return nil, fmt.Errorf("usage: %s", cmd.usage)
		}
		if f.once || f.dryRun || f.check || f.applyPlan != "" || f.verify || f.rebuild || f.acceptGuard || f.fullRead {
			return nil, fmt.Errorf("%s reads what idsync did and changes nothing: it takes only --config and the log flags", f.command)
		}
	}
	if f.applyPlan != "" {
		if f.dryRun || f.check || f.verify || f.acceptGuard {
			return nil, errors.New("--apply-plan applies a reviewed plan as it is: not with --dry-run, --check, --verify or --accept-guard (the guards the plan shows tripped were reviewed with it)")
		}
		f.once = true
	}
	if f.check {
		if f.once {
			return nil, errors.New("--check plans and changes nothing; it means nothing with --once")
		}
		f.dryRun = true
	}
	if _, ok := planFormats[f.planFormat]; !ok {
		return nil, fmt.Errorf("--plan-format %q: text, json or csv", f.planFormat)
	}
	if (f.planOut != "" || f.planFormat != "text") && !f.dryRun {
		return nil, errors.New("--plan-out and --plan-format write a plan to review: use them with --dry-run or --check")
	}
	if f.acceptGuard && f.dryRun {
		return nil, errors.New("--accept-guard applies a run; it means nothing with --dry-run")
	}
	if f.rebuild && (f.once || f.dryRun || f.verify || f.acceptGuard || f.fullRead) {
		return nil, errors.New("--rebuild-snapshot runs alone: rebuild, review with --dry-run, then run")
	}
	if (f.pushGateway != "" || f.metricsFile != "") && !f.once && !f.dryRun {
		return nil, errors.New("--push-gateway and --metrics-file report one run: use them with --once (a daemon serves /metrics)")
	}
	return &f, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opt := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opt)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opt)), nil
	}
	return nil, fmt.Errorf("--log-format: %q: text or json", format)
}

// run is main without the process: testable, it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitUsage
	}
	log, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitUsage
	}
	cfg, err := LoadConfig(f.config)
	if err == nil {
		// Build everything once now, so that every problem is reported together.
		_, _, err = build(cfg, nil, log)
		warnReadableSecrets(cfg, log)
	}
	if err != nil {
		printConfigErrors(stderr, f.config, err)
		return exitUsage
	}
	if f.checkConfig {
		fmt.Fprintf(stdout, "%s: ok (%d sources, %d sinks)\n", f.config, len(cfg.Sources), len(cfg.Sinks))
		return exitOK
	}
	if f.rebuild {
		return rebuild(ctx, cfg, stdout, stderr, log)
	}
	if f.command != "" {
		return runCommand(ctx, f, cfg, stdout, stderr, log)
	}
	if f.once || f.dryRun {
		return runOnce(ctx, f, cfg, stdout, stderr, log)
	}
	return serve(ctx, f, cfg, stderr, log)
}

func printConfigErrors(w io.Writer, path string, err error) {
	fmt.Fprintf(w, "idsync: configuration %s:\n", path)
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, "  "+line)
	}
}

// runOnce is --once and --dry-run: one run, its plan or summary printed, its metrics
// pushed or written if asked.
func runOnce(ctx context.Context, f *flags, cfg *Config, stdout, stderr io.Writer, log *slog.Logger) int {
	reg, metrics := newRegistry(false)
	store, err := openStore(cfg, f.dryRun, log)
	if errors.Is(err, state.ErrLocked) {
		return runThroughDaemon(ctx, f, cfg, stdout, stderr, log)
	}
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitFailed
	}
	defer store.Close()
	// On a terminal, a run's progress is a bar on stderr rather than log lines.
	var bar *progressBar
	var progress func(dsync.Progress)
	if !f.dryRun && isTerminal(stderr) {
		bar = newProgressBar(stderr)
		progress = bar.update
	}
	eng, err := newEngine(cfg, store, metrics, log, progress)
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitUsage
	}
	if f.verify {
		if f.dryRun {
			fmt.Fprintln(stderr, "idsync: --verify records what it finds in the snapshot; run it without --dry-run")
			return exitUsage
		}
		drifts, err := eng.Verify(ctx)
		for _, d := range drifts {
			fmt.Fprintf(stdout, "drift: sink %s: %s: %s\n", d.Sink, d.ID, driftText(d))
		}
		if err != nil {
			fmt.Fprintln(stderr, "idsync:", err)
			return exitFailed
		}
	}
	ro := dsync.RunOptions{DryRun: f.dryRun, AcceptGuard: f.acceptGuard, FullRead: f.fullRead}
	if f.applyPlan != "" {
		reviewed, err := readPlanFile(f.applyPlan)
		if err != nil {
			fmt.Fprintln(stderr, "idsync:", err)
			return exitUsage
		}
		ro.AcceptGuard, ro.Approve = true, approvePlan(reviewed)
	}
	rep, err := eng.Run(ctx, ro)
	if bar != nil {
		bar.finish()
	}
	code := printRun(f, rep, err, stdout, stderr)
	if rerr := reportMetrics(ctx, f, reg); rerr != nil {
		fmt.Fprintln(stderr, "idsync:", rerr)
		if code == exitOK {
			code = exitFailed
		}
	}
	return code
}

// printRun prints a run's summary, or a dry run's plan as asked, and returns the exit
// code.
func printRun(f *flags, rep *dsync.Report, err error, stdout, stderr io.Writer) int {
	switch {
	case !f.dryRun || err != nil:
		printSummary(stdout, rep)
	case f.planOut != "":
		if werr := writePlanFile(f.planOut, f.planFormat, rep); werr != nil {
			err = werr
			fmt.Fprintln(stderr, "idsync:", werr)
		} else {
			fmt.Fprintf(stdout, "%s\nplan written to %s (%s)\n", planSummary(rep), f.planOut, f.planFormat)
		}
	default:
		if werr := planFormats[f.planFormat](stdout, rep); werr != nil {
			err = werr
			fmt.Fprintln(stderr, "idsync: writing the plan:", werr)
		}
	}
	code := exitCode(rep, err)
	if f.check && code != exitFailed && planned(rep) {
		code = exitDrift
	}
	return code
}

// rebuild is --rebuild-snapshot: the snapshot gains every account the sinks say idsync
// owns; nothing in any sink changes.
func rebuild(ctx context.Context, cfg *Config, stdout, stderr io.Writer, log *slog.Logger) int {
	store, err := openStore(cfg, false, log)
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitFailed
	}
	defer store.Close()
	eng, err := newEngine(cfg, store, nil, log, nil)
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitUsage
	}
	counts, err := eng.Rebuild(ctx)
	for _, c := range counts {
		fmt.Fprintf(stdout, "sink %s: %d accounts carry idsync's mark, %d added to the snapshot\n", c.Sink, c.Found, c.Added)
	}
	if err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitFailed
	}
	fmt.Fprintln(stdout, "review the next run with --dry-run")
	return exitOK
}

// planned reports whether any sink's plan has an operation.
func planned(rep *dsync.Report) bool {
	for _, p := range rep.Plans {
		if !p.Empty() {
			return true
		}
	}
	return false
}

func exitCode(rep *dsync.Report, err error) int {
	switch {
	case err != nil:
		return exitFailed
	case rep.Held():
		return exitHeld
	case rep.Summary.Result == dsync.ResultPartial:
		return exitFailed
	}
	return exitOK
}

// newEngine builds an engine over store from cfg. progress, when set, receives the
// apply phase's progress instead of the log (a terminal's bar).
func newEngine(cfg *Config, store dsync.Store, metrics *dsync.Metrics, log *slog.Logger, progress func(dsync.Progress)) (*dsync.Engine, error) {
	sources, sinks, err := build(cfg, metrics, log)
	if err != nil {
		return nil, err
	}
	return dsync.New(sources, sinks, store, dsync.Options{
		Safety:       cfg.Safety.resolve(dsync.DefaultSafety),
		DrainTimeout: cfg.DrainTimeout,
		Metrics:      metrics,
		Progress:     progress,
	}, log), nil
}

// build makes every source and sink, so that a configuration is checked whole: key
// files are read, nothing is dialled.
func build(cfg *Config, metrics *dsync.Metrics, log *slog.Logger) ([]dsync.SourceSpec, []dsync.SinkSpec, error) {
	var (
		sources []dsync.SourceSpec
		sinks   []dsync.SinkSpec
		errs    []error
	)
	base := cfg.Safety.resolve(dsync.DefaultSafety)
	invite, err := inviters(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	for i, sc := range cfg.Sources {
		var (
			src dsync.Source
			err error
		)
		slog := log.With("source", sc.Name)
		switch {
		case sc.CSV != nil:
			src, err = csv.New(sc.Name, *sc.CSV, slog)
			err = prefix(fmt.Sprintf("sources[%d].csv", i), err)
		case sc.LDAP != nil:
			src, err = ldap.New(sc.Name, *sc.LDAP, slog)
			err = prefix(fmt.Sprintf("sources[%d].ldap", i), err)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sources = append(sources, dsync.SourceSpec{Name: sc.Name, Source: src})
	}
	for i, sc := range cfg.Sinks {
		var obs httpapi.Observer
		if metrics != nil {
			obs = metrics.SinkObserver(sc.Name)
		}
		slog := log.With("sink", sc.Name)
		k := sc.kinds()[0] // Validate made sure there is one
		sink, err := k.build(obs, slog)
		err = prefix(fmt.Sprintf("sinks[%d].%s", i, k.name), err)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sinks = append(sinks, dsync.SinkSpec{
			Name: sc.Name, Sink: sink, Concurrency: sink.Concurrency(), Safety: sc.Safety.resolve(base),
			BreakAfter: sc.breakAfter(), DeleteAfter: sc.DeleteAfter, Inviter: invite[sc.Name],
		})
	}
	return sources, sinks, errors.Join(errs...)
}

type closingStore interface {
	dsync.Store
	Close() error
}

// openStore opens the state file: read-only for a dry run, which on a first run
// (no file yet) plans against an empty snapshot and creates no file, and after an
// upgrade of idsync (a file of an older schema) against a migrated copy.
func openStore(cfg *Config, dryRun bool, log *slog.Logger) (closingStore, error) {
	opts := state.Options{LockTimeout: cfg.LockTimeout, ReadOnly: dryRun}
	if _, err := os.Stat(cfg.StatePath); dryRun && errors.Is(err, os.ErrNotExist) {
		return openScratch(cfg.StatePath, "", opts)
	}
	st, err := state.Open(cfg.StatePath, opts)
	if dryRun && errors.Is(err, state.ErrOutdated) {
		log.Info("the state file is of an older idsync: planning against a migrated copy; the next run migrates the file itself")
		return openScratch(cfg.StatePath, cfg.StatePath, opts)
	}
	return st, err
}

func prefix(path string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", path, err)
}

// warnReadableSecrets warns of secret files that anyone on the machine can read.
func warnReadableSecrets(cfg *Config, log *slog.Logger) {
	for _, p := range cfg.secretFiles() {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o004 != 0 {
			log.Warn("secret file is readable by every user of this machine: chmod o-r it", "path", p, "mode", fi.Mode().Perm().String())
		}
	}
}

func driftText(d dsync.Drift) string {
	switch {
	case d.Gone:
		return "the account was deleted"
	case d.Active && d.Fields != 0:
		return "blocked or unblocked, and changed: " + d.Fields.String()
	case d.Active:
		return "blocked or unblocked outside idsync"
	}
	return "changed: " + d.Fields.String()
}
