package descopetest

import (
	"maps"
	"slices"
	"strings"
)

// User is an account as the project holds it.
type User struct {
	UserID string
	// LoginIDs are the user's login ids, the first one primary. They are unique in
	// the project, compared without case.
	LoginIDs      []string
	Name          string // the display name
	GivenName     string
	MiddleName    string
	FamilyName    string
	Email         string
	Phone         string
	Picture       string
	VerifiedEmail bool
	VerifiedPhone bool
	// RoleNames are the project-level roles.
	RoleNames []string
	Tenants   []Tenant
	// Status is enabled, disabled or invited.
	Status string
	// InviteURL and InviteMail are the invitation's, for an invited user: the link's
	// base, and whether Descope emailed it (sendMail, true unless false).
	InviteURL        string
	InviteMail       bool
	CustomAttributes map[string]any
	SSOAppIDs        []string
	Test             bool
	CreatedTime      int64 // epoch seconds
	seq              int   // creation order
}

// Tenant is a user's membership of a tenant, with its roles there.
type Tenant struct {
	TenantID  string
	RoleNames []string
}

// clone returns a deep copy of u. Custom attribute values are JSON values: strings,
// numbers, booleans, nil, and slices of them, which a copy of the slice is enough for.
func (u *User) clone() User {
	c := *u
	c.LoginIDs = slices.Clone(u.LoginIDs)
	c.RoleNames = slices.Clone(u.RoleNames)
	c.SSOAppIDs = slices.Clone(u.SSOAppIDs)
	c.Tenants = make([]Tenant, len(u.Tenants))
	for i, t := range u.Tenants {
		c.Tenants[i] = Tenant{TenantID: t.TenantID, RoleNames: slices.Clone(t.RoleNames)}
	}
	if len(c.Tenants) == 0 {
		c.Tenants = nil
	}
	if u.CustomAttributes != nil {
		c.CustomAttributes = make(map[string]any, len(u.CustomAttributes))
		for k, v := range u.CustomAttributes {
			if list, ok := v.([]any); ok {
				v = slices.Clone(list)
			}
			c.CustomAttributes[k] = v
		}
	}
	return c
}

// tenant returns the user's membership of id, or nil.
func (u *User) tenant(id string) *Tenant {
	for i := range u.Tenants {
		if u.Tenants[i].TenantID == id {
			return &u.Tenants[i]
		}
	}
	return nil
}

// hasLoginID reports whether id is one of the user's login ids, without case.
func (u *User) hasLoginID(id string) bool {
	return slices.ContainsFunc(u.LoginIDs, func(l string) bool { return strings.EqualFold(l, id) })
}

// userJSON is the User object of the API's answers.
type userJSON struct {
	UserID           string         `json:"userId"`
	LoginIDs         []string       `json:"loginIds"`
	Name             string         `json:"name"`
	GivenName        string         `json:"givenName"`
	MiddleName       string         `json:"middleName"`
	FamilyName       string         `json:"familyName"`
	Email            string         `json:"email"`
	Phone            string         `json:"phone"`
	VerifiedEmail    bool           `json:"verifiedEmail"`
	VerifiedPhone    bool           `json:"verifiedPhone"`
	RoleNames        []string       `json:"roleNames"`
	UserTenants      []tenantJSON   `json:"userTenants"`
	Status           string         `json:"status"`
	ExternalIDs      []string       `json:"externalIds"`
	Picture          string         `json:"picture"`
	Test             bool           `json:"test"`
	CustomAttributes map[string]any `json:"customAttributes"`
	CreatedTime      int64          `json:"createdTime"`
	SSOAppIDs        []string       `json:"ssoAppIds"`
	Editable         bool           `json:"editable"`
	Password         bool           `json:"password"`
}

type tenantJSON struct {
	TenantID    string   `json:"tenantId"`
	TenantName  string   `json:"tenantName,omitempty"`
	RoleNames   []string `json:"roleNames"`
	Permissions []string `json:"permissions"`
}

