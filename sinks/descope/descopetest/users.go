package descopetest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// reqError is a refusal: its status, Descope error code and message.
type reqError struct {
	status  int
	code    string
	message string
}

func (e *reqError) write(w http.ResponseWriter) {
	desc := http.StatusText(e.status)
	switch e.code {
	case CodeUserExists:
		desc = "User already exists"
	case CodeValidation:
		desc = "Request validation failed"
	case CodeMissingArgs:
		desc = "Missing arguments"
	case CodeUpdateConflict:
		desc = "Update conflict"
	}
	writeError(w, e.status, e.code, desc, e.message)
}

func missing(what string) *reqError {
	return &reqError{http.StatusBadRequest, CodeMissingArgs, "missing " + what}
}

func invalid(format string, a ...any) *reqError {
	return &reqError{http.StatusBadRequest, CodeValidation, fmt.Sprintf(format, a...)}
}

// exists is the answer to a loginId that is taken. What the management API answers
// is not documented; the server answers 409 with E062107, the code Descope documents
// for a user that already exists (at sign-up).
func exists(loginID string) *reqError {
	return &reqError{http.StatusConflict, CodeUserExists, fmt.Sprintf("user %q already exists", loginID)}
}

// target finds the user a request names: its loginId key (a loginId or a userId),
// else its userId key. It answers 400 or 404 when there is none. s.mu is held.
func (s *Server) target(w http.ResponseWriter, loginID, userID string) *User {
	key := loginID
	if key == "" {
		key = userID
	}
	if key == "" {
		missing("loginId").write(w)
		return nil
	}
	u := s.resolve(key)
	if u == nil {
		notFound(w, key)
	}
	return u
}

func (s *Server) writeUser(w http.ResponseWriter, u *User) {
	writeJSON(w, http.StatusOK, map[string]any{"user": u.json()})
}

// checkNames refuses roles and tenants the project does not have, when it lists them.
func (s *Server) checkNames(roles []string, tenants []Tenant) *reqError {
	for _, t := range tenants {
		if t.TenantID == "" {
			return missing("tenantId")
		}
		if s.opt.Tenants != nil && !slices.Contains(s.opt.Tenants, t.TenantID) {
			return invalid("tenant %q not found", t.TenantID)
		}
		roles = append(roles, t.RoleNames...)
	}
	for _, r := range roles {
		if s.opt.Roles != nil && !slices.Contains(s.opt.Roles, r) {
			return invalid("role %q not found", r)
		}
	}
	return nil
}

func checkEmail(email string) *reqError {
	if email != "" && (strings.Count(email, "@") != 1 || strings.HasPrefix(email, "@") || strings.HasSuffix(email, "@")) {
		return invalid("%q is not a valid email", email)
	}
	return nil
}

var statuses = []string{"enabled", "disabled", "invited"}

// newUser builds the user a create body asks for, without storing it. taken holds
// the lowercased loginIds already claimed by earlier users of the same batch. s.mu is
// held.
func (s *Server) newUser(b *userBody, invite *inviteOptions, taken map[string]bool) (*User, *reqError) {
	login := strings.TrimSpace(str(b.LoginID))
	if login == "" {
		return nil, missing("loginId")
	}
	ids := []string{login}
	more, _ := b.additional()
	for _, l := range more {
		if l != "" && !slices.ContainsFunc(ids, func(x string) bool { return strings.EqualFold(x, l) }) {
			ids = append(ids, l)
		}
	}
	for _, l := range ids {
		if s.resolveLogin(l) != nil || taken[strings.ToLower(l)] {
			return nil, exists(l)
		}
	}
	name, _ := b.displayName()
	u := &User{
		LoginIDs: ids, Name: name, GivenName: str(b.GivenName), MiddleName: str(b.MiddleName),
		FamilyName: str(b.FamilyName), Email: str(b.Email), Phone: str(b.Phone), Picture: str(b.Picture),
		RoleNames: list(b.RoleNames), Tenants: tenantsOf(b.UserTenants), SSOAppIDs: list(b.SSOAppIDs),
		VerifiedEmail: b.VerifiedEmail != nil && *b.VerifiedEmail, VerifiedPhone: b.VerifiedPhone != nil && *b.VerifiedPhone,
		Test: b.Test != nil && *b.Test, Status: "enabled",
	}
	if b.CustomAttributes != nil {
		u.CustomAttributes = dropNulls(*b.CustomAttributes)
	}
	switch {
	case b.Status != nil && *b.Status != "":
		if !slices.Contains(statuses, *b.Status) {
			return nil, invalid("status %q: enabled, disabled or invited", *b.Status)
		}
		u.Status = *b.Status
	case invite != nil && invite.Invite:
		u.Status, u.InviteURL, u.InviteMail = "invited", invite.InviteURL, invite.SendMail == nil || *invite.SendMail
	case b.Invite != nil && *b.Invite:
		u.Status, u.InviteURL, u.InviteMail = "invited", str(b.InviteURL), b.SendMail == nil || *b.SendMail
	}
	if e := checkEmail(u.Email); e != nil {
		return nil, e
	}
	if other := s.emailTakenBy(u.Email, nil); other != nil {
		return nil, &reqError{http.StatusConflict, CodeUserExists, fmt.Sprintf("email %q is used by another user", u.Email)}
	}
	if e := s.checkNames(u.RoleNames, u.Tenants); e != nil {
		return nil, e
	}
	return u, nil
}

