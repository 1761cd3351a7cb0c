package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/idsync/idsync/internal/secret"
	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

// The commands that read what idsync did: history, show RUN, inspect ID.
var commands = map[string]struct {
	args  int
	usage string
	run   func(ctx context.Context, cfg *Config, rec records, args []string, w io.Writer, log *slog.Logger) error
}{
	"history": {0, "idsync history", historyCommand},
	"show":    {1, "idsync show RUN", showCommand},
	"inspect": {1, "idsync inspect ID", inspectCommand},
}

// records is the run history and the snapshot, read from the state file or, when a
// daemon holds the file's lock, from the daemon.
type records interface {
	// Runs returns the run summaries kept, newest first.
	Runs() ([]dsync.RunSummary, error)
	// Entries returns the snapshot entries of identity id, by sink.
	Entries(id string) (map[string]dsync.Entry, error)
}

// storeRecords reads the state file itself.
type storeRecords struct {
	store *state.Store
	sinks []string
}

func (r storeRecords) Runs() ([]dsync.RunSummary, error) { return r.store.Runs(0) }

func (r storeRecords) Entries(id string) (map[string]dsync.Entry, error) {
	out := map[string]dsync.Entry{}
	for _, sink := range r.sinks {
		e, found, err := r.store.Entry(sink, id)
		if err != nil {
			return nil, err
		}
		if found {
			out[sink] = e
		}
	}
	return out, nil
}

// daemonRecords asks the daemon, over its /api/ endpoints.
type daemonRecords struct {
	base  string // http://listen
	token secret.Secret
	http  *http.Client
}