func (u *User) json() userJSON {
	j := userJSON{
		UserID: u.UserID, LoginIDs: orEmpty(u.LoginIDs), Name: u.Name, GivenName: u.GivenName,
		MiddleName: u.MiddleName, FamilyName: u.FamilyName, Email: u.Email, Phone: u.Phone,
		VerifiedEmail: u.VerifiedEmail, VerifiedPhone: u.VerifiedPhone, RoleNames: orEmpty(u.RoleNames),
		UserTenants: []tenantJSON{}, Status: u.Status, ExternalIDs: orEmpty(u.LoginIDs), Picture: u.Picture,
		Test: u.Test, CustomAttributes: maps.Clone(u.CustomAttributes), CreatedTime: u.CreatedTime,
		SSOAppIDs: orEmpty(u.SSOAppIDs), Editable: true,
	}
	if j.CustomAttributes == nil {
		j.CustomAttributes = map[string]any{}
	}
	for _, t := range u.Tenants {
		j.UserTenants = append(j.UserTenants, tenantJSON{TenantID: t.TenantID, TenantName: t.TenantID,
			RoleNames: orEmpty(t.RoleNames), Permissions: []string{}})
	}
	return j
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

// userBody is a user in a request: create, batch create, update and patch. A pointer
// is nil when the key is absent or null. Go's decoder matches keys without case, so
// ssoAppIDs (the SDKs) and ssoAppIds (the docs) both land in SSOAppIDs.
type userBody struct {
	LoginID               *string            `json:"loginId"`
	UserID                *string            `json:"userId"`
	Email                 *string            `json:"email"`
	Phone                 *string            `json:"phone"`
	DisplayName           *string            `json:"displayName"` // the SDKs' spelling
	Name                  *string            `json:"name"`        // the docs' and patch's spelling
	GivenName             *string            `json:"givenName"`
	MiddleName            *string            `json:"middleName"`
	FamilyName            *string            `json:"familyName"`
	RoleNames             *[]string          `json:"roleNames"`
	UserTenants           *[]tenantBody      `json:"userTenants"`
	CustomAttributes      *map[string]any    `json:"customAttributes"`
	Picture               *string            `json:"picture"`
	AdditionalLoginIDs    *[]string          `json:"additionalLoginIds"`    // the SDKs
	AdditionalIdentifiers *[]string          `json:"additionalIdentifiers"` // the docs
	SSOAppIDs             *[]string          `json:"ssoAppIDs"`
	VerifiedEmail         *bool              `json:"verifiedEmail"`
	VerifiedPhone         *bool              `json:"verifiedPhone"`
	Invite                *bool              `json:"invite"`
	InviteURL             *string            `json:"inviteUrl"`
	SendMail              *bool              `json:"sendMail"`
	Status                *string            `json:"status"`
	Test                  *bool              `json:"test"`
	TemplateOptions       *map[string]string `json:"templateOptions"`
}

type tenantBody struct {
	TenantID  string   `json:"tenantId"`
	RoleNames []string `json:"roleNames"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func list(p *[]string) []string {
	if p == nil {
		return nil
	}
	return slices.Clone(*p)
}

// displayName is the display name a body gives, under either spelling, and whether it
// gives one.
func (b *userBody) displayName() (string, bool) {
	switch {
	case b.DisplayName != nil:
		return *b.DisplayName, true
	case b.Name != nil:
		return *b.Name, true
	}
	return "", false
}

// additional is the additional login ids a body gives, under either spelling.
func (b *userBody) additional() ([]string, bool) {
	switch {
	case b.AdditionalLoginIDs != nil:
		return list(b.AdditionalLoginIDs), true
	case b.AdditionalIdentifiers != nil:
		return list(b.AdditionalIdentifiers), true
	}
	return nil, false
}

func tenantsOf(p *[]tenantBody) []Tenant {
	if p == nil {
		return nil
	}
	var ts []Tenant
	for _, t := range *p {
		ts = append(ts, Tenant{TenantID: t.TenantID, RoleNames: slices.Clone(t.RoleNames)})
	}
	return ts
}
