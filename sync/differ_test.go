package sync

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDifferMatchesWholeDiff holds the streaming Differ to the Diff it replaced, which
// saw the whole snapshot as a map (kept below as diffWhole): random snapshots and
// sources, entries added in random order and overwritten once added, every option. It also checks that the
// entries the Differ keeps are exactly those of the plan's identities that the
// snapshot knows, which is what applying the plan looks up.
func TestDifferMatchesWholeDiff(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 8))
		snap, desired := randomSides(r, now)
		opt := DiffOptions{
			Schema:   []Schema{haploLike, {User: AllFields, Delete: true}}[r.IntN(2)],
			Complete: r.IntN(4) > 0, Delta: r.IntN(3) == 0, Now: now,
		}
		if r.IntN(2) == 0 {
			opt.DeleteAfter = 24 * time.Hour
		}
		want := diffWhole(snap, desired, opt)
		d := NewDiffer(pointers(desired), opt)
		ids := make([]string, 0, len(snap))
		for id := range snap {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			// The store reuses an entry's identities, lists and maps for the next:
			// what the Differ keeps must be its own copy.
			e := snap[id].Clone()
			d.Add(e)
			scribble(e.User)
			scribble(e.Profile)
		}
		got, need := d.Plan()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d, %+v:\nDiffer:\n%s\nwhole-snapshot Diff:\n%s", seed, opt, formatPlan(got), formatPlan(want))
		}
		if d.Entries() != len(snap) {
			t.Fatalf("seed %d: Entries() = %d, want %d", seed, d.Entries(), len(snap))
		}
		wantNeed := map[string]Entry{}
		for _, op := range want.Ops {
			if e, ok := snap[op.ID]; ok {
				wantNeed[op.ID] = e
			}
		}
		if !reflect.DeepEqual(need, wantNeed) {
			t.Fatalf("seed %d: the Differ kept %d entries, want those of the plan's known identities (%d)", seed, len(need), len(wantNeed))
		}
	}
}

// scribble overwrites what a reused identity would: every field, list item and map.
func scribble(id *Identity) {
	if id == nil {
		return
	}
	for i := range id.Groups {
		id.Groups[i] = "scribbled"
	}
	for _, a := range id.Attributes {
		for i := range a.Values {
			a.Values[i] = "scribbled"
		}
	}
	for i := range id.Attributes {
		id.Attributes[i] = Attribute{Name: "scribbled"}
	}
	*id = Identity{ID: "scribbled", Email: "scribbled", Groups: id.Groups, Attributes: id.Attributes}
}

// randomSides makes a snapshot and a desired set that overlap: people unchanged,
// changed, gone, new, invalid, disabled long ago, sharing emails.
func randomSides(r *rand.Rand, now time.Time) (map[string]Entry, map[string]Identity) {
	snap, desired := map[string]Entry{}, map[string]Identity{}
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	person := func(i int) Identity {
		id := Identity{ID: fmt.Sprintf("p%02d", i), Source: "hr", Origin: fmt.Sprintf("line %d", i+2),
			Username: pick("ann", "bob", "cy", fmt.Sprintf("u%d", i)), Email: pick("a@x.org", "b@x.org", fmt.Sprintf("u%d@x.org", i)),
			FirstName: pick("Ann", "Bo"), LastName: pick("Lee", "Ng"), Active: r.IntN(5) > 0}
		if r.IntN(2) == 0 {
			id.Groups = []string{pick("eng", "ops")}
		}
		if r.IntN(2) == 0 {
			id.Attributes = AttributesOf(map[string][]string{"title": {pick("Dr", "Prof")}})
		}
		return id
	}
	for i := range 12 + r.IntN(20) {
		p := person(i)
		if r.IntN(3) > 0 { // known to the snapshot
			e := Entry{ID: p.ID, UserID: "u-" + p.ID}
			if r.IntN(6) > 0 {
				last := person(i)
				if r.IntN(2) == 0 {
					last = p
				}
				last.Source, last.Origin = "", ""
				e.User = &last
				if r.IntN(2) == 0 {
					prof := last
					e.Profile, e.ProfileRef = &prof, "ref-"+p.ID
				}
				if !last.Active && r.IntN(2) == 0 {
					e.DisabledAt = now.Add(-time.Duration(r.IntN(48)) * time.Hour)
				}
			} else if r.IntN(2) == 0 {
				e.ProfileRef = "ref-" + p.ID // a profile made, the account not yet
			}
			snap[p.ID] = e
		}
		if r.IntN(4) > 0 { // listed by the sources
			if r.IntN(10) == 0 {
				p.Problems = []string{p.Origin + ": bad"}
			}
			desired[p.ID] = p
		}
	}
	return snap, desired
}

