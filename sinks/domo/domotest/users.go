package domotest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The /v1/users endpoints.

// stringFields are the user's string fields as the API names them, and where User
// keeps each.
func stringFields(u *User) map[string]*string {
	return map[string]*string{
		"name": &u.Name, "email": &u.Email, "role": &u.Role, "title": &u.Title, "alternateEmail": &u.AlternateEmail,
		"phone": &u.Phone, "location": &u.Location, "timezone": &u.Timezone, "locale": &u.Locale,
		"employeeId": &u.EmployeeID, "department": &u.Department,
	}
}

var (
	emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	// canonicalInt is an employeeNumber that is answered as a JSON number.
	canonicalInt = regexp.MustCompile(`^(0|[1-9][0-9]{0,17})$`)
)

// decodeUser reads a create or update body into a user and checks it: name, email and
// a role are required. Read-only fields (id, createdAt, groups, ...) and fields it
// does not know are ignored. It answers the request when the body is refused.
func (s *Server) decodeUser(w http.ResponseWriter, r *http.Request) (*User, bool) {
	body, _ := io.ReadAll(r.Body)
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		s.writeError(w, r, http.StatusBadRequest, "Could not read JSON document: a user object is expected")
		return nil, false
	}
	u := &User{}
	for key, dst := range stringFields(u) {
		raw, ok := m[key]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			s.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Could not read JSON document: %s must be a string", key))
			return nil, false
		}
	}
	if raw, ok := m["roleId"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &u.RoleID); err != nil {
			s.writeError(w, r, http.StatusBadRequest, "Could not read JSON document: roleId must be a number")
			return nil, false
		}
	}
	if raw, ok := m["employeeNumber"]; ok && string(raw) != "null" {
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		_ = d.Decode(&v)
		switch v := v.(type) {
		case string:
			u.EmployeeNumber = v
		case json.Number:
			u.EmployeeNumber = v.String()
		default:
			s.writeError(w, r, http.StatusBadRequest, "Could not read JSON document: employeeNumber must be a number or a string")
			return nil, false
		}
	}
	var problem string
	switch {
	case strings.TrimSpace(u.Name) == "":
		problem = "name is required"
	case strings.TrimSpace(u.Email) == "":
		problem = "email is required"
	case !emailPattern.MatchString(u.Email):
		problem = "Invalid email address: " + u.Email
	default:
		problem = s.resolveRole(u)
	}
	if problem != "" {
		s.writeError(w, r, http.StatusBadRequest, problem)
		return nil, false
	}
	return u, true
}

// resolveRole sets u's role name and id from what was sent, or says what is wrong.
// Standard roles go by name (matched exactly), custom roles by roleId.
func (s *Server) resolveRole(u *User) string {
	switch {
	case u.RoleID != 0:
		name, ok := s.roleNamesByID[u.RoleID]
		if !ok {
			return fmt.Sprintf("Invalid roleId: %d", u.RoleID)
		}
		if u.Role != "" && u.Role != name {
			return fmt.Sprintf("role %q does not match roleId %d", u.Role, u.RoleID)
		}
		u.Role = name
	case u.Role == "":
		return "role is required"
	default:
		id, ok := standardRoles[u.Role]
		if !ok {
			return fmt.Sprintf("Invalid role: %q. Valid roles are Admin, Privileged and Participant (a custom role goes by roleId)", u.Role)
		}
		u.RoleID = id
	}
	return ""
}

