package descope

import (
	"context"
	"fmt"
	"slices"
	"strings"

	dsync "github.com/idsync/idsync/sync"
)

// ReadUser reads a managed account back, for drift checks, in the terms idsync applied
// it: the loginId (as the username, when it is the username), email, names, status,
// and the managed roles, tenants and custom attributes. A disabled status is an
// inactive account; invited and enabled ones are active.
func (s *Sink) ReadUser(ctx context.Context, e dsync.Entry) (dsync.Identity, error) {
	if e.User == nil || e.UserID == "" {
		return dsync.Identity{}, fmt.Errorf("descope: read user %s: nothing applied: %w", e.ID, dsync.ErrNotFound)
	}
	u, err := s.load(ctx, e.UserID)
	if err != nil {
		return dsync.Identity{}, fmt.Errorf("descope: read user %s: %w", e.ID, err)
	}
	applied := e.User
	got := dsync.Project(*applied, dsync.AllFields)
	if s.cfg.LoginID == "username" {
		primary := ""
		if len(u.LoginIDs) > 0 {
			primary = u.LoginIDs[0]
		}
		if !strings.EqualFold(primary, applied.Username) {
			got.Username = primary
		}
	}
	if !strings.EqualFold(u.Email, applied.Email) {
		got.Email = u.Email
	}
	got.FirstName, got.LastName, got.DisplayName = u.GivenName, u.FamilyName, u.Name
	got.Active = u.Status != "disabled"
	schema := s.Schema().User
	if schema.Has(dsync.FieldGroups) {
		got.Groups = s.heldGroups(applied.Groups, s.grantsHeld(u))
	}
	if schema.Has(dsync.FieldAttributes) {
		got.Attributes = s.heldAttributes(applied.Attributes, u.CustomAttributes)
	}
	return got, nil
}

// heldGroups expresses the managed roles and tenants a user holds as groups, starting
// from the groups idsync applied: a group whose role or tenant the user lacks is
// dropped; a managed role or tenant the user holds and no applied group gives adds a
// group that gives it. Either way the next update sets them right.
func (s *Sink) heldGroups(applied []string, held grants) []string {
	want := s.grantsOf(applied)
	if want.equal(held) {
		return applied
	}
	var out []string
	for _, g := range applied {
		if s.grantsOf([]string{g}).within(held) {
			out = append(out, g)
		}
	}
	first := func(groups []string) string { return slices.Min(groups) }
	for _, r := range minus(held.roles, want.roles) {
		out = append(out, first(s.roleGroups[r]))
	}
	for _, t := range sortedKeys(held.tenants) {
		if _, ok := want.tenants[t]; !ok {
			out = append(out, first(s.tenantGroups[t]))
		}
		for _, r := range minus(held.tenants[t], want.tenants[t]) {
			var givers []string
			for _, g := range s.tenantGroups[t] {
				if slices.Contains(s.cfg.Tenants[g].Roles, r) {
					givers = append(givers, g)
				}
			}
			out = append(out, first(givers))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// within reports whether h holds everything g gives.
func (g grants) within(h grants) bool {
	for r := range g.roles {
		if !h.roles[r] {
			return false
		}
	}
	for t, roles := range g.tenants {
		have, ok := h.tenants[t]
		if !ok {
			return false
		}
		for r := range roles {
			if !have[r] {
				return false
			}
		}
	}
	return true
}

// heldAttributes replaces, in the attributes idsync applied, the mapped ones whose
// custom attribute holds something else.
func (s *Sink) heldAttributes(applied dsync.Attributes, have map[string]any) dsync.Attributes {
	out := slices.Clone(applied)
	for attr, key := range s.cfg.CustomAttributes {
		cur := attrStrings(have[key])
		if slices.Equal(applied.Get(attr), cur) {
			continue
		}
		if len(cur) == 0 {
			out.Delete(attr)
		} else {
			out.Set(attr, cur)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
