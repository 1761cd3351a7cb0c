// Package domo implements a sync.Sink for Domo's public User API
// (api.domo.com/v1/users), with an OAuth client-credentials token of scope user: users
// created with POST, changed with a PUT of the whole record merged over the current
// one, and deleted with DELETE.
//
// Domo has no disabled state: a user exists, with a role, or is deleted. What
// disable_user does is the sink's disable_action:
//
//   - none (the default): nothing. The account keeps its access; every disable is
//     logged as a warning, and idsync records the person as disabled, so that
//     delete_after, if set, still deletes the account later. enable_user does nothing.
//   - role: the user is given disabled_role (best a custom role without rights, given
//     by its id), and enable_user gives back the role that roles maps the person's
//     groups to, or role.
//   - delete: nothing at once. The account stays, with its access, until delete_after
//     has passed since idsync disabled it, and then idsync deletes it, for good (Domo
//     cannot undo a delete). An enable within that grace period does nothing, the
//     account never having changed.
//
// none is the default because the others take access away, role by a role only the
// operator can name and delete irreversibly; a default should never remove anyone's
// access silently. The warnings say that leavers keep their access until one of the
// others is chosen.
//
// Domo has no field in which to mark an account as idsync's, so the adoption key is
// the email: a create that meets a user with the person's email, in any case, adopts
// it, whoever made it, and brings it to the wanted state.
//
// The role is managed only when roles is set: then every create, adoption and change
// of groups sets it. Without roles, role is only the role of new users, and an
// adopted user keeps its own (a Domo administrator found in the directory is not made
// a Participant).
package domo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

// Sink applies operations to one Domo instance.
type Sink struct {
	cfg    Config
	api    *httpapi.Client
	log    *slog.Logger
	secret secret.Secret
	now    func() time.Time

	defaultRole  role
	disabledRole role
	roles        []roleRule

	tokens shared[token]
	users  shared[*emailIndex]
}

// roleRule is a parsed Config.Roles entry.
type roleRule struct {
	group string
	role  role
}

var (
	_ dsync.Sink    = (*Sink)(nil)
	_ dsync.Reader  = (*Sink)(nil)
	_ dsync.Checker = (*Sink)(nil)
)

// New builds a sink, reading the secret file. It does not contact Domo.
func New(cfg Config, hc *http.Client, obs httpapi.Observer, log *slog.Logger) (*Sink, error) {
	if errs := cfg.Validate("domo"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.setDefaults()
	sec, err := secret.Load("client_secret", cfg.ClientSecret, cfg.ClientSecretFile)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, log: log, secret: sec, now: time.Now}
	s.defaultRole, _ = parseRole(cfg.Role)
	if cfg.DisableAction == disableRole {
		s.disabledRole, _ = parseRole(cfg.DisabledRole)
	}
	for _, m := range cfg.Roles {
		r, _ := parseRole(m.Role)
		s.roles = append(s.roles, roleRule{group: m.Group, role: r})
	}
	s.api = cfg.NewClient(strings.TrimSuffix(cfg.URL, "/"), hc, httpapi.Client{Obs: obs, Log: log, Error: apiError})
	return s, nil
}

// Concurrency is the configured number of identities applied at once.
func (s *Sink) Concurrency() int { return s.cfg.Concurrency }

// Schema: a Domo user takes an email and a name; groups when roles maps them to
// roles, attributes when some are mapped. No profiles; deletes are possible.
func (s *Sink) Schema() dsync.Schema {
	user := dsync.FieldEmail | dsync.FieldFirstName | dsync.FieldLastName | dsync.FieldDisplayName
	if len(s.roles) > 0 {
		user |= dsync.FieldGroups
	}
	if len(s.cfg.Attributes) > 0 {
		user |= dsync.FieldAttributes
	}
	return dsync.Schema{User: user, Delete: true}
}

// Check holds the people Domo would refuse, before anything is made for them: it
// requires an email and a name.
func (s *Sink) Check(id *dsync.Identity) []string {
	var problems []string
	if strings.TrimSpace(id.Email) == "" {
		problems = append(problems, "Domo needs an email")
	}
	if displayName(id) == "" {
		problems = append(problems, "Domo needs a name: a display name, or a first or last name")
	}
	return problems
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
		err = s.setActive(ctx, op)
	case dsync.DeleteUser:
		err = s.delete(ctx, op)
	default:
		err = fmt.Errorf("%s: %w", op.Kind, dsync.ErrUnsupported)
	}
	if err != nil {
		return out, fmt.Errorf("domo: %s %s: %w", op.Kind, op.ID, err)
	}
	return out, nil
}

