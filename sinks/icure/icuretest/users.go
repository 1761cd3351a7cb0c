package icuretest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

var (
	emailRule = regexp.MustCompile(`^.+@.+$`)
	phoneRule = regexp.MustCompile(`^\+?[0-9]{6,20}$`)
)

// modelled are the UserDto fields the server interprets; every other field is kept as
// written.
var modelled = map[string]bool{
	"id": true, "rev": true, "created": true, "deletionDate": true, "name": true, "login": true, "email": true,
	"mobilePhone": true, "status": true, "passwordHash": true, "patientId": true, "healthcarePartyId": true,
	"groupId": true, "authenticationTokens": true, "systemMetadata": true,
}

// input is a UserDto as a client sent it.
type input struct {
	id, rev, name, login, email, mobilePhone, status, patientID, hcpID string

	passwordHash string // "" when absent or null
	deletionDate int64
	tokenKeys    []string // the keys of authenticationTokens
	extra        map[string]json.RawMessage
}

// parseUser reads a UserDto. Its errors are 400s, as Jackson's are: see badInput.
func parseUser(r *http.Request) (*input, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, err
	}
	in := &input{extra: map[string]json.RawMessage{}}
	for key, dst := range map[string]*string{"id": &in.id, "rev": &in.rev, "name": &in.name, "login": &in.login,
		"email": &in.email, "mobilePhone": &in.mobilePhone, "status": &in.status, "patientId": &in.patientID,
		"healthcarePartyId": &in.hcpID, "passwordHash": &in.passwordHash} {
		if raw, ok := d[key]; ok && !null(raw) {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, fmt.Errorf("%s: a string is expected", key)
			}
		}
	}
	if raw, ok := d["deletionDate"]; ok && !null(raw) {
		if err := json.Unmarshal(raw, &in.deletionDate); err != nil {
			return nil, errors.New("deletionDate: a number is expected")
		}
	}
	if raw, ok := d["authenticationTokens"]; ok && !null(raw) {
		var tokens map[string]json.RawMessage
		if err := json.Unmarshal(raw, &tokens); err != nil {
			return nil, errors.New("authenticationTokens: an object is expected")
		}
		in.tokenKeys = slices.Collect(maps.Keys(tokens))
	}
	for k, v := range d {
		if !modelled[k] {
			in.extra[k] = v
		}
	}
	return in, nil
}

// badInput answers a body that cannot be read as a UserDto.
func badInput(w http.ResponseWriter, err error) {
	writeMessage(w, http.StatusBadRequest, "Failed to read HTTP message: "+err.Error())
}