// userJSON is a user as the API answers it.
func userJSON(u *User) map[string]any {
	if u.Deleted {
		return map[string]any{"id": u.ID, "name": u.Name, "email": u.Email, "deleted": true}
	}
	m := map[string]any{
		"id": u.ID, "role": u.Role, "roleId": u.RoleID,
		"createdAt": u.CreatedAt.Format(time.RFC3339), "updatedAt": u.UpdatedAt.Format(time.RFC3339),
		"image":  fmt.Sprintf("https://domotest.invalid/avatar/%d", u.ID),
		"groups": []map[string]any{{"id": 1, "name": "Default"}},
	}
	for key, v := range stringFields(u) {
		if *v != "" {
			m[key] = *v
		}
	}
	switch {
	case canonicalInt.MatchString(u.EmployeeNumber):
		n, _ := strconv.ParseInt(u.EmployeeNumber, 10, 64)
		m["employeeNumber"] = n
	case u.EmployeeNumber != "":
		m["employeeNumber"] = u.EmployeeNumber
	}
	return m
}

// userByPath finds the user the path names, and answers 404 (or 400 for an id that
// is not a number) when there is none; deleted ones are found only when withDeleted.
// s.mu is held.
func (s *Server) userByPath(w http.ResponseWriter, r *http.Request, withDeleted bool) (*User, bool) {
	raw := strings.TrimPrefix(r.URL.Path, "/v1/users/")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Invalid user id: %q", raw))
		return nil, false
	}
	u, ok := s.users[id]
	if !ok || u.Deleted && !withDeleted {
		s.writeError(w, r, http.StatusNotFound, fmt.Sprintf("User not found: %d", id))
		return nil, false
	}
	return u, true
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	if !s.authenticate(w, r) {
		return
	}
	invite := false
	switch v := r.URL.Query().Get("sendInvite"); v {
	case "", "false":
	case "true":
		invite = true
	default:
		s.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Invalid value for sendInvite: %q", v))
		return
	}
	u, ok := s.decodeUser(w, r)
	if !ok {
		return
	}
	if s.byEmail(u.Email, 0) != nil {
		s.writeError(w, r, s.opt.DuplicateStatus, fmt.Sprintf("A user with the email address %s already exists", u.Email))
		return
	}
	u.ID = s.nextID
	s.nextID++
	u.Invited = invite
	u.CreatedAt = s.opt.Now().UTC().Truncate(time.Second)
	u.UpdatedAt = u.CreatedAt
	s.users[u.ID] = u
	writeJSON(w, s.opt.CreateStatus, userJSON(u))
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	if !s.authenticate(w, r) {
		return
	}
	q := r.URL.Query()
	limit, offset := 50, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			s.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Invalid limit %q: between 1 and 500", v))
			return
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Invalid offset %q", v))
			return
		}
		offset = n
	}
	var live []*User
	for _, u := range s.users {
		if !u.Deleted {
			live = append(live, u)
		}
	}
	slices.SortFunc(live, func(a, b *User) int { return cmp.Compare(a.ID, b.ID) })
	page := []map[string]any{}
	for i := offset; i < len(live) && i < offset+limit; i++ {
		page = append(page, userJSON(live[i]))
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	if !s.authenticate(w, r) {
		return
	}
	if u, ok := s.userByPath(w, r, true); ok {
		writeJSON(w, http.StatusOK, userJSON(u))
	}
}

// handleUpdate replaces the user: every field not sent is cleared.
func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	if !s.authenticate(w, r) {
		return
	}
	old, ok := s.userByPath(w, r, false)
	if !ok {
		return
	}
	u, ok := s.decodeUser(w, r)
	if !ok {
		return
	}
	if s.byEmail(u.Email, old.ID) != nil {
		s.writeError(w, r, s.opt.DuplicateStatus, fmt.Sprintf("A user with the email address %s already exists", u.Email))
		return
	}
	u.ID, u.CreatedAt, u.Invited = old.ID, old.CreatedAt, old.Invited
	u.UpdatedAt = s.opt.Now().UTC().Truncate(time.Second)
	*old = *u
	if s.opt.EmptyPutBody {
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, userJSON(old))
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	if !s.authenticate(w, r) {
		return
	}
	if u, ok := s.userByPath(w, r, false); ok {
		u.Deleted = true
		w.WriteHeader(http.StatusNoContent)
	}
}
