package sync

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DiffOptions is what Diff needs to know besides the two sides.
type DiffOptions struct {
	// Schema is the sink's: which records it holds and which fields each takes.
	Schema Schema
	// Complete reports that the desired set lists everyone the sources know. Only a
	// complete read disables people for being absent.
	Complete bool
	// DeleteAfter, when positive and the sink can delete, plans delete_user for
	// accounts idsync disabled at least that long before Now.
	DeleteAfter time.Duration
	// Now is the time deletes are measured against. Diff reads no clock.
	Now time.Time
	// Delta reports that the desired set holds only the identities that changed since
	// the last read (an incremental read): nobody is disabled or deleted, and an
	// identity whose email or username an account of another identity holds, one the
	// read did not list, is held until a full read can tell who is right.
	Delta bool
}

// Diff works out the operations that turn one sink's snapshot into the desired state.
// It is pure: no I/O, no clock, no logging, and equal inputs give identical plans,
// sorted by phase then identity id.
//
// Rules, per identity:
//   - present but invalid: held, left exactly as it is;
//   - new and active: create_profile (sinks with profiles), then create_user;
//     new and inactive: nothing;
//   - known: update_profile and update_user with only the fields that changed, then
//     enable_user or disable_user when the active state differs;
//   - absent from a complete read: disable_user if active; delete_user when deletes
//     are on and idsync disabled it at least DeleteAfter ago;
//   - absent from an incomplete read: nothing;
//   - in a delta (an incremental read): no disable or delete of anyone.
//
// Only identities in the snapshot are ever enabled, disabled or deleted: accounts idsync
// did not create or adopt are never touched.
//
// Diff is a Differ given every entry of snapshot; a run uses a Differ itself, so that
// the snapshot need not be in memory all at once.
func Diff(snapshot map[string]Entry, desired map[string]Identity, opt DiffOptions) Plan {
	d := NewDiffer(pointers(desired), opt)
	for _, e := range snapshot {
		d.Add(e)
	}
	p, _ := d.Plan()
	return p
}

// pointers returns a map of the identities' copies.
func pointers(ids map[string]Identity) map[string]*Identity {
	out := make(map[string]*Identity, len(ids))
	for id, want := range ids {
		out[id] = &want
	}
	return out
}

// Differ is Diff taking the snapshot one entry at a time, in any order: it keeps only
// the entries that the plan's operations are about, so that a run over 100,000 people
// whose snapshot mostly matches the sources holds a handful of entries rather than all
// of them. Like Diff, it does no I/O and reads no clock.
type Differ struct {
	desired map[string]*Identity
	opt     DiffOptions
	plan    Plan
	entries int
	// seen holds the desired identities the snapshot has an entry for; the rest are new.
	seen map[string]struct{}
	// need holds the entries of identities with operations, which applying them needs.
	need map[string]Entry
	// A delta holds its identities' entries until every entry is in: an identity is
	// held when an entry not listed holds its email or username (taken).
	listed map[string]Entry
	taken  map[string]string
}

// NewDiffer returns a Differ for one sink's plan. desired is only read.
func NewDiffer(desired map[string]*Identity, opt DiffOptions) *Differ {
	d := &Differ{desired: desired, opt: opt, seen: make(map[string]struct{}, len(desired)), need: make(map[string]Entry)}
	if opt.Delta {
		d.listed, d.taken = make(map[string]Entry), make(map[string]string)
	}
	return d
}

// Add takes one snapshot entry. Each id must come once. What Add keeps of e, it
// copies: e may be reused once Add returns.
func (d *Differ) Add(e Entry) {
	d.entries++
	if e.User != nil && e.User.Active {
		d.plan.Managed++
	}
	if e.Invite != nil {
		d.plan.Invites = append(d.plan.Invites, e.ID)
	}
	w, listed := d.desired[e.ID]
	switch {
	case listed:
		want := *w
		d.seen[want.ID] = struct{}{}
		switch {
		case !want.Valid(): // held in Plan, whatever the entry says
		case d.opt.Delta:
			d.listed[want.ID] = e.Clone()
		case len(d.opsFor(e, want)) > 0:
			d.present(e.Clone(), want)
		}
	case d.opt.Delta:
		takeNames(d.taken, e)
	case d.opt.Complete && e.User != nil:
		deletable := d.opt.DeleteAfter > 0 && d.opt.Schema.Delete && !e.DisabledAt.IsZero() && !d.opt.Now.Before(e.DisabledAt.Add(d.opt.DeleteAfter))
		if !e.User.Active && !deletable {
			return
		}
		e = e.Clone()
		d.need[e.ID] = e
		last := lastApplied(e)
		if e.User.Active {
			d.plan.Ops = append(d.plan.Ops, Op{Kind: DisableUser, ID: e.ID, Want: last, Have: e.Profile, UserID: e.UserID, ProfileRef: e.ProfileRef})
		} else {
			d.plan.Ops = append(d.plan.Ops, Op{Kind: DeleteUser, ID: e.ID, Want: last, UserID: e.UserID, ProfileRef: e.ProfileRef})
		}
	}
}

// opsFor returns the operations for a valid identity that the snapshot may know (e is
// zero when not).
func (d *Differ) opsFor(e Entry, want Identity) []Op {
	ops := diffPresent(nil, e, want, d.opt.Schema, d.opt.Schema.Profile != 0)
	if d.opt.Delta {
		ops = slices.DeleteFunc(ops, func(op Op) bool { return op.Kind == DisableUser })
	}
	return ops
}