func null(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func blank(s string) bool { return strings.TrimSpace(s) == "" }

// validID is EntityIdValidation: no / \ ? # % ; whitespace or control character.
func validID(id string) bool {
	return !blank(id) && !strings.ContainsFunc(id, func(r rune) bool {
		return strings.ContainsRune(`/\?#%;`, r) || unicode.IsSpace(r) || unicode.IsControl(r)
	})
}

// check applies UserLogicImpl's rules to in, old being the stored user (nil for a
// create), then its defaults; it returns the 400's message, "" if in is fine.
func check(in *input, old *record) string {
	if blank(in.login) && blank(in.email) && blank(in.mobilePhone) {
		return "createUser: Requirements are not met. One of Email, Login or Mobile Phone has to be not null and not blank."
	}
	if !blank(in.email) && !emailRule.MatchString(in.email) {
		return fmt.Sprintf("Invalid email %s", in.email)
	}
	if !blank(in.mobilePhone) && (old == nil || old.mobilePhone != in.mobilePhone) && !phoneRule.MatchString(in.mobilePhone) {
		return fmt.Sprintf("Invalid mobile phone %s", in.mobilePhone)
	}
	switch in.status {
	case "", statusActive, statusDisabled, statusRegistering:
	default:
		return fmt.Sprintf("Failed to read HTTP message: status: %q is not one of ACTIVE, DISABLED, REGISTERING", in.status)
	}
	if blank(in.email) {
		in.email = ""
	}
	if blank(in.mobilePhone) {
		in.mobilePhone = ""
	}
	if blank(in.login) {
		in.login = cmpOr(in.email, in.mobilePhone)
	}
	if in.status == "" {
		in.status = statusActive
	}
	return ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// duplicate returns DuplicateUserException's message when another live user holds
// in's email or login, each checked only when it changed. The phone check compares
// the login with the phone numbers in use, as UserLogicImpl does. s.mu is held.
func (s *Server) duplicate(in *input, old *record) string {
	emailChanged := in.email != "" && (old == nil || old.email != in.email)
	loginChanged := in.login != "" && (old == nil || old.login != in.login)
	for _, id := range slices.Sorted(maps.Keys(s.users)) {
		u := s.users[id]
		if u.deletionDate != 0 || old != nil && u.id == old.id {
			continue
		}
		switch {
		case emailChanged && u.email == in.email:
			return fmt.Sprintf("A user with Email %s already exists", in.email)
		case loginChanged && u.login == in.login:
			return fmt.Sprintf("A user with Login %s already exists", in.login)
		case loginChanged && u.mobilePhone == in.login:
			return fmt.Sprintf("A user with Phone %s already exists", in.login)
		}
	}
	return ""
}

// handleCreate is POST /rest/v2/user.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	in, err := parseUser(r)
	switch {
	case err != nil:
		badInput(w, err)
		return
	case blank(in.id):
		writeMessage(w, http.StatusBadRequest, "The id of a new user is required")
		return
	case in.rev != "":
		writeMessage(w, http.StatusBadRequest, "A new entity cannot have a rev")
		return
	case !validID(in.id):
		writeMessage(w, http.StatusBadRequest, fmt.Sprintf("Invalid id %q: it may not contain / \\ ? # %% ; whitespace or control characters", in.id))
		return
	}
	if msg := check(in, nil); msg != "" {
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	if msg := s.duplicate(in, nil); msg != "" {
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	if _, ok := s.users[in.id]; ok {
		// CouchDB refuses a new document under an id it holds, deleted or not.
		writeMessage(w, http.StatusConflict, "Document update conflict.")
		return
	}
	u := &record{id: in.id, created: s.now().UnixMilli()}
	u.assign(in)
	if in.passwordHash != "" && in.passwordHash != "*" {
		u.passwordHash = hashPassword(in.passwordHash)
	}
	s.bump(u)
	s.users[u.id] = u
	writeJSON(w, http.StatusOK, u.dto())
}

// assign sets the fields a create or modify writes.
func (u *record) assign(in *input) {
	u.name, u.login, u.email, u.mobilePhone, u.status = in.name, in.login, in.email, in.mobilePhone, in.status
	u.patientID, u.hcpID, u.deletionDate, u.extra = in.patientID, in.hcpID, in.deletionDate, in.extra
}

// handleModify is PUT /rest/v2/user: the full document at its current rev.
func (s *Server) handleModify(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	in, err := parseUser(r)
	switch {
	case err != nil:
		badInput(w, err)
		return
	case blank(in.id):
		writeMessage(w, http.StatusBadRequest, "Cannot modify a user without an id")
		return
	case in.rev == "":
		writeMessage(w, http.StatusBadRequest, "Cannot modify a user without a rev")
		return
	}
	u, ok := s.users[in.id]
	switch {
	case !ok:
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("User %s not found", in.id))
		return
	case in.rev != u.rev:
		writeMessage(w, http.StatusConflict, "Outdated revision")
		return
	}
	if msg := check(in, u); msg != "" {
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	if msg := s.duplicate(in, u); msg != "" {
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	u.assign(in)
	switch in.passwordHash {
	case "*": // the stored password stays
	case "":
		u.passwordHash = "" // the full document has none
	default:
		u.passwordHash = hashPassword(in.passwordHash)
	}
	// Token values are never sent: a token stays while its key is in the document.
	for key := range u.tokens {
		if !slices.Contains(in.tokenKeys, key) {
			delete(u.tokens, key)
		}
	}
	s.bump(u)
	writeJSON(w, http.StatusOK, u.dto())
}

// handleGet is GET /rest/v2/user/{id}: deleted users too, with their deletionDate.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, _ principal, args []string) {
	u, ok := s.users[args[0]]
	if !ok {
		writeSpringError(w, r, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, u.dto())
	if n := s.touchAfter[u.id]; n > 0 {
		s.touchAfter[u.id] = n - 1
		s.touch(u.id)
	}
}

// handleByEmail is GET /rest/v2/user/byEmail/{email}: the by_email view, keyed on the
// exact stored email, without deleted users.
func (s *Server) handleByEmail(w http.ResponseWriter, r *http.Request, _ principal, args []string) {
	for _, id := range slices.Sorted(maps.Keys(s.users)) {
		if u := s.users[id]; u.deletionDate == 0 && u.email == args[0] {
			writeJSON(w, http.StatusOK, u.dto())
			return
		}
	}
	writeSpringError(w, r, http.StatusNotFound)
}

// handleCurrent is GET /rest/v2/user/current.
func (s *Server) handleCurrent(w http.ResponseWriter, _ *http.Request, who principal, _ []string) {
	if who.admin {
		writeJSON(w, http.StatusOK, map[string]any{"id": "admin", "login": s.opt.Username, "status": statusActive,
			"systemMetadata": map[string]any{"isAdmin": true, "inheritsRoles": true}})
		return
	}
	writeJSON(w, http.StatusOK, s.users[who.user].dto())
}

// revOf finds the user of a delete, undelete or purge and checks the rev given, if
// any; it answers the error itself. s.mu is held.
func (s *Server) revOf(w http.ResponseWriter, r *http.Request, id string, required bool) (*record, bool) {
	rev := r.URL.Query().Get("rev")
	u, ok := s.users[id]
	switch {
	case required && rev == "":
		writeMessage(w, http.StatusBadRequest, "Required query parameter 'rev' is not present.")
	case !ok:
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("User %s not found", id))
	case rev != "" && rev != u.rev:
		writeMessage(w, http.StatusConflict, "Outdated revision")
	default:
		return u, true
	}
	return nil, false
}

// handleDelete is DELETE /rest/v2/user/{id}?rev=: a soft delete.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, _ principal, args []string) {
	u, ok := s.revOf(w, r, args[0], false)
	if !ok {
		return
	}
	u.deletionDate = s.now().UnixMilli()
	s.bump(u)
	writeJSON(w, http.StatusOK, map[string]string{"id": u.id, "rev": u.rev})
}

// handleUndelete is POST /rest/v2/user/undelete/{id}?rev=.
func (s *Server) handleUndelete(w http.ResponseWriter, r *http.Request, _ principal, args []string) {
	u, ok := s.revOf(w, r, args[0], true)
	if !ok {
		return
	}
	u.deletionDate = 0
	s.bump(u)
	writeJSON(w, http.StatusOK, u.dto())
}

// handlePurge is DELETE /rest/v2/user/purge/{id}?rev=: a hard delete.
func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request, _ principal, args []string) {
	u, ok := s.revOf(w, r, args[0], true)
	if !ok {
		return
	}
	delete(s.users, u.id)
	writeJSON(w, http.StatusOK, map[string]string{"id": u.id, "rev": u.rev})
}

// handleToken is POST /rest/v2/user/token/{userId}/{key}?tokenValidity=<seconds>: it
// makes (or replaces) the user's token under key, with the value of the request's
// token header or a random one, and answers it. The user may be named by id, login,
// email or phone (getUserByGenericIdentifier). A validity below 1 s becomes 1 s; a
// token shorter than 10 characters is valid at most 600 s.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request, _ principal, args []string) {
	u := s.byIdentifier(args[0])
	if u == nil {
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("User %s not found", args[0]))
		return
	}
	validity := int64(3600)
	if v := r.URL.Query().Get("tokenValidity"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeMessage(w, http.StatusBadRequest, "tokenValidity: a number of seconds is expected")
			return
		}
		validity = n
	}
	value := r.Header.Get("token")
	if value == "" {
		value = rand.Text()
	}
	validity = max(validity, 1)
	if len(value) < 10 {
		validity = min(validity, 600)
	}
	now := s.now()
	if u.tokens == nil {
		u.tokens = map[string]Token{}
	}
	u.tokens[args[1]] = Token{Value: value, Created: now, Expires: now.Add(time.Duration(validity) * time.Second)}
	s.bump(u)
	if s.opt.TokenAsJSON {
		writeJSON(w, http.StatusOK, value)
		return
	}
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(value))
}