// inviteOptions are a batch create's invitation fields, for all its users.
type inviteOptions struct {
	Invite    bool   `json:"invite"`
	InviteURL string `json:"inviteUrl"`
	SendMail  *bool  `json:"sendMail"`
}

func dropNulls(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = v
		}
	}
	return out
}

func (s *Server) handleCreate(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b userBody
	if !decode(w, body, &b) {
		return
	}
	u, e := s.newUser(&b, nil, nil)
	if e != nil {
		e.write(w)
		return
	}
	s.insert(u)
	s.writeUser(w, u)
}

// handleBatch creates each user it can and lists the others in failedUsers, or, with
// Options.BatchAllOrNothing, creates none when one fails.
func (s *Server) handleBatch(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		Users []userBody `json:"users"`
		inviteOptions
	}
	if !decode(w, body, &b) {
		return
	}
	if len(b.Users) == 0 {
		missing("users").write(w)
		return
	}
	type failed struct {
		Failure string   `json:"failure"`
		User    userJSON `json:"user"`
	}
	answer := struct {
		CreatedUsers     []userJSON        `json:"createdUsers"`
		FailedUsers      []failed          `json:"failedUsers"`
		AdditionalErrors map[string]string `json:"additionalErrors"`
	}{CreatedUsers: []userJSON{}, FailedUsers: []failed{}, AdditionalErrors: map[string]string{}}
	taken := map[string]bool{}
	var made []*User
	for i := range b.Users {
		u, e := s.newUser(&b.Users[i], &b.inviteOptions, taken)
		if e != nil {
			if s.opt.BatchAllOrNothing {
				e.write(w)
				return
			}
			sent := User{LoginIDs: []string{str(b.Users[i].LoginID)}, Email: str(b.Users[i].Email)}
			answer.FailedUsers = append(answer.FailedUsers, failed{Failure: e.message, User: sent.json()})
			continue
		}
		for _, l := range u.LoginIDs {
			taken[strings.ToLower(l)] = true
		}
		made = append(made, u)
	}
	for _, u := range made {
		s.insert(u)
		answer.CreatedUsers = append(answer.CreatedUsers, u.json())
	}
	writeJSON(w, http.StatusOK, answer)
}

