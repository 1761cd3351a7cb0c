package descope

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	dsync "github.com/idsync/idsync/sync"
)

// update changes the fields op.Fields names, and only those: never through the
// full-overwrite /v1/mgmt/user/update, which clears what it is not sent (a phone, a
// picture, custom attributes idsync does not manage). A user Descope no longer has
// (E112102) is made again at once.
func (s *Sink) update(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	err := s.updateFields(ctx, op)
	if errors.Is(err, dsync.ErrNotFound) {
		return s.recreate(ctx, op, err)
	}
	return dsync.Outcome{}, err
}

func (s *Sink) updateFields(ctx context.Context, op dsync.Op) error {
	w, f, id := &op.Want, op.Fields, op.UserID
	if f.Has(s.loginField()) {
		if err := s.changeLoginID(ctx, id, s.loginID(w)); err != nil {
			return err
		}
	}
	patch := map[string]any{}
	if f.Has(dsync.FieldEmail) {
		patch["email"] = w.Email
		if s.cfg.VerifiedEmail && w.Email != "" {
			patch["verifiedEmail"] = true
		}
	}
	if f.Has(dsync.FieldFirstName) {
		patch["givenName"] = w.FirstName
	}
	if f.Has(dsync.FieldLastName) {
		patch["familyName"] = w.LastName
	}
	if f.Has(dsync.FieldDisplayName) {
		patch["name"] = w.DisplayName
	}
	if err := s.patch(ctx, id, patch); err != nil {
		return err
	}
	// Groups and attributes the configuration does not map change nothing here.
	groups := f.Has(dsync.FieldGroups) && (op.Have == nil || !s.grantsOf(op.Have.Groups).equal(s.grantsOf(w.Groups)))
	attrs := f.Has(dsync.FieldAttributes) && (op.Have == nil || !sameAttributes(s.wantAttributes(op.Have), s.wantAttributes(w)))
	if !groups && !attrs {
		return nil
	}
	// What the user holds now, not what idsync last applied, is what the roles,
	// tenants and attributes are changed from: every add or remove is then one that
	// changes something.
	cur, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if groups {
		if err := s.setGrants(ctx, id, s.grantsHeld(cur), s.grantsOf(w.Groups)); err != nil {
			return err
		}
	}
	if attrs {
		return s.setAttributes(ctx, id, cur.CustomAttributes, s.wantAttributes(w), s.attributeKeys())
	}
	return nil
}

// patch sends a partial update of the fields in p, if any.
func (s *Sink) patch(ctx context.Context, userID string, p map[string]any) error {
	if len(p) == 0 {
		return nil
	}
	body := maps.Clone(p)
	body["loginId"] = userID
	return s.call(ctx, "user.patch", http.MethodPatch, "/v1/mgmt/user/patch", body, nil)
}

// changeLoginID gives the user newID in place of its primary loginId. A newID that is
// taken is a conflict, unless the user holds it already.
func (s *Sink) changeLoginID(ctx context.Context, userID, newID string) error {
	err := s.call(ctx, "user.loginid", http.MethodPost, "/v1/mgmt/user/update/loginid",
		map[string]string{"loginId": userID, "newLoginId": newID}, nil)
	var ae *APIError
	if err == nil || errors.Is(err, dsync.ErrNotFound) || !errors.As(err, &ae) || ae.Status/100 != 4 || ae.Status == http.StatusTooManyRequests {
		return err
	}
	holder, lerr := s.loadLogin(ctx, newID)
	switch {
	case lerr != nil:
		return err
	case holder.UserID == userID:
		return nil
	}
	return fmt.Errorf("%w; the loginId %q belongs to Descope user %s: %w", err, newID, holder.UserID, dsync.ErrConflict)
}

// grants are the project roles and the tenant memberships (with their roles) that
// idsync manages, as some groups give them or a user holds them.
type grants struct {
	roles   map[string]bool
	tenants map[string]map[string]bool // tenantId -> roles
}

// grantsOf is what the groups give.
func (s *Sink) grantsOf(groups []string) grants {
	g := grants{roles: map[string]bool{}, tenants: map[string]map[string]bool{}}
	for _, name := range groups {
		if role, ok := s.cfg.Roles[name]; ok {
			g.roles[role] = true
		}
		if t, ok := s.cfg.Tenants[name]; ok {
			if g.tenants[t.TenantID] == nil {
				g.tenants[t.TenantID] = map[string]bool{}
			}
			for _, r := range t.Roles {
				g.tenants[t.TenantID][r] = true
			}
		}
	}
	return g
}

// grantsHeld is what the user holds of the managed roles and tenants. A tenant role
// is managed when a group gives it in that tenant.
func (s *Sink) grantsHeld(u *user) grants {
	g := grants{roles: map[string]bool{}, tenants: map[string]map[string]bool{}}
	for _, r := range u.RoleNames {
		if len(s.roleGroups[r]) > 0 {
			g.roles[r] = true
		}
	}
	for _, t := range u.UserTenants {
		if len(s.tenantGroups[t.TenantID]) == 0 {
			continue
		}
		managed := s.tenantRoles(t.TenantID)
		g.tenants[t.TenantID] = map[string]bool{}
		for _, r := range t.RoleNames {
			if managed[r] {
				g.tenants[t.TenantID][r] = true
			}
		}
	}
	return g
}

