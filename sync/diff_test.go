package sync

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var haploLike = Schema{
	User:    FieldUsername | FieldEmail | FieldFirstName | FieldLastName | FieldGroups,
	Profile: FieldEmail | FieldFirstName | FieldLastName | FieldAttributes,
}

func TestDiffGolden(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		dir string
		opt DiffOptions
	}{
		{"first_run", DiffOptions{Schema: haploLike, Complete: true}},
		{"noop", DiffOptions{Schema: haploLike, Complete: true}},
		{"update", DiffOptions{Schema: haploLike, Complete: true}},
		{"users_only", DiffOptions{Schema: Schema{User: AllFields}, Complete: true}},
		{"lifecycle", DiffOptions{Schema: Schema{User: haploLike.User, Profile: haploLike.Profile, Delete: true}, Complete: true, DeleteAfter: 30 * 24 * time.Hour, Now: now}},
		{"incomplete", DiffOptions{Schema: Schema{User: haploLike.User, Profile: haploLike.Profile, Delete: true}, Complete: false, DeleteAfter: 30 * 24 * time.Hour, Now: now}},
		{"held", DiffOptions{Schema: haploLike, Complete: true}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", tt.dir)
			snap, desired := loadCase(t, dir)
			got := formatPlan(Diff(snap, desired, tt.opt))
			golden := filepath.Join(dir, "plan.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./sync -run TestDiffGolden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("plan for %s:\ngot:\n%s\nwant:\n%s", tt.dir, got, want)
			}
			// Equal inputs give identical plans, whatever the map order.
			for range 5 {
				if again := formatPlan(Diff(snap, desired, tt.opt)); again != got {
					t.Fatalf("Diff is not deterministic:\n%s\nthen:\n%s", got, again)
				}
			}
		})
	}
}

func loadCase(t *testing.T, dir string) (map[string]Entry, map[string]Identity) {
	t.Helper()
	var entries []Entry
	readJSON(t, filepath.Join(dir, "snapshot.json"), &entries)
	snap := make(map[string]Entry, len(entries))
	for _, e := range entries {
		snap[e.ID] = e
	}
	var ids []struct {
		Identity
		Problems []string `json:"problems"`
	}
	readJSON(t, filepath.Join(dir, "desired.json"), &ids)
	desired := make(map[string]Identity, len(ids))
	for _, x := range ids {
		id := x.Identity
		id.Problems = x.Problems
		Normalize(&id)
		desired[id.ID] = id
	}
	return snap, desired
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// formatPlan renders a plan for the golden files: every operation with what it sets.
func formatPlan(p Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "managed %d\n", p.Managed)
	for _, op := range p.Ops {
		fmt.Fprintf(&b, "%s active=%t user_id=%q profile_ref=%q", op, op.Want.Active, op.UserID, op.ProfileRef)
		if op.Have != nil {
			fmt.Fprintf(&b, " have.active=%t", op.Have.Active)
		}
		b.WriteString("\n")
	}
	for _, h := range p.Held {
		fmt.Fprintf(&b, "held %s: %s\n", h.ID, strings.Join(h.Reason, "; "))
	}
	return b.String()
}

func TestChangedAndProject(t *testing.T) {
	a := Identity{ID: "1", Username: "a", Email: "a@x", Groups: []string{"g1"}, Attributes: AttributesOf(map[string][]string{"t": {"x"}})}
	b := a
	b.Email = "b@x"
	b.Attributes = AttributesOf(map[string][]string{"t": {"y"}})
	if got, want := Changed(&a, &b, AllFields), FieldEmail|FieldAttributes; got != want {
		t.Errorf("Changed = %v, want %v", got, want)
	}
	if got := Changed(&a, &b, FieldUsername|FieldGroups); got != 0 {
		t.Errorf("Changed outside the set = %v, want none", got)
	}
	p := Project(b, FieldEmail)
	if p.Email != "b@x" || p.Username != "" || p.Attributes != nil || p.ID != "1" {
		t.Errorf("Project = %+v, want only id and email", p)
	}
	p2 := Project(a, AllFields)
	p2.Groups[0] = "changed"
	if a.Groups[0] != "g1" {
		t.Error("Project shares the groups slice with its input")
	}
}