// byIdentifier finds a live user by id, login, email or phone, in that order. s.mu is
// held.
func (s *Server) byIdentifier(v string) *record {
	if u, ok := s.users[v]; ok && u.deletionDate == 0 {
		return u
	}
	ids := slices.Sorted(maps.Keys(s.users))
	for _, field := range []func(*record) string{
		func(u *record) string { return u.login },
		func(u *record) string { return u.email },
		func(u *record) string { return u.mobilePhone },
	} {
		for _, id := range ids {
			if u := s.users[id]; u.deletionDate == 0 && field(u) == v {
				return u
			}
		}
	}
	return nil
}

// handleList is GET /rest/v2/user?startKey=&startDocumentId=&limit=&skipPatients=:
// live users in id order (the key is the id), skipping those linked to a patient
// unless skipPatients=false. A page has limit rows; when more follow, nextKeyPair
// names the first of the next page; the last page has none.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	q := r.URL.Query()
	limit := s.opt.DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeMessage(w, http.StatusBadRequest, "limit: a positive number is expected")
			return
		}
		limit = n
	}
	skipPatients := q.Get("skipPatients") != "false"
	start := cmpOr(q.Get("startKey"), q.Get("startDocumentId"))
	var rows []map[string]any
	var next string
	for _, id := range slices.Sorted(maps.Keys(s.users)) {
		u := s.users[id]
		if id < start || u.deletionDate != 0 || skipPatients && u.patientID != "" {
			continue
		}
		if len(rows) == limit {
			next = id
			break
		}
		rows = append(rows, u.dto())
	}
	page := map[string]any{"rows": orEmpty(rows)}
	if next != "" {
		page["nextKeyPair"] = map[string]string{"startKey": next, "startKeyDocId": next}
	}
	writeJSON(w, http.StatusOK, page)
}