// tenantRoles is every role some group gives in the tenant.
func (s *Sink) tenantRoles(tenantID string) map[string]bool {
	m := map[string]bool{}
	for _, group := range s.tenantGroups[tenantID] {
		for _, r := range s.cfg.Tenants[group].Roles {
			m[r] = true
		}
	}
	return m
}

func (g grants) equal(o grants) bool {
	return maps.Equal(g.roles, o.roles) && maps.EqualFunc(g.tenants, o.tenants, maps.Equal)
}

func (g grants) roleList() []string { return sortedKeys(g.roles) }

func (g grants) tenantList() []userTenant {
	var ts []userTenant
	for _, id := range sortedKeys(g.tenants) {
		ts = append(ts, userTenant{TenantID: id, RoleNames: sortedKeys(g.tenants[id])})
	}
	return ts
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// minus is what a holds and b does not, sorted.
func minus(a, b map[string]bool) []string {
	var out []string
	for _, k := range sortedKeys(a) {
		if !b[k] {
			out = append(out, k)
		}
	}
	return out
}

// setGrants changes the user's managed roles and tenants from have to want, with the
// role and tenant endpoints: the user's other roles and tenants are not touched, as
// a roleNames or userTenants in a patch would replace them all. What is added is
// added before what is taken away.
func (s *Sink) setGrants(ctx context.Context, userID string, have, want grants) error {
	roles := func(endpoint, path, tenantID string, names []string) error {
		if len(names) == 0 {
			return nil
		}
		return s.call(ctx, endpoint, http.MethodPost, path,
			map[string]any{"loginId": userID, "tenantId": tenantID, "roleNames": names}, nil)
	}
	add := func(tenantID string, names []string) error {
		return roles("user.role.add", "/v2/mgmt/user/update/role/add", tenantID, names)
	}
	remove := func(tenantID string, names []string) error {
		return roles("user.role.remove", "/v1/mgmt/user/update/role/remove", tenantID, names)
	}
	tenant := func(endpoint, path, tenantID string) error {
		return s.call(ctx, endpoint, http.MethodPost, path, map[string]string{"loginId": userID, "tenantId": tenantID}, nil)
	}
	if err := add("", minus(want.roles, have.roles)); err != nil {
		return err
	}
	for _, t := range sortedKeys(want.tenants) {
		if _, member := have.tenants[t]; !member {
			if err := tenant("user.tenant.add", "/v1/mgmt/user/update/tenant/add", t); err != nil {
				return err
			}
		}
		if err := add(t, minus(want.tenants[t], have.tenants[t])); err != nil {
			return err
		}
		if err := remove(t, minus(have.tenants[t], want.tenants[t])); err != nil {
			return err
		}
	}
	if err := remove("", minus(have.roles, want.roles)); err != nil {
		return err
	}
	for _, t := range sortedKeys(have.tenants) {
		if _, keep := want.tenants[t]; !keep {
			if err := tenant("user.tenant.remove", "/v1/mgmt/user/update/tenant/remove", t); err != nil {
				return err
			}
		}
	}
	return nil
}

// wantAttributes is the custom attributes the identity's mapped attributes give: one
// value as a string, several as a list. Nil when there are none.
func (s *Sink) wantAttributes(id *dsync.Identity) map[string]any {
	var m map[string]any
	for attr, key := range s.cfg.CustomAttributes {
		vals := id.Attributes.Get(attr)
		if len(vals) == 0 {
			continue
		}
		if m == nil {
			m = map[string]any{}
		}
		if len(vals) == 1 {
			m[key] = vals[0]
		} else {
			m[key] = slices.Clone(vals)
		}
	}
	return m
}

// attributeKeys is the managed custom attribute keys, sorted.
func (s *Sink) attributeKeys() []string {
	keys := slices.Collect(maps.Values(s.cfg.CustomAttributes))
	slices.Sort(keys)
	return slices.Compact(keys)
}

func sameAttributes(a, b map[string]any) bool {
	return maps.EqualFunc(a, b, func(x, y any) bool { return slices.Equal(attrStrings(x), attrStrings(y)) })
}

// setAttributes sets each of keys whose value differs between have and want, one
// request per key: a customAttributes map in a patch may replace every attribute
// the user has (the documents do not say), and idsync owns only its keys. A key
// want lacks is cleared with a null.
func (s *Sink) setAttributes(ctx context.Context, userID string, have, want map[string]any, keys []string) error {
	for _, k := range keys {
		if slices.Equal(attrStrings(have[k]), attrStrings(want[k])) {
			continue
		}
		body := map[string]any{"loginId": userID, "attributeKey": k, "attributeValue": want[k]}
		if err := s.call(ctx, "user.attribute", http.MethodPost, "/v1/mgmt/user/update/customAttribute", body, nil); err != nil {
			return err
		}
	}
	return nil
}

// attrStrings reads a custom attribute value as idsync's list of strings: nil or ""
// is none, a list is its elements, anything else one value.
func attrStrings(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}

// attrString reads a custom attribute value as one string.
func attrString(v any) string {
	if s := attrStrings(v); len(s) > 0 {
		return s[0]
	}
	return ""
}
