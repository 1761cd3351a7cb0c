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
func Diff(snapshot map[string]Entry, desired map[string]Identity, opt DiffOptions) Plan {
	var p Plan
	profiles := opt.Schema.Profile != 0
	for _, e := range snapshot {
		if e.User != nil && e.User.Active {
			p.Managed++
		}
	}
	var taken map[string]string
	if opt.Delta {
		taken = takenOutside(snapshot, desired)
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

// takenOutside indexes the emails and usernames of the active accounts of identities a
// delta does not list, lowercased, "email:" or "username:" prefixed, to their ids. A
// full read checks uniqueness across everyone (Merge); a delta can only check against
// what idsync last applied.
func takenOutside(snapshot map[string]Entry, desired map[string]Identity) map[string]string {
	taken := make(map[string]string)
	for id, e := range snapshot {
		if _, listed := desired[id]; listed || e.User == nil || !e.User.Active {
			continue
		}
		if e.User.Email != "" {
			taken["email:"+strings.ToLower(e.User.Email)] = id
		}
		if e.User.Username != "" {
			taken["username:"+strings.ToLower(e.User.Username)] = id
		}
	}
	return taken
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