// present adds opsFor(e, want) to the plan and keeps e, which the plan now holds.
func (d *Differ) present(e Entry, want Identity) {
	ops := d.opsFor(e, want)
	if len(ops) > 0 && e.ID != "" {
		d.need[e.ID] = e
	}
	d.plan.Ops = append(d.plan.Ops, ops...)
}

// Plan returns the plan once every entry is in, and the snapshot entries of the
// identities its operations are about: what applying it needs of the snapshot.
func (d *Differ) Plan() (Plan, map[string]Entry) {
	for id, want := range d.desired {
		if !want.Valid() {
			d.plan.Held = append(d.plan.Held, Held{ID: id, Where: want.Where(), Reason: slices.Clone(want.Problems)})
			continue
		}
		if reasons := collisions(d.taken, want); len(reasons) > 0 {
			d.plan.Held = append(d.plan.Held, Held{ID: id, Where: want.Where(), Reason: reasons})
			continue
		}
		if e, ok := d.listed[id]; ok {
			d.present(e.Clone(), *want)
		} else if _, ok := d.seen[id]; !ok {
			d.present(Entry{}, *want)
		}
	}
	slices.SortFunc(d.plan.Ops, func(a, b Op) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	slices.SortFunc(d.plan.Held, func(a, b Held) int { return cmp.Compare(a.ID, b.ID) })
	slices.Sort(d.plan.Invites)
	return d.plan, d.need
}

// Entries is how many snapshot entries were added.
func (d *Differ) Entries() int { return d.entries }

// takeNames indexes the email and username of the active account of an identity a
// delta does not list, lowercased, "email:" or "username:" prefixed, to its id. A full
// read checks uniqueness across everyone (Merge); a delta can only check against what
// idsync last applied. Where several hold one (the snapshot of a directory that
// changed its mind), the least id is named, whatever the order entries come in.
func takeNames(taken map[string]string, e Entry) {
	if e.User == nil || !e.User.Active {
		return
	}
	take := func(key string) {
		if other, ok := taken[key]; !ok || e.ID < other {
			taken[key] = e.ID
		}
	}
	if e.User.Email != "" {
		take("email:" + strings.ToLower(e.User.Email))
	}
	if e.User.Username != "" {
		take("username:" + strings.ToLower(e.User.Username))
	}
}

// collisions returns the reasons to hold want: its email or username is another
// identity's, as far as taken knows.
func collisions(taken map[string]string, want *Identity) []string {
	if len(taken) == 0 || !want.Active {
		return nil
	}
	var reasons []string
	for _, f := range []struct{ name, value string }{{"email", want.Email}, {"username", want.Username}} {
		if f.value == "" {
			continue
		}
		if other, ok := taken[f.name+":"+strings.ToLower(f.value)]; ok && other != want.ID {
			reasons = append(reasons, fmt.Sprintf("%s %q is held by the account of %s, which this incremental read did not list: held until the next full read", f.name, f.value, other))
		}
	}
	return reasons
}

// diffPresent appends the operations for an identity the sources list and that is valid.
func diffPresent(ops []Op, e Entry, want Identity, s Schema, profiles bool) []Op {
	ids := func(op Op) Op {
		op.ID, op.UserID, op.ProfileRef = want.ID, e.UserID, e.ProfileRef
		return op
	}
	if e.User == nil {
		if !want.Active {
			return ops // never create an account only to disable it
		}
		if profiles && e.ProfileRef == "" {
			ops = append(ops, ids(Op{Kind: CreateProfile, Want: want}))
		}
		return append(ops, ids(Op{Kind: CreateUser, Want: want}))
	}
	if profiles {
		if e.Profile == nil {
			// The account exists but idsync never wrote its profile (adopted without
			// one): write it whole.
			ops = append(ops, ids(Op{Kind: UpdateProfile, Want: withActive(want, e.User.Active), Fields: s.Profile}))
		} else if c := Changed(e.Profile, &want, s.Profile); c != 0 {
			ops = append(ops, ids(Op{Kind: UpdateProfile, Want: withActive(want, e.Profile.Active), Have: e.Profile, Fields: c}))
		}
	}
	if c := Changed(e.User, &want, s.User); c != 0 {
		ops = append(ops, ids(Op{Kind: UpdateUser, Want: withActive(want, e.User.Active), Have: e.User, Fields: c}))
	}
	switch {
	case want.Active && !e.User.Active:
		ops = append(ops, ids(Op{Kind: EnableUser, Want: want, Have: e.Profile}))
	case !want.Active && e.User.Active:
		ops = append(ops, ids(Op{Kind: DisableUser, Want: want, Have: e.Profile}))
	}
	return ops
}

// withActive returns id with its Active flag set: updates carry the record's current
// state, so that only enable and disable ever change it.
func withActive(id Identity, active bool) Identity {
	id.Active = active
	return id
}

// lastApplied rebuilds what idsync last applied of a person who has left: the profile's
// fields over the account's, inactive.
func lastApplied(e Entry) Identity {
	id := *e.User
	if p := e.Profile; p != nil {
		id.Email = cmp.Or(p.Email, id.Email)
		id.FirstName = cmp.Or(p.FirstName, id.FirstName)
		id.LastName = cmp.Or(p.LastName, id.LastName)
		id.DisplayName = cmp.Or(p.DisplayName, id.DisplayName)
		if p.Attributes != nil {
			id.Attributes = p.Attributes
		}
	}
	id.ID = e.ID
	id.Active = false
	return id
}