func orEmpty(rows []map[string]any) []map[string]any {
	if rows == nil {
		return []map[string]any{}
	}
	return rows
}

// dto is the UserDto the API answers: passwordHash "*" when a password is set, token
// metadata without values, and the read-only systemMetadata.
func (u *record) dto() map[string]any {
	m := make(map[string]any, len(u.extra)+16)
	for _, k := range []string{"roles", "permissions", "properties"} {
		m[k] = []any{}
	}
	for k, v := range u.extra {
		m[k] = v
	}
	m["id"], m["rev"], m["created"], m["status"] = u.id, u.rev, u.created, u.status
	for k, v := range map[string]string{"name": u.name, "login": u.login, "email": u.email, "mobilePhone": u.mobilePhone,
		"patientId": u.patientID, "healthcarePartyId": u.hcpID} {
		if v != "" {
			m[k] = v
		}
	}
	if u.deletionDate != 0 {
		m["deletionDate"] = u.deletionDate
	}
	if u.passwordHash != "" {
		m["passwordHash"] = "*"
	}
	tokens := map[string]any{}
	for k, t := range u.tokens {
		tokens[k] = map[string]any{"creationTime": t.Created.UnixMilli(), "validity": int64(t.Expires.Sub(t.Created) / time.Second)}
	}
	m["authenticationTokens"] = tokens
	m["systemMetadata"] = map[string]any{"isAdmin": false, "inheritsRoles": true, "roles": []string{},
		"loginIdentifiers": []any{}, "verifiedEmail": false, "verifiedMobilePhone": false, "uses2fa": false}
	return m
}
