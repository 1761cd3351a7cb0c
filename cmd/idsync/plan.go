package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

// A plan is written for people (text), for tools (json) and for spreadsheets (csv).
// None of them carries a credential: an operation holds the identity's data fields and
// the sinks' ids, never a key, password, welcome link or token.
var planFormats = map[string]func(io.Writer, *dsync.Report) error{
	"text": writePlanText,
	"json": writePlanJSON,
	"csv":  writePlanCSV,
}

// change is one field of an update: what idsync last applied, and what it will apply.
// Old is nil when idsync never wrote the record (an adopted account's first profile).
// Values are strings, or lists of strings for groups and attribute values.
type change struct {
	Field string `json:"field"`
	Old   any    `json:"old"`
	New   any    `json:"new"`
}

// changes lists an update's changed fields, one per attribute for attributes, in a
// fixed order.
func changes(op *dsync.Op) []change {
	var out []change
	have := op.Have
	for _, name := range op.Fields.Names() {
		if name == "attributes" {
			var old dsync.Attributes
			if have != nil {
				old = have.Attributes
			}
			var keys []string
			for _, a := range slices.Concat(op.Want.Attributes, old) {
				keys = append(keys, a.Name)
			}
			slices.Sort(keys)
			for _, k := range slices.Compact(keys) {
				o, n := old.Get(k), op.Want.Attributes.Get(k)
				if have != nil && slices.Equal(o, n) {
					continue
				}
				c := change{Field: "attributes." + k, New: list(n)}
				if have != nil {
					c.Old = list(o)
				}
				out = append(out, c)
			}
			continue
		}
		c := change{Field: name, New: fieldValue(&op.Want, name)}
		if have != nil {
			c.Old = fieldValue(have, name)
		}
		out = append(out, c)
	}
	return out
}

func fieldValue(id *dsync.Identity, name string) any {
	switch name {
	case "username":
		return id.Username
	case "email":
		return id.Email
	case "first_name":
		return id.FirstName
	case "last_name":
		return id.LastName
	case "display_name":
		return id.DisplayName
	case "groups":
		return list(id.Groups)
	}
	return nil
}

