package descopetest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The endpoints that change one part of a user: its status, email, name, phone,
// picture, loginId, a custom attribute, its roles and its tenants.

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginID string `json:"loginId"`
		UserID  string `json:"userId"`
		Status  string `json:"status"`
	}
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, b.LoginID, b.UserID)
	if u == nil {
		return
	}
	if !slices.Contains(statuses, b.Status) {
		invalid("status %q: enabled, disabled or invited", b.Status).write(w)
		return
	}
	u.Status = b.Status
	s.writeUser(w, u)
}

func (s *Server) handleEmail(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginID        string `json:"loginId"`
		Email          string `json:"email"`
		Verified       bool   `json:"verified"`
		FailOnConflict bool   `json:"failOnConflict"`
	}
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, b.LoginID, "")
	if u == nil {
		return
	}
	if e := checkEmail(b.Email); e != nil {
		e.write(w)
		return
	}
	if b.FailOnConflict && b.Email != "" {
		for _, o := range s.users {
			if o != u && (strings.EqualFold(o.Email, b.Email) || o.hasLoginID(b.Email)) {
				(&reqError{http.StatusConflict, CodeUpdateConflict, fmt.Sprintf("email %q belongs to another user", b.Email)}).write(w)
				return
			}
		}
	}
	if other := s.emailTakenBy(b.Email, u); other != nil {
		(&reqError{http.StatusConflict, CodeUserExists, fmt.Sprintf("email %q is used by another user", b.Email)}).write(w)
		return
	}
	u.Email, u.VerifiedEmail = b.Email, b.Verified
	s.writeUser(w, u)
}

func (s *Server) handleName(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginID     string  `json:"loginId"`
		DisplayName *string `json:"displayName"`
		GivenName   *string `json:"givenName"`
		MiddleName  *string `json:"middleName"`
		FamilyName  *string `json:"familyName"`
	}
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, b.LoginID, "")
	if u == nil {
		return
	}
	for _, f := range []struct {
		dst *string
		src *string
	}{{&u.Name, b.DisplayName}, {&u.GivenName, b.GivenName}, {&u.MiddleName, b.MiddleName}, {&u.FamilyName, b.FamilyName}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	s.writeUser(w, u)
}

func (s *Server) handlePhone(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginID  string `json:"loginId"`
		Phone    string `json:"phone"`
		Verified bool   `json:"verified"`
	}
	if !decode(w, body, &b) {
		return
	}
	if u := s.target(w, b.LoginID, ""); u != nil {
		u.Phone, u.VerifiedPhone = b.Phone, b.Verified
		s.writeUser(w, u)
	}
}

func (s *Server) handlePicture(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginID string `json:"loginId"`
		Picture string `json:"picture"`
	}
	if !decode(w, body, &b) {
		return
	}
	if u := s.target(w, b.LoginID, ""); u != nil {
		u.Picture = b.Picture
		s.writeUser(w, u)
	}
}

// handleLoginID replaces the loginId the request names, or, when it names the user by
// userId, the primary one. An empty newLoginId removes it, unless it is the last.
func (s *Server) handleLoginID(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginID    string `json:"loginId"`
		NewLoginID string `json:"newLoginId"`
	}
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, b.LoginID, "")
	if u == nil {
		return
	}
	i := slices.IndexFunc(u.LoginIDs, func(l string) bool { return strings.EqualFold(l, b.LoginID) })
	if i < 0 {
		i = 0
	}
	ids := slices.Clone(u.LoginIDs)
	switch {
	case b.NewLoginID == "" && len(ids) == 1:
		invalid("a user must keep one loginId").write(w)
		return
	case b.NewLoginID == "":
		ids = slices.Delete(ids, i, i+1)
	default:
		if s.takenBy(b.NewLoginID, u) != nil {
			exists(b.NewLoginID).write(w)
			return
		}
		ids[i] = b.NewLoginID
		// The new id may be one of the user's others already: keep it once.
		ids = slices.CompactFunc(ids, func(a, b string) bool { return strings.EqualFold(a, b) })
	}
	s.setLoginIDs(u, ids)
	s.writeUser(w, u)
}

func (s *Server) handleAttribute(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginID        string `json:"loginId"`
		AttributeKey   string `json:"attributeKey"`
		AttributeValue any    `json:"attributeValue"`
	}
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, b.LoginID, "")
	if u == nil {
		return
	}
	if b.AttributeKey == "" {
		missing("attributeKey").write(w)
		return
	}
	if b.AttributeValue == nil {
		delete(u.CustomAttributes, b.AttributeKey)
	} else {
		if u.CustomAttributes == nil {
			u.CustomAttributes = map[string]any{}
		}
		u.CustomAttributes[b.AttributeKey] = b.AttributeValue
	}
	s.writeUser(w, u)
}

// handleRoles sets, adds or removes roles: project roles with an empty tenantId, a
// tenant's otherwise, which needs the user to be a member of the tenant.
func (s *Server) handleRoles(w http.ResponseWriter, r *http.Request, body []byte) {
	var b struct {
		LoginID   string   `json:"loginId"`
		TenantID  string   `json:"tenantId"`
		RoleNames []string `json:"roleNames"`
	}
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, b.LoginID, "")
	if u == nil {
		return
	}
	var tenants []Tenant
	if b.TenantID != "" {
		tenants = []Tenant{{TenantID: b.TenantID}}
	}
	if e := s.checkNames(b.RoleNames, tenants); e != nil {
		e.write(w)
		return
	}
	roles := &u.RoleNames
	if b.TenantID != "" {
		t := u.tenant(b.TenantID)
		if t == nil {
			invalid("user is not a member of tenant %q", b.TenantID).write(w)
			return
		}
		roles = &t.RoleNames
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/set"):
		*roles = slices.Clone(b.RoleNames)
	case strings.HasSuffix(r.URL.Path, "/add"):
		for _, n := range b.RoleNames {
			if !slices.Contains(*roles, n) {
				*roles = append(*roles, n)
			}
		}
	default:
		*roles = slices.DeleteFunc(*roles, func(n string) bool { return slices.Contains(b.RoleNames, n) })
	}
	s.writeUser(w, u)
}

// handleTenant adds the user to a tenant (nothing changes if it is a member) or
// removes it, with its roles there (refused if it is not a member).
func (s *Server) handleTenant(w http.ResponseWriter, r *http.Request, body []byte) {
	var b struct {
		LoginID  string `json:"loginId"`
		TenantID string `json:"tenantId"`
	}
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, b.LoginID, "")
	if u == nil {
		return
	}
	if e := s.checkNames(nil, []Tenant{{TenantID: b.TenantID}}); e != nil {
		e.write(w)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/add") {
		if u.tenant(b.TenantID) == nil {
			u.Tenants = append(u.Tenants, Tenant{TenantID: b.TenantID})
		}
	} else {
		if u.tenant(b.TenantID) == nil {
			invalid("user is not a member of tenant %q", b.TenantID).write(w)
			return
		}
		u.Tenants = slices.DeleteFunc(u.Tenants, func(t Tenant) bool { return t.TenantID == b.TenantID })
	}
	s.writeUser(w, u)
}