// diffWhole is Diff as it was before the Differ, the whole snapshot in a map: the
// oracle of TestDifferMatchesWholeDiff. One change: takenOutsideWhole names the least
// id where several unlisted accounts hold one email or username; the old one named
// whichever the map's order gave last, so a delta's held reasons could differ from one
// run to the next.
func diffWhole(snapshot map[string]Entry, desired map[string]Identity, opt DiffOptions) Plan {
	var p Plan
	profiles := opt.Schema.Profile != 0
	for _, e := range snapshot {
		if e.User != nil && e.User.Active {
			p.Managed++
		}
	}
	var taken map[string]string
	if opt.Delta {
		taken = takenOutsideWhole(snapshot, desired)
	}
	for id, want := range desired {
		if !want.Valid() {
			p.Held = append(p.Held, Held{ID: id, Where: want.Where(), Reason: slices.Clone(want.Problems)})
			continue
		}
		if reasons := collisions(taken, &want); len(reasons) > 0 {
			p.Held = append(p.Held, Held{ID: id, Where: want.Where(), Reason: reasons})
			continue
		}
		ops := diffPresent(nil, snapshot[id], want, opt.Schema, profiles)
		if opt.Delta {
			ops = slices.DeleteFunc(ops, func(op Op) bool { return op.Kind == DisableUser })
		}
		p.Ops = append(p.Ops, ops...)
	}
	for id, e := range snapshot {
		if _, ok := desired[id]; ok || !opt.Complete || opt.Delta || e.User == nil {
			continue
		}
		last := lastApplied(e)
		switch {
		case e.User.Active:
			p.Ops = append(p.Ops, Op{Kind: DisableUser, ID: id, Want: last, Have: e.Profile, UserID: e.UserID, ProfileRef: e.ProfileRef})
		case opt.DeleteAfter > 0 && opt.Schema.Delete && !e.DisabledAt.IsZero() && !opt.Now.Before(e.DisabledAt.Add(opt.DeleteAfter)):
			p.Ops = append(p.Ops, Op{Kind: DeleteUser, ID: id, Want: last, UserID: e.UserID, ProfileRef: e.ProfileRef})
		}
	}
	slices.SortFunc(p.Ops, func(a, b Op) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	slices.SortFunc(p.Held, func(a, b Held) int { return cmp.Compare(a.ID, b.ID) })
	return p
}

// takenOutsideWhole indexes the emails and usernames of the active accounts of identities a
// delta does not list, lowercased, "email:" or "username:" prefixed, to their ids. A
// full read checks uniqueness across everyone (Merge); a delta can only check against
// what idsync last applied.
func takenOutsideWhole(snapshot map[string]Entry, desired map[string]Identity) map[string]string {
	taken := make(map[string]string)
	for id, e := range snapshot {
		if _, listed := desired[id]; listed || e.User == nil || !e.User.Active {
			continue
		}
		for _, key := range []string{"email:" + strings.ToLower(e.User.Email), "username:" + strings.ToLower(e.User.Username)} {
			if other, ok := taken[key]; key[len(key)-1] != ':' && (!ok || id < other) {
				taken[key] = id
			}
		}
	}
	return taken
}
