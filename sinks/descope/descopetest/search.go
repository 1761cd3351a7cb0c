package descopetest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The endpoints that read users: load by loginId or userId, load by userIds, search.

func (s *Server) handleLoad(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	if u := s.target(w, q.Get("loginId"), q.Get("userId")); u != nil {
		s.writeUser(w, u)
	}
}

func (s *Server) handleLoadMany(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		UserIDs []string `json:"userIds"`
	}
	if !decode(w, body, &b) {
		return
	}
	users := []userJSON{}
	for _, id := range b.UserIDs {
		if u := s.users[id]; u != nil {
			users = append(users, u.json())
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users, "total": len(users)})
}

// handleSearch filters on the keys idsync's notes list (loginIds, userIds, emails,
// statuses, roleNames, tenantIds, customAttributes, text), in creation order, paged by
// limit (default 100) and page, or offset.
func (s *Server) handleSearch(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginIDs         []string       `json:"loginIds"`
		UserIDs          []string       `json:"userIds"`
		Emails           []string       `json:"emails"`
		Statuses         []string       `json:"statuses"`
		RoleNames        []string       `json:"roleNames"`
		TenantIDs        []string       `json:"tenantIds"`
		CustomAttributes map[string]any `json:"customAttributes"`
		Text             string         `json:"text"`
		Limit            int            `json:"limit"`
		Page             int            `json:"page"`
		Offset           int            `json:"offset"`
		WithTestUser     bool           `json:"withTestUser"`
		TestUsersOnly    bool           `json:"testUsersOnly"`
	}
	if len(body) > 0 && !decode(w, body, &b) {
		return
	}
	if b.Limit < 0 || b.Page < 0 || b.Offset < 0 {
		invalid("limit, page and offset must not be negative").write(w)
		return
	}
	anyFold := func(want []string, have ...string) bool {
		if len(want) == 0 {
			return true
		}
		for _, x := range want {
			for _, h := range have {
				if strings.EqualFold(x, h) {
					return true
				}
			}
		}
		return false
	}
	var matched []*User
	for _, u := range s.users {
		switch {
		case b.TestUsersOnly && !u.Test, !b.TestUsersOnly && !b.WithTestUser && u.Test:
		case !anyFold(b.LoginIDs, u.LoginIDs...), !anyFold(b.UserIDs, u.UserID), !anyFold(b.Emails, u.Email),
			!anyFold(b.Statuses, u.Status), !anyFold(b.RoleNames, u.RoleNames...):
		case len(b.TenantIDs) > 0 && !slices.ContainsFunc(u.Tenants, func(t Tenant) bool { return slices.Contains(b.TenantIDs, t.TenantID) }):
		case !attributesMatch(b.CustomAttributes, u.CustomAttributes):
		case b.Text != "" && !textMatch(b.Text, u):
		default:
			matched = append(matched, u)
		}
	}
	slices.SortFunc(matched, func(a, b *User) int { return a.seq - b.seq })
	limit := b.Limit
	if limit == 0 {
		limit = 100
	}
	start := b.Page * limit
	if b.Offset > 0 {
		start = b.Offset
	}
	users := []userJSON{}
	for i := start; i < len(matched) && i < start+limit; i++ {
		users = append(users, matched[i].json())
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users, "total": len(matched)})
}

// attributesMatch: each wanted value equals the user's, or, given as a list, the
// user's value is one of it.
func attributesMatch(want, have map[string]any) bool {
	for k, v := range want {
		h, ok := have[k]
		if !ok {
			return false
		}
		if options, isList := v.([]any); isList {
			if !slices.ContainsFunc(options, func(o any) bool { return fmt.Sprint(o) == fmt.Sprint(h) }) {
				return false
			}
			continue
		}
		if fmt.Sprint(v) != fmt.Sprint(h) {
			return false
		}
	}
	return true
}

func textMatch(text string, u *User) bool {
	t := strings.ToLower(text)
	for _, f := range append([]string{u.Name, u.Email, u.Phone}, u.LoginIDs...) {
		if strings.Contains(strings.ToLower(f), t) {
			return true
		}
	}
	return false
}
