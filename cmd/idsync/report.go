package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

// opLine is one operation: the identity, and for updates the fields that change.
func opLine(op dsync.Op) string {
	s := op.ID
	if op.Want.Username != "" {
		s += " (" + op.Want.Username + ")"
	}
	if op.Fields != 0 {
		s += " [" + op.Fields.String() + "]"
	}
	return s
}

func countList(c map[dsync.OpKind]int) string {
	var parts []string
	for _, k := range dsync.OpKinds {
		if c[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func printProblemsAndGuards(w io.Writer, rep *dsync.Report) {
	if len(rep.Unanchored) > 0 {
		fmt.Fprintf(w, "rows without an id (%d): nobody is disabled for being absent while they stand:\n", len(rep.Unanchored))
		for _, p := range rep.Unanchored {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	writeGuards(w, "", rep.Summary.Guards, rep.Summary.Accepted,
		"HELD: nothing is applied while these hold; review the plan with --dry-run, then run once with --accept-guard:")
}

// writeGuards writes a run's guard trips under a "guards:" line, indented by indent;
// held is what that line says when they hold the run.
func writeGuards(w io.Writer, indent string, guards []dsync.GuardTrip, accepted bool, held string) {
	switch {
	case len(guards) == 0:
		fmt.Fprintln(w, indent+"guards: none tripped")
	case accepted:
		fmt.Fprintln(w, indent+"guards: tripped, and accepted for this run (--accept-guard):")
	default:
		fmt.Fprintln(w, indent+"guards: "+held)
	}
	for _, g := range guards {
		fmt.Fprintf(w, "%s  %s\n", indent, g)
	}
}

// printSummary writes what a run did.
func printSummary(w io.Writer, rep *dsync.Report) {
	sum := &rep.Summary
	if len(sum.Sinks) == 0 && sum.Error != "" {
		fmt.Fprintf(w, "run failed: %s\n", sum.Error)
		return
	}
	for _, s := range sum.Sinks {
		writeSinkRun(w, "", "", s)
		if inv := s.Invitations; len(inv) > 0 {
			fmt.Fprintf(w, "  invitations: %d sent, %d not delivered (tried again next run), %d expired undelivered (reset those passwords by hand: idsync inspect ID)\n",
				inv["sent"], inv["failed"], inv["expired"])
		}
	}
	for _, p := range rep.Plans {
		if len(p.Held) == 0 {
			continue
		}
		fmt.Fprintf(w, "sink %s: %d identities held (present but invalid), left as they are:\n", p.Sink, len(p.Held))
		for _, h := range p.Held {
			fmt.Fprintf(w, "  %s: %s\n", h.ID, strings.Join(h.Reason, "; "))
		}
	}
	if len(sum.Guards) > 0 || len(rep.Unanchored) > 0 {
		printProblemsAndGuards(w, rep)
	}
	if sum.Error != "" {
		fmt.Fprintf(w, "run failed: %s\n", sum.Error)
	}
}

// writeSinkRun writes one sink's line of a run (after before, which is "" or the
// planned counts), what failed and was not attempted, and every error below it.
func writeSinkRun(w io.Writer, indent, before string, s dsync.SinkSummary) {
	fmt.Fprintf(w, "%ssink %s: %sapplied%s", indent, s.Sink, before, countOrNone(s.Applied))
	if len(s.Failed) > 0 {
		fmt.Fprintf(w, "; failed%s", countList(s.Failed))
	}
	if len(s.Skipped) > 0 {
		fmt.Fprintf(w, "; not attempted%s", countList(s.Skipped))
	}
	fmt.Fprintln(w)
	for _, e := range s.Errors {
		fmt.Fprintf(w, "%s  %s %s: %s\n", indent, e.Kind, e.ID, e.Error)
	}
}

func countOrNone(c map[dsync.OpKind]int) string {
	if s := countList(c); s != "" {
		return s
	}
	return " nothing"
}

// scratchStore is a store in a temporary folder, removed on Close. A first dry run
// plans against an empty one and leaves no file behind; a dry run after an upgrade,
// against a copy of the state file, which the copy's open migrates, since a dry run
// never writes the real file.
type scratchStore struct {
	*state.Store
	dir string
}

// openScratch opens a scratch store: empty, or a copy of the file at from.
func openScratch(path, from string, opt state.Options) (*scratchStore, error) {
	dir, err := os.MkdirTemp("", "idsync-dry-run-")
	if err != nil {
		return nil, err
	}
	scratch := filepath.Join(dir, filepath.Base(path))
	if from != "" {
		if err := copyFile(scratch, from); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	opt.ReadOnly = false
	s, err := state.Open(scratch, opt)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &scratchStore{Store: s, dir: dir}, nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (s *scratchStore) Close() error {
	err := s.Store.Close()
	os.RemoveAll(s.dir)
	return err
}