func (r daemonRecords) get(path string, v any) error {
	req, err := http.NewRequest(http.MethodGet, r.base+path, nil)
	if err != nil {
		return err
	}
	if !r.token.Empty() {
		req.Header.Set("Authorization", "Bearer "+r.token.Reveal())
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("the state file is locked by a running idsync, and asking it failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("the state file is locked by a running idsync, which answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (r daemonRecords) Runs() ([]dsync.RunSummary, error) {
	var runs []dsync.RunSummary
	return runs, r.get("/api/runs", &runs)
}

func (r daemonRecords) Entries(id string) (map[string]dsync.Entry, error) {
	var out map[string]dsync.Entry
	return out, r.get("/api/identities/"+url.PathEscape(id), &out)
}

// runCommand runs one of the commands: on the state file, read-only, or, while a
// daemon holds its lock, through the daemon at listen.
func runCommand(ctx context.Context, f *flags, cfg *Config, stdout, stderr io.Writer, log *slog.Logger) int {
	cmd := commands[f.command]
	var rec records
	store, err := state.Open(cfg.StatePath, state.Options{ReadOnly: true, LockTimeout: min(cfg.LockTimeout, time.Second)})
	switch {
	case errors.Is(err, state.ErrLocked):
		token, terr := cfg.statusToken()
		if terr != nil {
			fmt.Fprintln(stderr, "idsync:", terr)
			return exitUsage
		}
		log.Debug("the state file is locked: asking the daemon", "listen", cfg.Listen)
		rec = daemonRecords{base: "http://" + cfg.Listen, token: token, http: &http.Client{Timeout: 30 * time.Second}}
	case err != nil:
		fmt.Fprintln(stderr, "idsync:", err)
		return exitFailed
	default:
		defer store.Close()
		var sinks []string
		for _, s := range cfg.Sinks {
			sinks = append(sinks, s.Name)
		}
		rec = storeRecords{store: store, sinks: sinks}
	}
	if err := cmd.run(ctx, cfg, rec, f.commandArgs, stdout, log); err != nil {
		fmt.Fprintln(stderr, "idsync:", err)
		return exitFailed
	}
	return exitOK
}

// historyCommand lists the runs kept, newest first, one a line.
func historyCommand(_ context.Context, _ *Config, rec records, _ []string, w io.Writer, _ *slog.Logger) error {
	runs, err := rec.Runs()
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		fmt.Fprintln(w, "no runs recorded yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED (UTC)\tTOOK\tRESULT\tIDENTITIES\tHELD\tAPPLIED\tFAILED\tGUARDS")
	for _, r := range runs {
		applied, failed := runTotals(&r)
		guards := ""
		if len(r.Guards) > 0 {
			guards = strconv.Itoa(len(r.Guards))
			if r.Accepted {
				guards += " accepted"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.ID, r.Started.UTC().Format(time.DateTime),
			r.Finished.Sub(r.Started).Round(time.Millisecond), r.Result, r.Identities, r.Held,
			bareCounts(applied), bareCounts(failed), guards)
	}
	return tw.Flush()
}

// runTotals adds up a run's applied and failed operations over its sinks.
func runTotals(r *dsync.RunSummary) (applied, failed map[dsync.OpKind]int) {
	applied, failed = map[dsync.OpKind]int{}, map[dsync.OpKind]int{}
	for _, s := range r.Sinks {
		for k, n := range s.Applied {
			applied[k] += n
		}
		for k, n := range s.Failed {
			failed[k] += n
		}
	}
	return applied, failed
}

// bareCounts is "create_user 4, update_user 1", or "-".
func bareCounts(c map[dsync.OpKind]int) string {
	s := strings.TrimSuffix(strings.TrimPrefix(countList(c), " ("), ")")
	return cmpOr(s, "-")
}

// showCommand prints one run whole: its sources, guards, and per sink what was
// planned, applied, failed and not attempted, with every error per identity.
func showCommand(_ context.Context, _ *Config, rec records, args []string, w io.Writer, _ *slog.Logger) error {
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return fmt.Errorf("show: %q is not a run number (idsync history lists them)", args[0])
	}
	runs, err := rec.Runs()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(runs, func(r dsync.RunSummary) bool { return r.ID == id })
	if i < 0 {
		return fmt.Errorf("show: no run %d: the history keeps the last %d runs (idsync history lists them)", id, len(runs))
	}
	r := runs[i]
	fmt.Fprintf(w, "run %d: %s\n", r.ID, r.Result)
	fmt.Fprintf(w, "  started %s, took %s\n", r.Started.UTC().Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Millisecond))
	read := "full read"
	if r.Delta {
		read = "changes since the last read only (incremental): nobody disabled"
	}
	for _, name := range slices.Sorted(maps.Keys(r.Sources)) {
		fmt.Fprintf(w, "  source %s: %d identities, %s\n", name, r.Sources[name], read)
	}
	fmt.Fprintf(w, "  identities: %d valid, %d held (present but invalid)\n", r.Identities, r.Held)
	writeGuards(w, "  ", r.Guards, r.Accepted, "HELD, nothing applied:")
	for _, s := range r.Sinks {
		writeSinkRun(w, "  ", "planned"+countOrNone(s.Planned)+"; ", s)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	return nil
}

// inspectCommand shows one identity: what each source says of it now, and per sink
// what the snapshot holds (the sink's ids, what idsync last applied, its last operation
// and last error), then the errors the run history holds for it.
func inspectCommand(ctx context.Context, cfg *Config, rec records, args []string, w io.Writer, log *slog.Logger) error {
	id := args[0]
	sources, _, err := build(cfg, nil, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "identity %s\n", id)
	fmt.Fprintln(w, "sources, read now:")
	listed := false
	for _, s := range sources {
		ids, err := s.Source.Read(ctx)
		if err != nil {
			fmt.Fprintf(w, "  %s: could not be read: %v\n", s.Name, err)
			continue
		}
		for i := range ids {
			if ids[i].ID != id {
				continue
			}
			listed = true
			fmt.Fprintf(w, "  %s (%s): %s\n", s.Name, ids[i].Origin, identityText(&ids[i]))
			for _, p := range ids[i].Problems {
				fmt.Fprintf(w, "    problem: %s\n", p)
			}
		}
	}
	if !listed {
		fmt.Fprintln(w, "  not listed by any source: a full run disables the accounts idsync made for this person")
	}
	entries, err := rec.Entries(id)
	if err != nil {
		return err
	}
	for _, s := range cfg.Sinks {
		e, ok := entries[s.Name]
		fmt.Fprintf(w, "sink %s:\n", s.Name)
		if !ok {
			fmt.Fprintln(w, "  no snapshot entry: idsync has made or adopted no account for this person here")
			continue
		}
		how := "created by idsync"
		if e.Adopted {
			how = "adopted (found, not made, by idsync)"
		}
		fmt.Fprintf(w, "  account %s, profile %s, %s\n", cmpOr(e.UserID, "(none yet)"), cmpOr(e.ProfileRef, "(none)"), how)
		switch {
		case e.User == nil:
			fmt.Fprintln(w, "  state: no account yet")
		case e.User.Active:
			fmt.Fprintln(w, "  state: active")
		case !e.DisabledAt.IsZero():
			fmt.Fprintf(w, "  state: disabled by idsync on %s\n", e.DisabledAt.UTC().Format(time.RFC3339))
		default:
			fmt.Fprintln(w, "  state: disabled")
		}
		if e.User != nil {
			fmt.Fprintf(w, "  account as last applied: %s\n", identityText(e.User))
		}
		if e.Profile != nil {
			fmt.Fprintf(w, "  profile as last applied: %s\n", identityText(e.Profile))
		}
		if e.LastOp != 0 {
			fmt.Fprintf(w, "  last operation: %s on %s\n", e.LastOp, e.LastOpAt.UTC().Format(time.RFC3339))
		}
		if e.LastError != "" {
			fmt.Fprintf(w, "  last error: %s (on %s; %d failed in a row)\n", e.LastError, e.LastErrorAt.UTC().Format(time.RFC3339), e.Failures)
		}
		if inv := e.Invite; inv != nil { // never the link itself
			fmt.Fprintf(w, "  invitation: not yet delivered, %d attempts", inv.Attempts)
			if !inv.Expires.IsZero() {
				fmt.Fprintf(w, "; its link works until %s", inv.Expires.UTC().Format(time.RFC3339))
			}
			if inv.LastError != "" {
				fmt.Fprintf(w, "; last error: %s", inv.LastError)
			}
			fmt.Fprintln(w)
		}
		if !e.InviteLapsed.IsZero() {
			fmt.Fprintf(w, "  invitation: its link expired undelivered on %s: reset this person's password by hand\n", e.InviteLapsed.UTC().Format(time.RFC3339))
		}
	}
	runs, err := rec.Runs()
	if err != nil {
		return err
	}
	var errs []string
	for _, r := range runs {
		for _, s := range r.Sinks {
			for _, e := range s.Errors {
				if e.ID == id {
					errs = append(errs, fmt.Sprintf("  run %d (%s), sink %s, %s: %s", r.ID, r.Started.UTC().Format(time.DateTime), s.Sink, e.Kind, e.Error))
				}
			}
		}
	}
	fmt.Fprintf(w, "errors in the last %d runs: %d\n", len(runs), len(errs))
	for _, e := range errs {
		fmt.Fprintln(w, e)
	}
	return nil
}

// identityText is an identity on one line.
func identityText(id *dsync.Identity) string {
	parts := []string{"active " + strconv.FormatBool(id.Active)}
	for _, f := range []struct{ name, v string }{{"username", id.Username}, {"email", id.Email},
		{"first_name", id.FirstName}, {"last_name", id.LastName}, {"display_name", id.DisplayName}} {
		if f.v != "" {
			parts = append(parts, fmt.Sprintf("%s %q", f.name, f.v))
		}
	}
	if len(id.Groups) > 0 {
		parts = append(parts, "groups "+display(id.Groups))
	}
	for _, a := range id.Attributes.Ordered() {
		parts = append(parts, a.Name+" "+display(a.Values))
	}
	return strings.Join(parts, ", ")
}