// list is never nil, so that JSON shows an empty list as [] rather than null.
func list(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// display writes a value for people: a string quoted, a list in brackets.
func display(v any) string {
	switch v := v.(type) {
	case nil:
		return "(not written by idsync)"
	case string:
		return fmt.Sprintf("%q", v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// writePlanText writes a plan per sink and phase, one operation a line with the
// identity's id and username, an update's changes below it, the held identities and the
// guards, and a summary line last.
func writePlanText(w io.Writer, rep *dsync.Report) error {
	for _, p := range rep.Plans {
		counts := p.Counts()
		fmt.Fprintf(w, "sink %s: %d operations%s, %d held\n", p.Sink, len(p.Ops), countList(counts), len(p.Held))
		var last dsync.OpKind
		for i := range p.Ops {
			op := &p.Ops[i]
			if op.Kind != last {
				fmt.Fprintf(w, "  %s (%d)\n", op.Kind, counts[op.Kind])
				last = op.Kind
			}
			fmt.Fprintf(w, "    %s\n", opLine(*op))
			for _, c := range changes(op) {
				fmt.Fprintf(w, "        %s: %s -> %s\n", c.Field, display(c.Old), display(c.New))
			}
		}
		if len(p.Held) > 0 {
			fmt.Fprintf(w, "  held, left as they are (%d)\n", len(p.Held))
			for _, h := range p.Held {
				fmt.Fprintf(w, "    %s: %s\n", h.ID, strings.Join(h.Reason, "; "))
			}
		}
		if len(p.Invites) > 0 {
			fmt.Fprintf(w, "  invitations not yet delivered, tried again (%d): %s\n", len(p.Invites), strings.Join(p.Invites, ", "))
		}
	}
	printProblemsAndGuards(w, rep)
	_, err := fmt.Fprintln(w, planSummary(rep))
	return err
}

// planSummary is the plan in one line.
func planSummary(rep *dsync.Report) string {
	ops, held := 0, 0
	total := map[dsync.OpKind]int{}
	for _, p := range rep.Plans {
		ops += len(p.Ops)
		held += len(p.Held)
		for k, n := range p.Counts() {
			total[k] += n
		}
	}
	guards := "no guard tripped"
	switch {
	case rep.Held():
		guards = "HELD by " + plural(len(rep.Summary.Guards), "guard")
	case len(rep.Summary.Guards) > 0:
		guards = plural(len(rep.Summary.Guards), "guard") + " tripped and accepted"
	}
	return fmt.Sprintf("plan: %s%s in %s, %s held, %s", plural(ops, "operation"), countList(total), plural(len(rep.Plans), "sink"),
		plural(held, "identity"), guards)
}

// plural is "1 sink", "2 sinks", "2 identities".
func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "y"):
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// planFile is the JSON plan, format "idsync-plan/1": documented in docs/plan-format.md.
// Fields are only ever added to it; a change in the meaning of one is a new format.
type planFile struct {
	Format string `json:"format"`
	// Created is when the run that made the plan started.
	Created    time.Time         `json:"created"`
	Sinks      []planFileSink    `json:"sinks"`
	Unanchored []string          `json:"unanchored"`
	Guards     []dsync.GuardTrip `json:"guards"`
	// Held reports that the guards would hold this plan: it is applied only with
	// --accept-guard.
	Held    bool           `json:"held"`
	Summary planFileCounts `json:"summary"`
}

const planFormat = "idsync-plan/1"

type planFileSink struct {
	Sink       string         `json:"sink"`
	Managed    int            `json:"managed"`
	Counts     map[string]int `json:"counts"`
	Operations []planFileOp   `json:"operations"`
	Held       []dsync.Held   `json:"held"`
	// Invites are the identities whose invitation the run tries to deliver again.
	Invites []string `json:"invites"`
}

type planFileOp struct {
	Kind       dsync.OpKind    `json:"kind"`
	ID         string          `json:"id"`
	Username   string          `json:"username,omitempty"`
	UserID     string          `json:"user_id,omitempty"`
	ProfileRef string          `json:"profile_ref,omitempty"`
	Fields     []string        `json:"fields,omitempty"`
	Changes    []change        `json:"changes,omitempty"`
	Want       dsync.Identity  `json:"want"`
	Have       *dsync.Identity `json:"have,omitempty"`
}

type planFileCounts struct {
	Operations int            `json:"operations"`
	Held       int            `json:"held"`
	Counts     map[string]int `json:"counts"`
}

func newPlanFile(rep *dsync.Report) planFile {
	f := planFile{
		Format: planFormat, Created: rep.Summary.Started.UTC(), Sinks: []planFileSink{},
		Unanchored: list(rep.Unanchored), Guards: rep.Summary.Guards, Held: rep.Held(),
		Summary: planFileCounts{Counts: map[string]int{}},
	}
	if f.Guards == nil {
		f.Guards = []dsync.GuardTrip{}
	}
	for _, p := range rep.Plans {
		s := planFileSink{Sink: p.Sink, Managed: p.Managed, Counts: map[string]int{}, Operations: []planFileOp{}, Held: p.Held, Invites: list(p.Invites)}
		if s.Held == nil {
			s.Held = []dsync.Held{}
		}
		for k, n := range p.Counts() {
			s.Counts[k.String()] = n
			f.Summary.Counts[k.String()] += n
		}
		for i := range p.Ops {
			op := &p.Ops[i]
			s.Operations = append(s.Operations, planFileOp{
				Kind: op.Kind, ID: op.ID, Username: op.Want.Username, UserID: op.UserID, ProfileRef: op.ProfileRef,
				Fields: op.Fields.Names(), Changes: changes(op), Want: op.Want, Have: op.Have,
			})
		}
		f.Summary.Operations += len(p.Ops)
		f.Summary.Held += len(p.Held)
		f.Sinks = append(f.Sinks, s)
	}
	return f
}

func writePlanJSON(w io.Writer, rep *dsync.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(newPlanFile(rep))
}

// writePlanCSV writes one row per change of an update and one per other operation,
// then one per held identity (kind "held", the reasons in "new").
func writePlanCSV(w io.Writer, rep *dsync.Report) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"sink", "kind", "id", "username", "user_id", "field", "old", "new"})
	for _, p := range rep.Plans {
		for i := range p.Ops {
			op := &p.Ops[i]
			row := []string{p.Sink, op.Kind.String(), op.ID, op.Want.Username, op.UserID}
			cs := changes(op)
			if len(cs) == 0 {
				cw.Write(cells(append(row, "", "", "")))
			}
			for _, c := range cs {
				old := ""
				if c.Old != nil {
					old = cellValue(c.Old)
				}
				cw.Write(cells(append(slices.Clip(row), c.Field, old, cellValue(c.New))))
			}
		}
		for _, h := range p.Held {
			cw.Write(cells([]string{p.Sink, "held", h.ID, "", "", "", "", strings.Join(h.Reason, "; ")}))
		}
	}
	cw.Flush()
	return cw.Error()
}

func cellValue(v any) string {
	if l, ok := v.([]string); ok {
		return strings.Join(l, "; ")
	}
	return fmt.Sprint(v)
}

// cells defuses values a spreadsheet would run as formulas (OWASP's CSV injection):
// one starting with =, +, -, @, a tab or a carriage return gets a leading apostrophe.
// A directory's data is anyone's to write, and the file is opened by administrators.
func cells(row []string) []string {
	for i, v := range row {
		if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			row[i] = "'" + v
		}
	}
	return row
}

// writePlanFile writes the plan to path, atomically and readable by its owner only: it
// holds people's data.
func writePlanFile(path, format string, rep *dsync.Report) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("--plan-out: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing
	if err := planFormats[format](tmp, rep); err != nil {
		tmp.Close()
		return fmt.Errorf("--plan-out %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--plan-out %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--plan-out: %w", err)
	}
	return nil
}