// userPath is the path of the user id; an id that is not Domo's is not found.
func userPath(id string) (string, error) {
	if n, err := strconv.ParseInt(id, 10, 64); err != nil || n <= 0 {
		return "", fmt.Errorf("user id %q: %w", id, dsync.ErrNotFound)
	}
	return "/v1/users/" + url.PathEscape(id), nil
}

// get reads the user id. A deleted user, which Domo answers with "deleted": true, is
// not found.
func (s *Sink) get(ctx context.Context, id string) (record, error) {
	path, err := userPath(id)
	if err != nil {
		return nil, err
	}
	var rec record
	if err := s.call(ctx, httpapi.Call{Endpoint: "user.get", Method: http.MethodGet, Path: path}, &rec); err != nil {
		return nil, err
	}
	if rec == nil || rec.deleted() {
		return nil, fmt.Errorf("user %s is deleted: %w", id, dsync.ErrNotFound)
	}
	return rec, nil
}

// put sends the whole record back. Its answer, a user or nothing, is not needed.
func (s *Sink) put(ctx context.Context, id string, rec record) error {
	path, err := userPath(id)
	if err != nil {
		return err
	}
	return s.call(ctx, httpapi.Call{Endpoint: "user.update", Method: http.MethodPut, Path: path, Body: rec.body()}, nil)
}

// roleFor is the role idsync gives id: disabled_role to an inactive identity when
// disable_action is role; otherwise the role of the first roles entry whose group id
// is in, or role.
func (s *Sink) roleFor(id *dsync.Identity) role {
	if s.cfg.DisableAction == disableRole && !id.Active {
		return s.disabledRole
	}
	for _, m := range s.roles {
		if slices.Contains(id.Groups, m.group) {
			return m.role
		}
	}
	return s.defaultRole
}

// overlay sets in rec the fields of want that fields names, and reports whether rec
// changed. The role is set with groups, when roles is configured.
func (s *Sink) overlay(rec record, want *dsync.Identity, fields dsync.FieldSet) bool {
	changed := false
	if fields.Has(dsync.FieldEmail) {
		changed = rec.set("email", want.Email) || changed
	}
	if fields.Has(dsync.FieldFirstName | dsync.FieldLastName | dsync.FieldDisplayName) {
		changed = rec.set("name", displayName(want)) || changed
	}
	if fields.Has(dsync.FieldGroups) && len(s.roles) > 0 {
		changed = rec.setRole(s.roleFor(want)) || changed
	}
	if fields.Has(dsync.FieldAttributes) {
		for _, attr := range slices.Sorted(maps.Keys(s.cfg.Attributes)) {
			field := s.cfg.Attributes[attr]
			changed = rec.set(field, fieldValue(field, attribute(want, attr))) || changed
		}
	}
	return changed
}

// create adopts the user with the person's email if the index has one, and creates
// one otherwise. A create that Domo refuses as a duplicate (a user made since the
// index was read), or whose answer leaves it unknown whether Domo made the user (a
// 5xx, or no answer), reads the index again, once, then adopts, or creates.
//
// The create is Unsafe for httpapi, which then never repeats it blindly: only this
// look in the list first can tell whether a second try would make a second user.
func (s *Sink) create(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	idx, gen, err := s.index(ctx)
	if err != nil {
		return dsync.Outcome{}, err
	}
	for again := false; ; again = true {
		if out, done, err := s.adoptIndexed(ctx, idx, op); done {
			return out, err
		}
		id, err := s.post(ctx, &op.Want)
		if err == nil {
			s.remember("", op.Want.Email, id)
			return dsync.Outcome{UserID: id}, nil
		}
		taken := errors.Is(err, dsync.ErrExists)
		if again || !taken && !uncertain(ctx, err) {
			if taken {
				err = fmt.Errorf("%w, and no user in the list has it: %w", err, dsync.ErrConflict)
			}
			return dsync.Outcome{}, err
		}
		s.log.Info("the create was refused or its answer lost: reading the user list again", "id", op.ID, "err", err)
		if idx, err = s.reindex(ctx, gen); err != nil {
			return dsync.Outcome{}, err
		}
	}
}

