// Package icure implements a sync.Sink for iCure (the kraken / Cardinal backend) user
// accounts, through the user REST API v2 under {url}/rest/v2/user.
//
// Accounts are created with POST, changed with a PUT of the whole document at its
// current rev (read first; a 409 for a rev that went stale is answered by reading it
// again and retrying once), disabled and enabled through their status (ACTIVE or
// DISABLED: v2 has no endpoint for it), and deleted softly (DELETE sets deletionDate).
// The document goes back as it was read but for the fields idsync sets, passwordHash
// included: "*" keeps the stored password, and leaving it out would clear it.
//
// Crash safety. iCure lets the client choose a new user's id. idsync names each account
// with a UUID derived from the identity's id: version 5, the SHA-1 of a namespace
// (id_namespace, a fixed one by default) and "idsync:" + the identity's id. One person
// always gets the same id, so a create repeated after a crash (iCure made the account,
// idsync never recorded it) or after a lost answer cannot make a second account:
// iCure refuses the repeated create (the email is taken, or the id is), idsync reads
// the account under that id and brings it to the wanted state. That is also why every
// request, creates included, is safe to retry after 5xx and network errors.
//
// Adoption. iCure has no field where idsync could mark an account as its own, and
// needs none for its own accounts: their ids say so. A create that meets an account
// that is not under the derived id but holds the person's email (GET /byEmail) adopts
// it: the documented adoption key is the email, matched exactly as iCure matches it
// (case-sensitively). An account whose id is itself name-based is not adopted: idsync
// derived it for another identity (or under another namespace), and two identities
// must never share one account; that is an ErrConflict for a person to settle.
//
// A soft-deleted account counts as gone: an update of it is ErrNotFound. A create
// that meets the person's own soft-deleted account (deleted by idsync's delete_after,
// or by hand, and the person is back) undeletes it and brings it to the wanted state:
// the derived id can serve no one else, so refusing would hold the person forever.
//
// The sink reads accounts back (dsync.Reader) but cannot list the ones it owns
// (dsync.Lister): an identity's id cannot be recovered from the hash in the account's
// id. A lost snapshot is rebuilt by creates, which find the accounts under their ids.
package icure

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

const (
	userPath = "/rest/v2/user"

	statusActive   = "ACTIVE"
	statusDisabled = "DISABLED"
)

// Sink applies operations to one iCure group's users.
type Sink struct {
	cfg  Config
	ns   [16]byte
	api  *httpapi.Client
	auth *session
	log  *slog.Logger
}

var (
	_ dsync.Sink    = (*Sink)(nil)
	_ dsync.Reader  = (*Sink)(nil)
	_ dsync.Checker = (*Sink)(nil)
)

