package domo

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	dsync "github.com/idsync/idsync/sync"
)

// ReadUser reads a managed account back, for drift checks, in the terms idsync
// applied it.
func (s *Sink) ReadUser(ctx context.Context, e dsync.Entry) (dsync.Identity, error) {
	rec, err := s.get(ctx, e.UserID)
	if err != nil {
		return dsync.Identity{}, fmt.Errorf("domo: read user %s: %w", e.UserID, err)
	}
	have := dsync.Identity{ID: e.ID, Active: true}
	if e.User != nil {
		have = *e.User
	}
	return s.asApplied(rec, have), nil
}

// asApplied returns have with what differs in the user rec taken from it.
//
// Only with disable_action role can Domo say whether an account is active: its role is
// disabled_role or not. A role other than the one the person's groups map to cannot
// be turned back into groups: it is reported as an extra group, "domo-role:<role>",
// which makes the next run set the role again.
func (s *Sink) asApplied(rec record, have dsync.Identity) dsync.Identity {
	got := have
	if email := rec.text("email"); !strings.EqualFold(email, have.Email) {
		got.Email = email
	}
	if name := rec.text("name"); name != displayName(&have) {
		got.DisplayName = name
	}
	if s.cfg.DisableAction == disableRole {
		got.Active = !rec.hasRole(s.disabledRole)
	}
	if len(s.roles) > 0 && got.Active {
		active := have
		active.Active = true
		if !rec.hasRole(s.roleFor(&active)) {
			r := rec.text("role")
			if r == "" {
				r = rec.text("roleId")
			}
			got.Groups = append(slices.Clone(have.Groups), "domo-role:"+r)
			slices.Sort(got.Groups)
		}
	}
	cloned := false
	for _, attr := range slices.Sorted(maps.Keys(s.cfg.Attributes)) {
		v := rec.text(s.cfg.Attributes[attr])
		if v == attribute(&have, attr) {
			continue
		}
		if !cloned {
			got.Attributes, cloned = slices.Clone(have.Attributes), true
		}
		if v == "" {
			got.Attributes.Delete(attr)
		} else {
			got.Attributes.Set(attr, []string{v})
		}
	}
	return got
}