// adoptIndexed adopts the user the index has for the person's email; done reports
// that it did, or failed. A user deleted since the index was read is forgotten, and
// not adopted.
func (s *Sink) adoptIndexed(ctx context.Context, idx *emailIndex, op dsync.Op) (dsync.Outcome, bool, error) {
	id, found := idx.lookup(op.Want.Email)
	switch {
	case !found:
		return dsync.Outcome{}, false, nil
	case id == "":
		return dsync.Outcome{}, true, fmt.Errorf("several Domo users have the email %s: %w", op.Want.Email, dsync.ErrConflict)
	}
	out, err := s.adopt(ctx, id, op)
	if errors.Is(err, dsync.ErrNotFound) {
		idx.forget(op.Want.Email, id)
		return dsync.Outcome{}, false, nil
	}
	return out, true, err
}

// adopt takes the user id over and brings it to the wanted state: every managed
// field, and, with disable_action role, out of the disabled role.
func (s *Sink) adopt(ctx context.Context, id string, op dsync.Op) (dsync.Outcome, error) {
	rec, err := s.get(ctx, id)
	if err != nil {
		return dsync.Outcome{}, err
	}
	changed := s.overlay(rec, &op.Want, s.Schema().User)
	if s.cfg.DisableAction == disableRole && rec.hasRole(s.disabledRole) {
		changed = rec.setRole(s.roleFor(&op.Want)) || changed
	}
	if changed {
		if err := s.put(ctx, id, rec); err != nil {
			return dsync.Outcome{}, err
		}
	}
	s.remember("", op.Want.Email, id)
	return dsync.Outcome{UserID: id, Adopted: true}, nil
}

// post creates the user: POST /v1/users, which must not be repeated once Domo may
// have received it.
func (s *Sink) post(ctx context.Context, want *dsync.Identity) (string, error) {
	rec := record{}
	s.overlay(rec, want, s.Schema().User)
	rec.setRole(s.roleFor(want))
	var got struct {
		ID json.Number `json:"id"`
	}
	path := "/v1/users?sendInvite=" + strconv.FormatBool(s.cfg.SendInvite)
	if err := s.call(ctx, httpapi.Call{Endpoint: "user.create", Method: http.MethodPost, Path: path, Body: rec, Unsafe: true}, &got); err != nil {
		return "", err
	}
	if got.ID == "" {
		// The next run finds the user by its email and adopts it.
		return "", errors.New("user.create: the answer has no user id")
	}
	return got.ID.String(), nil
}

// update reads the user, sets the changed fields, and sends the whole record back if
// anything differs. An email that another user has is a conflict.
func (s *Sink) update(ctx context.Context, op dsync.Op) error {
	fields := op.Fields & s.Schema().User
	if fields == 0 {
		return nil
	}
	rec, err := s.get(ctx, op.UserID)
	if err != nil {
		return err
	}
	old := rec.text("email")
	if !s.overlay(rec, &op.Want, fields) {
		return nil
	}
	if err := s.put(ctx, op.UserID, rec); err != nil {
		if errors.Is(err, dsync.ErrExists) {
			return fmt.Errorf("%w: another Domo user has the email %s: %w", err, op.Want.Email, dsync.ErrConflict)
		}
		return err
	}
	if fields.Has(dsync.FieldEmail) {
		s.remember(old, op.Want.Email, op.UserID)
	}
	return nil
}

// setActive carries out enable_user and disable_user as disable_action says.
func (s *Sink) setActive(ctx context.Context, op dsync.Op) error {
	enable := op.Kind == dsync.EnableUser
	switch s.cfg.DisableAction {
	case disableNone:
		if !enable {
			s.log.Warn("domo has no disable: the account keeps its access (disable_action: none)", "id", op.ID, "user_id", op.UserID)
		}
		return nil
	case disableDelete:
		if enable {
			s.log.Info("enabled within the grace period: the account was left as it was", "id", op.ID, "user_id", op.UserID)
		} else {
			s.log.Info("domo has no disable: the account stays, with its access, until delete_after has passed", "id", op.ID, "user_id", op.UserID)
		}
		return nil
	}
	rec, err := s.get(ctx, op.UserID)
	if err != nil {
		return err
	}
	want := op.Want
	want.Active = enable
	if !rec.setRole(s.roleFor(&want)) {
		return nil
	}
	return s.put(ctx, op.UserID, rec)
}

// delete deletes the user, for good. A user that is gone already is done.
func (s *Sink) delete(ctx context.Context, op dsync.Op) error {
	path, err := userPath(op.UserID)
	if err == nil {
		err = s.call(ctx, httpapi.Call{Endpoint: "user.delete", Method: http.MethodDelete, Path: path}, nil)
	}
	if err != nil && !errors.Is(err, dsync.ErrNotFound) {
		return err
	}
	s.remember(op.Want.Email, "", op.UserID)
	return nil
}