// New builds a sink, reading the password file. It does not contact iCure. hc may be
// nil for a client with the configured timeout, and obs nil for no measurements.
func New(cfg Config, hc *http.Client, obs httpapi.Observer, log *slog.Logger) (*Sink, error) {
	if errs := cfg.Validate("icure"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.setDefaults()
	pw, err := secret.Load("password", cfg.Password, cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	ns, err := parseUUID(strings.ToLower(cfg.IDNamespace))
	if err != nil {
		return nil, fmt.Errorf("id_namespace: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api := cfg.NewClient(strings.TrimSuffix(cfg.URL, "/"), hc, httpapi.Client{Obs: obs, Log: log, Error: apiError})
	return &Sink{
		cfg: cfg, ns: ns, api: api, log: log,
		auth: &session{api: api, username: cfg.Username, password: pw, bearer: cfg.Auth == "token", log: log, lock: make(chan struct{}, 1)},
	}, nil
}

// Concurrency is the configured number of identities applied at once.
func (s *Sink) Concurrency() int { return s.cfg.Concurrency }

// Schema: an account takes the login (the email or the username), the email and a
// name (the display name, or else the first and last names); with a patient or
// healthcare party attribute, the attributes. No profiles; deletes are soft.
func (s *Sink) Schema() dsync.Schema {
	user := dsync.FieldUsername | dsync.FieldEmail | dsync.FieldDisplayName | dsync.FieldFirstName | dsync.FieldLastName
	if _, attr := s.link(); attr != "" {
		user |= dsync.FieldAttributes
	}
	return dsync.Schema{User: user, Delete: true}
}

// Apply carries out one operation.
func (s *Sink) Apply(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	var (
		out dsync.Outcome
		err error
	)
	switch op.Kind {
	case dsync.CreateUser:
		out, err = s.create(ctx, op)
	case dsync.UpdateUser:
		err = s.update(ctx, op)
	case dsync.EnableUser, dsync.DisableUser:
		status := statusActive
		if op.Kind == dsync.DisableUser {
			status = statusDisabled
		}
		err = s.modify(ctx, s.accountID(op), nil, func(u user) bool { return u.set("status", status) })
	case dsync.DeleteUser:
		err = s.delete(ctx, s.accountID(op))
	default:
		err = fmt.Errorf("%s: %w", op.Kind, dsync.ErrUnsupported)
	}
	if err != nil {
		return out, fmt.Errorf("icure: %s %s: %w", op.Kind, op.ID, err)
	}
	return out, nil
}

// inviteKey names idsync's token on an account: one token per key, so a new
// invitation replaces the last.
const inviteKey = "idsync-welcome"

// invited adds to out, when op asks for an invitation, a link made from a temporary
// token (POST /token/{userId}/{key}), as iCure's createAndInviteUser does: the account
// first, then the token, then (the engine) the email.
func (s *Sink) invited(ctx context.Context, op dsync.Op, out dsync.Outcome) (dsync.Outcome, error) {
	if !op.Invite || s.cfg.InviteLink == "" {
		return out, nil
	}
	asked := time.Now()
	path := fmt.Sprintf("%s/token/%s/%s?tokenValidity=%d", userPath, url.PathEscape(out.UserID), inviteKey, int64(s.cfg.InviteValidity.Seconds()))
	var raw []byte
	if err := s.do(ctx, "user.token", http.MethodPost, path, nil, &raw); err != nil {
		// The account exists: the error says so, and the next run (create meets its
		// own account) asks again.
		return dsync.Outcome{}, fmt.Errorf("user %s made, its invitation token refused: %w", out.UserID, err)
	}
	token := strings.TrimSpace(string(raw))
	if strings.HasPrefix(token, `"`) { // a JSON string, as some iCure versions answer
		if err := json.Unmarshal(raw, &token); err != nil {
			return dsync.Outcome{}, fmt.Errorf("user %s: the token's answer is not a string", out.UserID)
		}
	}
	if token == "" {
		return dsync.Outcome{}, fmt.Errorf("user %s: an empty token", out.UserID)
	}
	link := strings.NewReplacer("{token}", url.QueryEscape(token), "{user_id}", url.QueryEscape(out.UserID)).Replace(s.cfg.InviteLink)
	out.Invite = &dsync.Invite{Link: link, Expires: asked.Add(s.cfg.InviteValidity)}
	return out, nil
}

// userID is the id idsync gives the account of the identity id.
func (s *Sink) userID(id string) string { return nameUUID(s.ns, "idsync:"+id) }

// accountID is the account an operation applies to: the snapshot's, or the derived
// one if the snapshot has none.
func (s *Sink) accountID(op dsync.Op) string { return cmp.Or(op.UserID, s.userID(op.ID)) }

// user is a UserDto as iCure sent it, every field kept as it came, so that a PUT sends
// the whole document back unchanged but for what idsync sets.
type user map[string]json.RawMessage

// str returns the string field key, "" when absent or null.
func (u user) str(key string) string {
	var v *string
	if json.Unmarshal(u[key], &v) != nil || v == nil {
		return ""
	}
	return *v
}

// deleted reports whether the user is soft-deleted.
func (u user) deleted() bool {
	raw := strings.TrimSpace(string(u["deletionDate"]))
	return raw != "" && raw != "null"
}

// set puts v under key, null when v is empty, and reports whether that changed it.
func (u user) set(key, v string) bool {
	if u.str(key) == v {
		return false
	}
	u[key] = json.RawMessage("null")
	if v != "" {
		u[key], _ = json.Marshal(v)
	}
	return true
}

// login is what becomes the account's login.
func (s *Sink) login(id *dsync.Identity) string {
	if s.cfg.Login == "username" {
		return cmp.Or(id.Username, id.Email)
	}
	return cmp.Or(id.Email, id.Username)
}

// name is the account's name: the display name, or else the first and last names.
func name(id *dsync.Identity) string {
	return cmp.Or(strings.TrimSpace(id.DisplayName), strings.TrimSpace(id.FirstName+" "+id.LastName))
}

// link returns the UserDto field idsync links (patientId or healthcarePartyId) and the
// identity attribute it comes from; both empty when none is configured.
func (s *Sink) link() (field, attr string) {
	switch {
	case s.cfg.PatientIDAttribute != "":
		return "patientId", s.cfg.PatientIDAttribute
	case s.cfg.HealthcarePartyIDAttribute != "":
		return "healthcarePartyId", s.cfg.HealthcarePartyIDAttribute
	}
	return "", ""
}

// linkValue is the patient or healthcare party id the identity links to, "" for none.
func (s *Sink) linkValue(id *dsync.Identity) string {
	_, attr := s.link()
	if v := id.Attributes.Get(attr); attr != "" && len(v) > 0 {
		return v[0]
	}
	return ""
}

// apply sets the fields of want that are in fields on u, and reports whether
// anything changed. A patient or healthcare party link is set when the identity has
// one, and never removed: unlinking a user from a medical record is not a directory's
// decision.
func (s *Sink) apply(u user, want *dsync.Identity, fields dsync.FieldSet) bool {
	changed := false
	if fields.Has(dsync.FieldUsername | dsync.FieldEmail) {
		changed = u.set("login", s.login(want)) || changed
	}
	if fields.Has(dsync.FieldEmail) {
		changed = u.set("email", want.Email) || changed
	}
	if fields.Has(dsync.FieldDisplayName | dsync.FieldFirstName | dsync.FieldLastName) {
		changed = u.set("name", name(want)) || changed
	}
	if key, _ := s.link(); key != "" && fields.Has(dsync.FieldAttributes) {
		if v := s.linkValue(want); v != "" {
			changed = u.set(key, v) || changed
		}
	}
	return changed
}

func (s *Sink) do(ctx context.Context, endpoint, method, path string, body, out any) error {
	return s.auth.do(ctx, httpapi.Call{Endpoint: endpoint, Method: method, Path: path, Body: body}, out)
}

// read gets the user with id, soft-deleted or not.
func (s *Sink) read(ctx context.Context, id string) (user, error) {
	var u user
	if err := s.do(ctx, "user.get", http.MethodGet, userPath+"/"+url.PathEscape(id), nil, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// live gets the user with id; a soft-deleted one is not found.
func (s *Sink) live(ctx context.Context, id string) (user, error) {
	u, err := s.read(ctx, id)
	if err == nil && u.deleted() {
		return nil, fmt.Errorf("user %s is deleted (deletionDate is set): %w", id, dsync.ErrNotFound)
	}
	return u, err
}

// modify lets change edit the user u (read first when nil) and PUTs it back at the rev
// read, unless change changed nothing. A 409 (someone wrote the user in between) makes
// it read and change the user again, once; a second 409 is returned. A duplicate
// answer means another account holds the login or email: ErrConflict.
func (s *Sink) modify(ctx context.Context, id string, u user, change func(user) bool) error {
	for attempt := 0; ; attempt++ {
		if u == nil {
			var err error
			if u, err = s.live(ctx, id); err != nil {
				return err
			}
		}
		if !change(u) {
			return nil
		}
		err := s.do(ctx, "user.modify", http.MethodPut, userPath, u, nil)
		if attempt == 0 && staleRev(err) {
			s.log.Debug("the user changed between read and write: reading it again", "user_id", id)
			u = nil
			continue
		}
		return conflictOnDuplicate(err)
	}
}

// conflictOnDuplicate turns iCure's duplicate answer to a write of an existing account
// into ErrConflict: another account, which idsync does not own, holds the value.
func conflictOnDuplicate(err error) error {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	if field, dup := apiErr.Duplicate(); dup {
		return fmt.Errorf("another iCure user holds this %s (%s): %w", field, apiErr.Message, dsync.ErrConflict)
	}
	return err
}

// create POSTs the account under its derived id. When iCure says the id, email or
// login is taken, it reads the account under that id (its own, from a run that did not
// record it), undeleting it if it was soft-deleted, or else the account that holds the
// email, and brings it to the wanted state.
func (s *Sink) create(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	w := &op.Want
	id := s.userID(op.ID)
	body := user{"id": json.RawMessage(`"` + id + `"`)}
	s.apply(body, w, s.Schema().User)
	body.set("status", statusActive)
	// Not Unsafe: a repeated create meets the id or the email the first one took.
	err := s.do(ctx, "user.create", http.MethodPost, userPath, body, nil)
	if err == nil {
		return s.invited(ctx, op, dsync.Outcome{UserID: id})
	}
	field, dup := asDuplicate(err)
	if !dup && !hasStatus(err, http.StatusConflict) {
		return dsync.Outcome{}, err
	}
	own, rerr := s.read(ctx, id)
	switch {
	case rerr == nil:
		// idsync's own account. A soft-deleted one is undeleted: the person is back,
		// and the id can serve no one else (refusing would hold them forever).
		if own.deleted() {
			if err := s.undelete(ctx, own); err != nil {
				return dsync.Outcome{}, fmt.Errorf("undelete user %s: %w", id, err)
			}
			s.log.Info("undeleted the account of a person who is back", "id", op.ID, "user_id", id)
			own = nil // its rev changed
		} else {
			s.log.Info("found its own account: a create repeated after a crash or a lost answer", "id", op.ID, "user_id", id)
		}
		if err := s.converge(ctx, id, own, w); err != nil {
			return dsync.Outcome{}, err
		}
		// idsync's own account, which the snapshot does not know: whether its person
		// was ever invited is not known either, so they are (again; a new token
		// replaces the old).
		return s.invited(ctx, op, dsync.Outcome{UserID: id})
	case !errors.Is(rerr, dsync.ErrNotFound):
		return dsync.Outcome{}, rerr
	}
	found, ferr := s.byEmail(ctx, w.Email)
	switch {
	case errors.Is(ferr, dsync.ErrNotFound):
		return dsync.Outcome{}, fmt.Errorf("%w; no account has the email, so one idsync does not own holds the %s: %w",
			err, cmp.Or(field, "id"), dsync.ErrConflict)
	case ferr != nil:
		return dsync.Outcome{}, ferr
	case nameBased(found.str("id")):
		return dsync.Outcome{}, fmt.Errorf("user %s holds the email, and idsync made it for another identity (or under another id_namespace): %w", found.str("id"), dsync.ErrConflict)
	}
	if err := s.converge(ctx, found.str("id"), found, w); err != nil {
		return dsync.Outcome{}, fmt.Errorf("adopt user %s: %w", found.str("id"), err)
	}
	out := dsync.Outcome{UserID: found.str("id"), Adopted: true}
	if !s.cfg.InviteAdopted {
		return out, nil // someone made this account, and let its person in
	}
	return s.invited(ctx, op, out)
}

// asDuplicate returns the field of a duplicate answer.
func asDuplicate(err error) (string, bool) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return "", false
	}
	return apiErr.Duplicate()
}

// converge brings an existing account, u if read already, to the wanted state: every
// field idsync holds, and active.
func (s *Sink) converge(ctx context.Context, id string, u user, w *dsync.Identity) error {
	fields := s.Schema().User
	return s.modify(ctx, id, u, func(u user) bool {
		changed := s.apply(u, w, fields)
		return u.set("status", statusActive) || changed
	})
}

// byEmail finds the live user with email, exactly as iCure compares it.
func (s *Sink) byEmail(ctx context.Context, email string) (user, error) {
	if email == "" {
		return nil, fmt.Errorf("no email to look up: %w", dsync.ErrNotFound)
	}
	var u user
	if err := s.do(ctx, "user.by_email", http.MethodGet, userPath+"/byEmail/"+url.PathEscape(email), nil, &u); err != nil {
		return nil, err
	}
	if u.deleted() {
		return nil, fmt.Errorf("the user with the email is deleted: %w", dsync.ErrNotFound)
	}
	return u, nil
}

// undelete clears a soft-deleted user's deletionDate, at the rev read; a 409 makes it
// read the user again and retry once.
func (s *Sink) undelete(ctx context.Context, u user) error {
	id := u.str("id")
	for attempt := 0; ; attempt++ {
		q := url.Values{"rev": {u.str("rev")}}
		err := s.do(ctx, "user.undelete", http.MethodPost, userPath+"/undelete/"+url.PathEscape(id)+"?"+q.Encode(), nil, nil)
		if attempt > 0 || !staleRev(err) {
			return err
		}
		if u, err = s.read(ctx, id); err != nil || !u.deleted() {
			return err
		}
	}
}

// update writes the changed fields the account holds.
func (s *Sink) update(ctx context.Context, op dsync.Op) error {
	fields := op.Fields & s.Schema().User
	if fields == 0 {
		return nil
	}
	return s.modify(ctx, s.accountID(op), nil, func(u user) bool { return s.apply(u, &op.Want, fields) })
}

// delete soft-deletes the account at the rev read: iCure keeps the document with a
// deletionDate, which counts as gone from then on. An account already gone or deleted
// is done; a 409 makes it read the user again and retry once.
func (s *Sink) delete(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		u, err := s.live(ctx, id)
		if errors.Is(err, dsync.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		q := url.Values{"rev": {u.str("rev")}}
		err = s.do(ctx, "user.delete", http.MethodDelete, userPath+"/"+url.PathEscape(id)+"?"+q.Encode(), nil, nil)
		switch {
		case errors.Is(err, dsync.ErrNotFound):
			return nil
		case attempt == 0 && staleRev(err):
			continue
		}
		return err
	}
}

// ReadUser reads a managed account back, for drift checks. It returns the entry's
// user with only what really differs in iCure's terms replaced. The login is compared
// only when it comes from the username: in email mode it follows the email.
func (s *Sink) ReadUser(ctx context.Context, e dsync.Entry) (dsync.Identity, error) {
	if e.User == nil {
		return dsync.Identity{}, fmt.Errorf("icure: read user %s: nothing applied: %w", e.ID, dsync.ErrNotFound)
	}
	id := cmp.Or(e.UserID, s.userID(e.ID))
	u, err := s.live(ctx, id)
	if err != nil {
		return dsync.Identity{}, fmt.Errorf("icure: read user %s: %w", id, err)
	}
	have := e.User
	got := *have
	if s.cfg.Login == "username" && u.str("login") != s.login(have) {
		got.Username = u.str("login")
	}
	if email := u.str("email"); email != have.Email {
		got.Email = email
	}
	if n := u.str("name"); n != name(have) {
		got.DisplayName = n
	}
	if key, attr := s.link(); key != "" {
		if applied := s.linkValue(have); applied != "" && u.str(key) != applied {
			got.Attributes = slices.Clone(have.Attributes)
			if v := u.str(key); v != "" {
				got.Attributes.Set(attr, []string{v})
			} else {
				got.Attributes.Delete(attr)
			}
		}
	}
	got.Active = u.str("status") == statusActive
	return got, nil
}

// iCure's email rule (UserLogicImpl): something, an @, something.
var icureEmail = regexp.MustCompile(`^.+@.+$`)

// Check holds the people iCure would refuse, before anything is made for them: no
// email and no username to log in with, an email outside iCure's pattern, or a patient
// or healthcare party id that cannot be an iCure id.
func (s *Sink) Check(id *dsync.Identity) []string {
	var problems []string
	if s.login(id) == "" {
		problems = append(problems, "iCure needs an email or a username for the login")
	}
	if id.Email != "" && !icureEmail.MatchString(id.Email) {
		problems = append(problems, fmt.Sprintf("iCure refuses the email %q", id.Email))
	}
	if _, attr := s.link(); attr != "" {
		if v := id.Attributes.Get(attr); len(v) > 0 && !validID(v[0]) {
			problems = append(problems, fmt.Sprintf("attribute %s: %q cannot be an iCure id (no / \\ ? # %% ; spaces or control characters)", attr, v[0]))
		}
	}
	return problems
}
