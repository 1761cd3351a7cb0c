package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	dsync "github.com/idsync/idsync/sync"
)

// readPlanFile reads a plan written by --plan-format json.
func readPlanFile(path string) (*planFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--apply-plan: %w", err)
	}
	var pf planFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return nil, fmt.Errorf("--apply-plan %s: not a plan written by --plan-format json: %w", path, err)
	}
	if pf.Format != planFormat {
		return nil, fmt.Errorf("--apply-plan %s: format %q, want %q (write it with --dry-run --plan-format json)", path, pf.Format, planFormat)
	}
	return &pf, nil
}

// errPlanChanged is what --apply-plan refuses with.
var errPlanChanged = errors.New("the plan is no longer the one reviewed: nothing was applied")

// approvePlan returns the check --apply-plan makes before anything is written: the
// run's plan, worked out afresh from the sources and the snapshot, must be the reviewed
// one, operation for operation (each one's kind, identity, ids, fields and values, the
// values idsync last applied included), and so must the guards that tripped. Guards the
// reviewer saw trip are accepted; any other difference refuses the run and says what
// changed.
func approvePlan(reviewed *planFile) func(*dsync.Report) error {
	return func(rep *dsync.Report) error {
		now := newPlanFile(rep)
		var diffs []string
		sinks := map[string]planFileSink{}
		for _, s := range reviewed.Sinks {
			sinks[s.Sink] = s
		}
		for _, s := range now.Sinks {
			old, ok := sinks[s.Sink]
			delete(sinks, s.Sink)
			if !ok {
				old = planFileSink{Sink: s.Sink}
				if len(s.Operations) > 0 {
					diffs = append(diffs, fmt.Sprintf("sink %s is not in the reviewed plan", s.Sink))
				}
			}
			diffs = append(diffs, diffOps(s.Sink, old.Operations, s.Operations)...)
		}
		for name, s := range sinks {
			if len(s.Operations) > 0 {
				diffs = append(diffs, fmt.Sprintf("sink %s of the reviewed plan is no longer configured", name))
			}
		}
		if !sameJSON(reviewed.Guards, now.Guards) {
			diffs = append(diffs, fmt.Sprintf("guards: reviewed %s, now %s", guardList(reviewed.Guards), guardList(now.Guards)))
		}
		if len(diffs) == 0 {
			return nil
		}
		const shown = 20
		more := ""
		if len(diffs) > shown {
			more = fmt.Sprintf("\n  ... and %d more", len(diffs)-shown)
			diffs = diffs[:shown]
		}
		return fmt.Errorf("%w; review a new one with --dry-run --plan-format json --plan-out FILE:\n  %s%s", errPlanChanged, strings.Join(diffs, "\n  "), more)
	}
}

// diffOps compares one sink's operations, keyed by kind and identity.
func diffOps(sink string, reviewed, now []planFileOp) []string {
	key := func(op planFileOp) string { return op.Kind.String() + " " + op.ID }
	was := map[string]planFileOp{}
	for _, op := range reviewed {
		was[key(op)] = op
	}
	var diffs []string
	for _, op := range now {
		k := key(op)
		old, ok := was[k]
		delete(was, k)
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("sink %s: %s: new since the review", sink, k))
		case !sameJSON(old, op):
			diffs = append(diffs, fmt.Sprintf("sink %s: %s: %s", sink, k, whatChanged(old, op)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(was)) {
		diffs = append(diffs, fmt.Sprintf("sink %s: %s: no longer planned", sink, k))
	}
	return diffs
}

// whatChanged names the parts of an operation that differ.
func whatChanged(a, b planFileOp) string {
	var parts []string
	check := func(name string, x, y any) {
		if !sameJSON(x, y) {
			parts = append(parts, name)
		}
	}
	check("the sink's ids", [2]string{a.UserID, a.ProfileRef}, [2]string{b.UserID, b.ProfileRef})
	check("the fields to change", a.Fields, b.Fields)
	check("the sources' values", a.Want, b.Want)
	check("the values idsync last applied (the snapshot)", a.Have, b.Have)
	if len(parts) == 0 {
		return "changed"
	}
	return strings.Join(parts, ", ") + " changed"
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func guardList(g []dsync.GuardTrip) string {
	if len(g) == 0 {
		return "none tripped"
	}
	s := make([]string, len(g))
	for i, t := range g {
		s[i] = t.String()
	}
	return strings.Join(s, "; ")
}