// handleUpdate is the full overwrite: every field the body does not give is cleared.
// The user keeps its userId, primary loginId, status and creation time.
func (s *Server) handleUpdate(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b userBody
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, str(b.LoginID), str(b.UserID))
	if u == nil {
		return
	}
	ids := []string{u.LoginIDs[0]}
	more, _ := b.additional()
	for _, l := range more {
		if other := s.takenBy(l, u); other != nil {
			exists(l).write(w)
			return
		}
		if l != "" && !slices.ContainsFunc(ids, func(x string) bool { return strings.EqualFold(x, l) }) {
			ids = append(ids, l)
		}
	}
	name, _ := b.displayName()
	next := User{
		UserID: u.UserID, LoginIDs: ids, Name: name, GivenName: str(b.GivenName), MiddleName: str(b.MiddleName),
		FamilyName: str(b.FamilyName), Email: str(b.Email), Phone: str(b.Phone), Picture: str(b.Picture),
		RoleNames: list(b.RoleNames), Tenants: tenantsOf(b.UserTenants), SSOAppIDs: list(b.SSOAppIDs),
		VerifiedEmail: b.VerifiedEmail != nil && *b.VerifiedEmail, VerifiedPhone: b.VerifiedPhone != nil && *b.VerifiedPhone,
		Status: u.Status, Test: u.Test, CreatedTime: u.CreatedTime, seq: u.seq,
	}
	if b.CustomAttributes != nil {
		next.CustomAttributes = dropNulls(*b.CustomAttributes)
	}
	if e := checkEmail(next.Email); e != nil {
		e.write(w)
		return
	}
	if e := s.checkNames(next.RoleNames, next.Tenants); e != nil {
		e.write(w)
		return
	}
	s.setLoginIDs(u, ids)
	*u = next
	s.writeUser(w, u)
}

// handlePatch changes only the fields the body gives (a null is not given). A
// customAttributes, roleNames or userTenants it gives replaces the whole map or list:
// the stricter of the readings the documents allow.
func (s *Server) handlePatch(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b userBody
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, str(b.LoginID), str(b.UserID))
	if u == nil {
		return
	}
	next := u.clone()
	if v, ok := b.displayName(); ok {
		next.Name = v
	}
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&next.GivenName, b.GivenName)
	set(&next.MiddleName, b.MiddleName)
	set(&next.FamilyName, b.FamilyName)
	set(&next.Email, b.Email)
	set(&next.Phone, b.Phone)
	set(&next.Picture, b.Picture)
	if b.VerifiedEmail != nil {
		next.VerifiedEmail = *b.VerifiedEmail
	}
	if b.VerifiedPhone != nil {
		next.VerifiedPhone = *b.VerifiedPhone
	}
	if b.RoleNames != nil {
		next.RoleNames = list(b.RoleNames)
	}
	if b.UserTenants != nil {
		next.Tenants = tenantsOf(b.UserTenants)
	}
	if b.CustomAttributes != nil {
		next.CustomAttributes = dropNulls(*b.CustomAttributes)
	}
	if b.SSOAppIDs != nil {
		next.SSOAppIDs = list(b.SSOAppIDs)
	}
	if b.Status != nil {
		if !slices.Contains(statuses, *b.Status) {
			invalid("status %q: enabled, disabled or invited", *b.Status).write(w)
			return
		}
		next.Status = *b.Status
	}
	if more, ok := b.additional(); ok {
		ids := []string{u.LoginIDs[0]}
		for _, l := range more {
			if s.takenBy(l, u) != nil {
				exists(l).write(w)
				return
			}
			if l != "" && !slices.ContainsFunc(ids, func(x string) bool { return strings.EqualFold(x, l) }) {
				ids = append(ids, l)
			}
		}
		next.LoginIDs = ids
	}
	if e := checkEmail(next.Email); e != nil {
		e.write(w)
		return
	}
	if b.Email != nil {
		if other := s.emailTakenBy(next.Email, u); other != nil {
			(&reqError{http.StatusConflict, CodeUserExists, fmt.Sprintf("email %q is used by another user", next.Email)}).write(w)
			return
		}
	}
	if e := s.checkNames(next.RoleNames, next.Tenants); e != nil {
		e.write(w)
		return
	}
	s.setLoginIDs(u, next.LoginIDs)
	*u = next
	s.writeUser(w, u)
}

// handleDelete deletes one user; an unknown one is 404 E112102 (whether Descope
// answers so is not confirmed: the stricter reading).
func (s *Server) handleDelete(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		LoginID string `json:"loginId"`
		UserID  string `json:"userId"`
	}
	if !decode(w, body, &b) {
		return
	}
	u := s.target(w, b.LoginID, b.UserID)
	if u == nil {
		return
	}
	s.remove(u)
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) handleDeleteBatch(w http.ResponseWriter, _ *http.Request, body []byte) {
	var b struct {
		UserIDs []string `json:"userIds"`
	}
	if !decode(w, body, &b) {
		return
	}
	for _, id := range b.UserIDs {
		if u := s.users[id]; u != nil {
			s.remove(u)
		}
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
