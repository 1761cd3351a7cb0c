// Package haplo implements a sync.Sink for Haplo: person profile objects through the
// push-data REST API (the data import framework, with the control file this package
// ships), and user accounts through the user API v0.
package haplo

import (
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

// ControlFile is the data import control file that reads idsync's push-data records.
// Install it in Haplo as the control file of the REST API named in import_name.
//
//go:embed control-file.json
var ControlFile []byte

// Sink applies operations to one Haplo application.
type Sink struct {
	cfg     Config
	cl      *client
	managed map[string]bool // group codes idsync manages
	log     *slog.Logger

	codesMu sync.Mutex
	codesOK bool // a probe showed that Haplo stores and looks up profile codes
}

var _ dsync.Sink = (*Sink)(nil)

// New builds a sink from its configuration, reading the key files. It does not
// contact Haplo. hc may be nil for a default client with the configured timeout, and
// obs nil for no measurements.
func New(cfg Config, hc *http.Client, obs httpapi.Observer, log *slog.Logger) (*Sink, error) {
	if errs := cfg.Validate("haplo"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.setDefaults()
	userKey, err1 := secret.Load("user_api_key", cfg.UserAPIKey, cfg.UserAPIKeyFile)
	importKey, err2 := secret.Load("import_api_key", cfg.ImportAPIKey, cfg.ImportAPIKeyFile)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	s := &Sink{
		cfg: cfg,
		cl: &client{
			api:      cfg.NewClient(strings.TrimSuffix(cfg.URL, "/"), hc, httpapi.Client{Obs: obs, Log: log, Error: apiError}),
			userAuth: basicAuth(userKey), importAuth: basicAuth(importKey),
		},
		managed: make(map[string]bool),
		log:     log,
	}
	for _, code := range cfg.Groups {
		s.managed[code] = true
	}
	return s, nil
}

// Concurrency is the configured number of identities applied at once.
func (s *Sink) Concurrency() int { return s.cfg.Concurrency }

// Schema: accounts take the username, email, names and, when a group map is set,
// groups; profiles take the email, names and attributes.
func (s *Sink) Schema() dsync.Schema {
	user := dsync.FieldUsername | dsync.FieldEmail | dsync.FieldFirstName | dsync.FieldLastName
	if len(s.cfg.Groups) > 0 {
		user |= dsync.FieldGroups
	}
	profile := dsync.FieldEmail | dsync.FieldFirstName | dsync.FieldLastName
	if len(s.cfg.Attributes) > 0 {
		profile |= dsync.FieldAttributes
	}
	return dsync.Schema{User: user, Profile: profile}
}

// Apply carries out one operation.
func (s *Sink) Apply(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	var (
		out dsync.Outcome
		err error
	)
	switch op.Kind {
	case dsync.CreateProfile:
		out, err = s.createProfile(ctx, op)
	case dsync.CreateUser:
		out, err = s.createUser(ctx, op)
	case dsync.UpdateProfile:
		out, err = s.updateProfile(ctx, op)
	case dsync.UpdateUser:
		err = s.updateUser(ctx, op)
	case dsync.EnableUser, dsync.DisableUser:
		out, err = s.setActive(ctx, op)
	default:
		err = fmt.Errorf("%s: %w", op.Kind, dsync.ErrUnsupported)
	}
	if err != nil {
		return out, fmt.Errorf("haplo: %s %s: %w", op.Kind, op.ID, err)
	}
	return out, nil
}

// user is the user object every user API endpoint returns.
type user struct {
	ID                    int               `json:"id"`
	NameFirst             string            `json:"nameFirst"`
	NameLast              string            `json:"nameLast"`
	Email                 string            `json:"email"`
	Ref                   *string           `json:"ref"`
	IsGroup               bool              `json:"isGroup"`
	IsActive              bool              `json:"isActive"`
	Tags                  map[string]string `json:"tags"`
	DirectGroupMembership []string          `json:"directGroupMembership"`
}

func (u *user) ref() string {
	if u.Ref == nil {
		return ""
	}
	return *u.Ref
}

type userAnswer struct {
	Kind string `json:"kind"`
	User user   `json:"user"`
}

// username is the account's username tag: always lowercase, since Haplo's user sync
// and its username-to-ref filter assume it; the id when the sources give none.
func username(id *dsync.Identity) string {
	return strings.ToLower(cmpOr(id.Username, id.ID))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// groups maps the identity's groups to Haplo codes, sorted; unmapped groups are not
// idsync's to manage and are dropped.
func (s *Sink) groups(id *dsync.Identity) []string {
	var codes []string
	for _, g := range id.Groups {
		if code, ok := s.cfg.Groups[g]; ok {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	return slices.Compact(codes)
}

// mergeGroups keeps an account's direct groups that idsync does not manage and sets
// the managed ones to want: Haplo replaces the whole list on update.
func (s *Sink) mergeGroups(current, want []string) []string {
	var out []string
	for _, g := range current {
		if !s.managed[g] {
			out = append(out, g)
		}
	}
	out = append(out, want...)
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *Sink) getUser(ctx context.Context, id int) (*user, error) {
	var a userAnswer
	err := s.cl.do(ctx, call{endpoint: "user.get", method: http.MethodGet, path: "/api/v0-user/id/" + strconv.Itoa(id), auth: s.cl.userAuth}, &a)
	if err != nil {
		return nil, err
	}
	return &a.User, nil
}

// findByTag returns the one user whose tag name has value, or nil.
func (s *Sink) findByTag(ctx context.Context, name, value string) (*user, error) {
	var a userAnswer
	q := url.Values{"tag:" + name: {value}}
	err := s.cl.do(ctx, call{endpoint: "user.find", method: http.MethodGet, path: "/api/v0-user/id?" + q.Encode(), auth: s.cl.userAuth}, &a)
	if errors.Is(err, dsync.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if a.User.IsGroup {
		return nil, nil
	}
	return &a.User, nil
}

// existing finds the account an identity may already have: by the id tag (an account
// idsync made, maybe in a run that crashed before recording it), then by the username
// tag. It says whether idsync may take the account.
func (s *Sink) existing(ctx context.Context, want *dsync.Identity) (*user, bool, error) {
	u, err := s.findByTag(ctx, s.cfg.IDTag, want.ID)
	if err != nil || u != nil {
		return u, u != nil, err
	}
	return s.byUsername(ctx, want)
}

// byUsername finds the account with the identity's username tag, and says whether
// idsync may take it: it is idsync's own, or carries no id tag and adopt_by_username
// is on. Any other account with that username is a conflict.
func (s *Sink) byUsername(ctx context.Context, want *dsync.Identity) (*user, bool, error) {
	u, err := s.findByTag(ctx, "username", username(want))
	if err != nil || u == nil {
		return nil, false, err
	}
	switch tag := u.Tags[s.cfg.IDTag]; {
	case tag == want.ID:
		return u, true, nil
	case tag != "":
		return u, false, fmt.Errorf("user %d has username %q but belongs to identity %q (tag %s): %w", u.ID, username(want), tag, s.cfg.IDTag, dsync.ErrConflict)
	case !*s.cfg.AdoptByUsername:
		return u, false, fmt.Errorf("user %d already has username %q and adopt_by_username is off: %w", u.ID, username(want), dsync.ErrConflict)
	}
	return u, true, nil
}

// createProfile pushes a new person profile and returns its ref. An identity whose
// account already exists with a profile (a lost snapshot, a migration) reuses that
// profile instead of making a second one; one whose username is taken by an account
// idsync may not adopt fails here, before anything is created. One lookup, by
// username: the id tag is looked up only when a create meets an existing account.
func (s *Sink) createProfile(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	u, _, err := s.byUsername(ctx, &op.Want)
	if err != nil {
		return dsync.Outcome{}, err
	}
	ref := ""
	if u != nil {
		ref = u.ref()
	}
	got, err := s.push(ctx, &op.Want, ref, op.Want.Active)
	if err != nil {
		return dsync.Outcome{}, err
	}
	if got == "" && ref == "" {
		// (Only with profile codes.) The code found a profile that an earlier push
		// made, and the record changed nothing in it, so Haplo did not say which.
		if got, err = s.revealByCode(ctx, &op.Want, op.Want.Active); err != nil {
			return dsync.Outcome{}, err
		}
	}
	return dsync.Outcome{ProfileRef: cmpOr(got, ref)}, nil
}

// newUser is the body of a user create: a struct rather than a map, which
// encoding/json encodes without sorting keys or boxing values.
type newUser struct {
	NameFirst             string            `json:"nameFirst"`
	NameLast              string            `json:"nameLast"`
	Email                 string            `json:"email"`
	Ref                   string            `json:"ref,omitempty"`
	Tags                  map[string]string `json:"tags"`
	DirectGroupMembership []string          `json:"directGroupMembership,omitempty"`
}

// createdAnswer is what a create needs of its answer: the new account's id. The rest
// of the user object is skipped rather than decoded.
type createdAnswer struct {
	User struct {
		ID int `json:"id"`
	} `json:"user"`
	// WelcomeLink is there when asked for (welcomeLink=1): a credential.
	WelcomeLink string `json:"welcomeLink"`
}

// welcomeValidity is how long Haplo's welcome links work (NEW_USER_WELCOME_LINK_VALIDITY).
const welcomeValidity = 12 * 24 * time.Hour

// createUser creates the account linked to the profile. When Haplo says the email or
// username is taken, it looks for the account and adopts it if it may.
func (s *Sink) createUser(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	w := &op.Want
	body := newUser{
		NameFirst: w.FirstName, NameLast: w.LastName, Email: w.Email, Ref: op.ProfileRef,
		Tags:                  map[string]string{"username": username(w), s.cfg.IDTag: w.ID},
		DirectGroupMembership: s.groups(w),
	}
	var a createdAnswer
	path := "/api/v0-user/create"
	if op.Invite { // a welcome link, which idsync delivers (onboarding: email)
		path += "?welcomeLink=1"
	}
	asked := time.Now()
	err := s.cl.do(ctx, call{endpoint: "user.create", method: http.MethodPost, path: path, auth: s.cl.userAuth, body: &body}, &a)
	if err == nil {
		out := dsync.Outcome{UserID: strconv.Itoa(a.User.ID)}
		if op.Invite && a.WelcomeLink != "" {
			out.Invite = &dsync.Invite{Link: a.WelcomeLink, Expires: asked.Add(welcomeValidity)}
		}
		return out, nil
	}
	if !errors.Is(err, dsync.ErrExists) {
		return dsync.Outcome{}, err
	}
	u, ok, ferr := s.existing(ctx, w)
	switch {
	case ferr != nil:
		return dsync.Outcome{}, ferr
	case u == nil:
		return dsync.Outcome{}, fmt.Errorf("%w; no account has username %q or %s %q, so another account holds the email: %w",
			err, username(w), s.cfg.IDTag, w.ID, dsync.ErrConflict)
	case !ok:
		return dsync.Outcome{}, fmt.Errorf("user %d: %w", u.ID, dsync.ErrConflict)
	}
	ours := u.Tags[s.cfg.IDTag] == w.ID
	if err := s.converge(ctx, u, op); err != nil {
		return dsync.Outcome{}, fmt.Errorf("adopt user %d: %w", u.ID, err)
	}
	if op.Invite && ours {
		// Made by a create whose answer, and welcome link, were lost: Haplo gives a
		// link only with the create, and idsync never makes a second account for one.
		s.log.Warn("the account was made but its welcome link was lost: reset this person's password by hand", "id", w.ID, "user_id", u.ID)
	}
	return dsync.Outcome{UserID: strconv.Itoa(u.ID), Adopted: !ours}, nil
}

// converge makes an existing account match op.Want: names, email, tags, ref, managed
// groups, and active.
func (s *Sink) converge(ctx context.Context, u *user, op dsync.Op) error {
	w := &op.Want
	body := map[string]any{}
	if u.NameFirst != w.FirstName || u.NameLast != w.LastName || !strings.EqualFold(u.Email, w.Email) {
		body["nameFirst"], body["nameLast"], body["email"] = w.FirstName, w.LastName, w.Email
	}
	if u.Tags["username"] != username(w) || u.Tags[s.cfg.IDTag] != w.ID {
		body["tags"] = map[string]string{"username": username(w), s.cfg.IDTag: w.ID}
	}
	if op.ProfileRef != "" && u.ref() != op.ProfileRef {
		body["ref"] = op.ProfileRef
	}
	if len(s.cfg.Groups) > 0 {
		if g := s.mergeGroups(u.DirectGroupMembership, s.groups(w)); !slices.Equal(g, sorted(u.DirectGroupMembership)) {
			body["directGroupMembership"] = g
		}
	}
	if len(body) > 0 {
		if err := s.postUser(ctx, u.ID, body); err != nil {
			return err
		}
	}
	if u.IsActive != w.Active {
		return s.enable(ctx, u.ID, w.Active)
	}
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func (s *Sink) postUser(ctx context.Context, id int, body map[string]any) error {
	return s.cl.do(ctx, call{endpoint: "user.update", method: http.MethodPost, path: "/api/v0-user/id/" + strconv.Itoa(id), auth: s.cl.userAuth, body: body}, nil)
}

func (s *Sink) enable(ctx context.Context, id int, active bool) error {
	status := "block"
	if active {
		status = "active"
	}
	return s.cl.do(ctx, call{endpoint: "user.enable", method: http.MethodPost, path: "/api/v0-user/enable/" + strconv.Itoa(id) + "?status=" + status, auth: s.cl.userAuth}, nil)
}

func userID(op dsync.Op) (int, error) {
	id, err := strconv.Atoi(op.UserID)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("snapshot has no valid Haplo user id (%q)", op.UserID)
	}
	return id, nil
}

// updateUser sends only the fields that changed. Groups are read first, since Haplo
// replaces the whole list.
func (s *Sink) updateUser(ctx context.Context, op dsync.Op) error {
	id, err := userID(op)
	if err != nil {
		return err
	}
	w := &op.Want
	body := map[string]any{}
	if op.Fields.Has(dsync.FieldFirstName) {
		body["nameFirst"] = w.FirstName
	}
	if op.Fields.Has(dsync.FieldLastName) {
		body["nameLast"] = w.LastName
	}
	if op.Fields.Has(dsync.FieldEmail) {
		body["email"] = w.Email
	}
	if op.Fields.Has(dsync.FieldUsername) {
		body["tags"] = map[string]string{"username": username(w)}
	}
	if op.Fields.Has(dsync.FieldGroups) {
		u, err := s.getUser(ctx, id)
		if err != nil {
			return err
		}
		if g := s.mergeGroups(u.DirectGroupMembership, s.groups(w)); !slices.Equal(g, sorted(u.DirectGroupMembership)) {
			body["directGroupMembership"] = g
		}
	}
	if len(body) == 0 {
		return nil
	}
	return s.postUser(ctx, id, body)
}

// updateProfile pushes the profile whole (the control file clears what is absent),
// with the type for its current state. A ref Haplo no longer knows makes the control
// file create a new profile: the account is then linked to it.
func (s *Sink) updateProfile(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	if op.ProfileRef == "" {
		return dsync.Outcome{}, errors.New("snapshot has no profile ref")
	}
	ref, err := s.push(ctx, &op.Want, op.ProfileRef, op.Want.Active)
	if err != nil {
		return dsync.Outcome{}, err
	}
	return s.relink(ctx, op, ref)
}

// relink points the account at another profile ref, when a push with a stale ref
// went to another profile: a new one, or (with profile codes) the one its code names.
func (s *Sink) relink(ctx context.Context, op dsync.Op, ref string) (dsync.Outcome, error) {
	if ref == "" || ref == op.ProfileRef {
		return dsync.Outcome{}, nil
	}
	s.log.Warn("profile ref unknown to haplo, the push went to another profile", "id", op.ID, "old_ref", op.ProfileRef, "ref", ref)
	if op.UserID != "" {
		id, err := userID(op)
		if err != nil {
			return dsync.Outcome{}, err
		}
		if err := s.postUser(ctx, id, map[string]any{"ref": ref}); err != nil {
			return dsync.Outcome{}, fmt.Errorf("link user %d to new profile %s: %w", id, ref, err)
		}
	}
	return dsync.Outcome{ProfileRef: ref}, nil
}

// setActive blocks or unblocks the account, then marks the profile past or current.
func (s *Sink) setActive(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	id, err := userID(op)
	if err != nil {
		return dsync.Outcome{}, err
	}
	active := op.Kind == dsync.EnableUser
	if err := s.enable(ctx, id, active); err != nil {
		return dsync.Outcome{}, err
	}
	if op.ProfileRef == "" {
		return dsync.Outcome{}, nil
	}
	// The profile is pushed as last applied, so a disable changes its type and
	// nothing else.
	prof := op.Want
	if op.Have != nil {
		prof = *op.Have
	}
	ref, err := s.push(ctx, &prof, op.ProfileRef, active)
	if err != nil {
		return dsync.Outcome{}, fmt.Errorf("user %d is %s, but its profile was not updated: %w", id, map[bool]string{true: "active", false: "blocked"}[active], err)
	}
	return s.relink(ctx, op, ref)
}

// pushAnswer is the push-data API's result.
type pushAnswer struct {
	Result  string   `json:"result"`
	Errors  []string `json:"errors"`
	Actions []struct {
		Changed []struct {
			Kind        string `json:"kind"`
			Destination string `json:"destination"`
			Ref         string `json:"ref"`
			New         bool   `json:"new"`
		} `json:"changed"`
	} `json:"actions"`
}

var refPattern = regexp.MustCompile(`^[0-9qvwxyz]+$`)

// Profile codes: see Config.ProfileCodes.
const (
	codePrefix  = "idsync:person:"
	touchPrefix = "idsync:touch:"
	// probeCode is not a valid behaviour code: Haplo's control file run throws on it
	// when it writes it to the profile, before anything is saved.
	probeCode = "idsync probe"
)

var plainID = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// profileCode is the behaviour code of an identity's profile: idsync:person:<id>
// when the id is made of letters, digits, - and _ and does not start with x, and
// otherwise idsync:person:x<the id's bytes in hex>. Plain codes never start with x
// and hex codes always do, so no two ids share a code. Haplo compares codes exactly,
// case included. Every code matches Haplo's ^[a-zA-Z0-9_-]+:[:a-zA-Z0-9_-]+$.
func profileCode(id string) string {
	if plainID.MatchString(id) && id[0] != 'x' {
		return codePrefix + id
	}
	return codePrefix + "x" + hex.EncodeToString([]byte(id))
}

// record is the push-data record of a profile.
func (s *Sink) record(id *dsync.Identity, ref string, active bool) (map[string]string, error) {
	rec := map[string]string{
		"first": id.FirstName,
		"last":  id.LastName,
		"email": id.Email,
		"type":  s.cfg.PastProfileType,
	}
	if active {
		rec["type"] = s.cfg.ProfileType
	}
	if ref != "" {
		if !refPattern.MatchString(ref) {
			return nil, fmt.Errorf("profile ref %q is not a Haplo ref", ref)
		}
		rec["ref"] = ref
	}
	if s.cfg.ProfileCodes {
		rec["code"] = profileCode(id.ID)
	}
	for _, name := range slices.Sorted(maps.Keys(s.cfg.Attributes)) {
		if v := id.Attributes.Get(name); len(v) > 0 {
			rec[s.cfg.Attributes[name]] = strings.Join(v, "; ")
		}
	}
	return rec, nil
}

// push sends one profile record and returns the ref of the profile Haplo saved: a
// new one, the one ref names, or (with profile codes) the one the code names. It
// returns "" when Haplo saved nothing because nothing changed: it then gives no ref.
func (s *Sink) push(ctx context.Context, id *dsync.Identity, ref string, active bool) (string, error) {
	rec, err := s.record(id, ref, active)
	if err != nil {
		return "", err
	}
	if s.cfg.ProfileCodes {
		if err := s.checkCodes(ctx); err != nil {
			return "", err
		}
	}
	got, err := s.send(ctx, rec)
	if err == nil && ref == "" && got == "" && !s.cfg.ProfileCodes {
		return "", errors.New("push-data created no profile and returned no ref")
	}
	return got, err
}

// send posts a record and returns the ref of the profile Haplo saved, if any. A
// record without a ref makes a new profile each time it is applied, unless it carries
// a profile code: only then may it be repeated after Haplo may have acted on it.
func (s *Sink) send(ctx context.Context, rec map[string]string) (string, error) {
	var a pushAnswer
	_, hasCode := rec["code"]
	err := s.cl.do(ctx, call{
		endpoint: "push-data", method: http.MethodPost, path: "/api/push-data/" + s.cfg.ImportName,
		auth: s.cl.importAuth, body: rec, unsafe: rec["ref"] == "" && !hasCode,
	}, &a)
	if err != nil {
		return "", err
	}
	if a.Result != "success" {
		return "", fmt.Errorf("push-data result %q: %s", a.Result, strings.Join(a.Errors, "; "))
	}
	for _, act := range a.Actions {
		for _, c := range act.Changed {
			if c.Kind == "object:save" && c.Destination == "profile" {
				if !refPattern.MatchString(c.Ref) {
					return "", fmt.Errorf("push-data returned ref %q, which is not a Haplo ref", c.Ref)
				}
				return c.Ref, nil
			}
		}
	}
	return "", nil
}

// revealByCode learns the ref of the profile that an identity's code names, after a
// push found it unchanged and so Haplo said nothing. It pushes the record again with a
// one-off second behaviour code (touch), which makes Haplo save the profile and give
// its ref, then pushes it with that ref, which takes the touch code away. A touch push
// whose answer is lost and whose retry finds the profile unchanged is tried again with
// a new touch code.
func (s *Sink) revealByCode(ctx context.Context, id *dsync.Identity, active bool) (string, error) {
	rec, err := s.record(id, "", active)
	if err != nil {
		return "", err
	}
	for range 3 {
		rec["touch"] = fmt.Sprintf("%s%016x", touchPrefix, rand.Uint64())
		ref, err := s.send(ctx, rec)
		if err != nil {
			return "", err
		}
		if ref == "" {
			continue
		}
		if _, err := s.push(ctx, id, ref, active); err != nil {
			// Harmless: the touch code names nothing else, and the next update of the
			// profile takes it away.
			s.log.Warn("profile found by its code keeps a touch code", "id", id.ID, "ref", ref, "err", err)
		}
		return ref, nil
	}
	return "", fmt.Errorf("push-data found the profile with code %s but did not give its ref", rec["code"])
}

// checkCodes makes sure, once, that Haplo stores profile codes and finds profiles by
// them: it pushes a record whose code is not a valid behaviour code. Haplo running
// the shipped control file, with std:attribute:configured-behaviour on the person
// type, throws when it writes that code, before anything is saved. Without the
// attribute (Haplo skips the field, with a setup error) or without the code
// instructions (an older control file), the record fails for its missing title
// instead, and codes would do nothing: the sink stops.
func (s *Sink) checkCodes(ctx context.Context) error {
	s.codesMu.Lock()
	defer s.codesMu.Unlock()
	if s.codesOK {
		return nil
	}
	err := s.cl.do(ctx, call{
		endpoint: "push-data", method: http.MethodPost, path: "/api/push-data/" + s.cfg.ImportName,
		auth: s.cl.importAuth, body: map[string]string{"code": probeCode},
	}, nil)
	var apiErr *APIError
	switch {
	case err == nil:
		return fmt.Errorf("profile_codes: Haplo accepted a probe record with no name and the invalid code %q; is the push-data API %q running the control file idsync ships? %w",
			probeCode, s.cfg.ImportName, dsync.ErrStopSink)
	case !errors.As(err, &apiErr):
		return fmt.Errorf("profile_codes: probe: %w", err)
	case apiErr.Kind == "push-data:error" && rejectsCode(apiErr.Message):
		s.codesOK = true
		return nil
	case apiErr.Kind == "push-data:failure":
		return fmt.Errorf("profile_codes is on, but Haplo does not store profile codes (probe answered: %s): add std:attribute:configured-behaviour to std:type:person and install the control file idsync ships in the push-data API %q: %w",
			apiErr.Message, s.cfg.ImportName, dsync.ErrStopSink)
	}
	return fmt.Errorf("profile_codes: probe: %w", err)
}

// rejectsCode reports whether a push-data error is Haplo refusing a configuration
// name: O.text(O.T_IDENTIFIER_CONFIGURATION_NAME,...) must be formed of ...
func rejectsCode(msg string) bool {
	msg = strings.ToLower(msg)
	return strings.Contains(msg, "configuration_name") || strings.Contains(msg, "configuration name")
}

var (
	_ dsync.Reader = (*Sink)(nil)
	_ dsync.Lister = (*Sink)(nil)
)

// ReadUser reads a managed account back, for drift checks. It returns the entry's
// user with only what really differs in Haplo's terms replaced: a username tag that is
// the lowercase of the applied one, or unmanaged groups, are no drift.
func (s *Sink) ReadUser(ctx context.Context, e dsync.Entry) (dsync.Identity, error) {
	id, err := strconv.Atoi(e.UserID)
	if err != nil {
		return dsync.Identity{}, fmt.Errorf("haplo: user id %q: %w", e.UserID, dsync.ErrNotFound)
	}
	u, err := s.getUser(ctx, id)
	if err != nil {
		return dsync.Identity{}, fmt.Errorf("haplo: read user %d: %w", id, err)
	}
	return s.asApplied(u, *e.User), nil
}

// asApplied returns have, with the fields where the account u differs from it taken
// from u.
func (s *Sink) asApplied(u *user, have dsync.Identity) dsync.Identity {
	got := have
	if u.Tags["username"] != username(&have) {
		got.Username = u.Tags["username"]
	}
	if !strings.EqualFold(u.Email, have.Email) {
		got.Email = u.Email
	}
	if u.NameFirst != strings.Join(strings.Fields(have.FirstName), " ") {
		got.FirstName = u.NameFirst
	}
	if u.NameLast != strings.Join(strings.Fields(have.LastName), " ") {
		got.LastName = u.NameLast
	}
	if len(s.cfg.Groups) > 0 {
		var managed []string
		for _, g := range u.DirectGroupMembership {
			if s.managed[g] {
				managed = append(managed, g)
			}
		}
		slices.Sort(managed)
		if !slices.Equal(managed, s.groups(&have)) {
			got.Groups = s.groupNames(managed)
		}
	}
	got.Active = u.IsActive
	return got
}

// groupNames maps managed group codes back to the sources' names (the first name, in
// order, that maps to each code).
func (s *Sink) groupNames(codes []string) []string {
	var names []string
	for _, code := range codes {
		for _, name := range slices.Sorted(maps.Keys(s.cfg.Groups)) {
			if s.cfg.Groups[name] == code {
				names = append(names, name)
				break
			}
		}
	}
	slices.Sort(names)
	return names
}

// Owned lists the active accounts that carry idsync's id tag, for --rebuild-snapshot.
// Haplo lists all active users only through the Everyone group, so blocked accounts
// are not found: a person who comes back to one is adopted when the create meets it.
func (s *Sink) Owned(ctx context.Context) ([]dsync.Entry, error) {
	var a struct {
		Users []int `json:"users"`
	}
	if err := s.cl.do(ctx, call{endpoint: "user.group", method: http.MethodGet, path: "/api/v0-user/group/std:group:everyone", auth: s.cl.userAuth}, &a); err != nil {
		return nil, fmt.Errorf("haplo: list users: %w", err)
	}
	entries := make([]dsync.Entry, len(a.Users))
	errs := make([]error, len(a.Users))
	work := make(chan int)
	done := make(chan struct{})
	for range s.cfg.Concurrency {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range work {
				u, err := s.getUser(ctx, a.Users[i])
				if err != nil {
					errs[i] = err
					continue
				}
				id := u.Tags[s.cfg.IDTag]
				if id == "" || u.IsGroup {
					continue
				}
				applied := dsync.Identity{ID: id, Username: u.Tags["username"], Email: u.Email,
					FirstName: u.NameFirst, LastName: u.NameLast, Active: u.IsActive}
				if len(s.cfg.Groups) > 0 {
					applied.Groups = s.groupNames(u.DirectGroupMembership)
				}
				entries[i] = dsync.Entry{ID: id, UserID: strconv.Itoa(u.ID), ProfileRef: u.ref(), User: &applied}
			}
		}()
	}
	for i := range a.Users {
		work <- i
	}
	close(work)
	for range s.cfg.Concurrency {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("haplo: read users: %w", err)
	}
	return slices.DeleteFunc(entries, func(e dsync.Entry) bool { return e.ID == "" }), nil
}

var _ dsync.Checker = (*Sink)(nil)

// haploEmail reports whether Haplo accepts email: its K_EMAIL_VALIDATION_REGEX,
// ^[a-zA-Z0-9!#$%*/?|^{}`~&'+=_.-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9.-]+$, written out (the
// regular expression took a tenth of a 100,000-person no-op run). ASCII only, so an
// internationalised domain in UTF-8 is refused. TestHaploEmail holds it to the regex.
func haploEmail(email string) bool {
	alnum := func(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' }
	at := strings.IndexByte(email, '@')
	if at <= 0 {
		return false
	}
	for i := range at {
		if c := email[i]; !alnum(c) && !strings.ContainsRune("!#$%*/?|^{}`~&'+=_.-", rune(c)) {
			return false
		}
	}
	domain := email[at+1:]
	dot := strings.IndexByte(domain, '.') // the first: the first label has none
	if dot <= 0 || dot == len(domain)-1 {
		return false
	}
	for i := range len(domain) {
		if c := domain[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// Check holds the people Haplo would refuse, before anything is made for them: an
// email outside its pattern, or an empty first or last name (both are required).
func (s *Sink) Check(id *dsync.Identity) []string {
	var problems []string
	if !haploEmail(id.Email) {
		problems = append(problems, fmt.Sprintf("Haplo refuses the email %q (ASCII letters, digits and !#$%%*/?|^{}`~&'+=_.- only; an internationalised domain must be given in its xn-- form)", id.Email))
	}
	if strings.TrimSpace(id.FirstName) == "" || strings.TrimSpace(id.LastName) == "" {
		problems = append(problems, "Haplo needs a first and a last name")
	}
	return problems
}
