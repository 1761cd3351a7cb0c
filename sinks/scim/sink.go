// Package scim implements a sync.Sink for SCIM 2.0 service providers (RFC 7643, RFC
// 7644): users created with POST, changed with PATCH (or PUT where PATCH is not
// supported), disabled with active: false, and managed groups' members kept.
package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	gosync "sync"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

const (
	mediaType        = "application/scim+json"
	userSchema       = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupSchema      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	enterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	patchSchema      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// Sink applies operations to one SCIM service provider.
type Sink struct {
	cfg  Config
	api  *httpapi.Client
	auth func(*http.Request)
	log  *slog.Logger

	configOnce gosync.Once
	patch      bool // the provider supports PATCH
	etag       bool // the provider supports ETags: writes carry If-Match

	mu     gosync.Mutex
	groups map[string]string // displayName -> id
}

var (
	_ dsync.Sink   = (*Sink)(nil)
	_ dsync.Reader = (*Sink)(nil)
)

// New builds a sink, reading the secret files. It does not contact the provider.
func New(cfg Config, hc *http.Client, obs httpapi.Observer, log *slog.Logger) (*Sink, error) {
	if errs := cfg.Validate("scim"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.setDefaults()
	s := &Sink{cfg: cfg, log: log, groups: make(map[string]string)}
	if cfg.Token != "" || cfg.TokenFile != "" {
		tok, err := secret.Load("token", cfg.Token, cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		s.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok.Reveal()) }
	} else {
		pw, err := secret.Load("password", cfg.Password, cfg.PasswordFile)
		if err != nil {
			return nil, err
		}
		s.auth = func(r *http.Request) { r.SetBasicAuth(cfg.Username, pw.Reveal()) }
	}
	s.api = cfg.NewClient(strings.TrimSuffix(cfg.URL, "/"), hc, httpapi.Client{Obs: obs, Log: log, Error: apiError})
	return s, nil
}

// Concurrency is the configured number of identities applied at once.
func (s *Sink) Concurrency() int { return s.cfg.Concurrency }

// Schema: SCIM users take every field; no profiles; deletes are possible.
func (s *Sink) Schema() dsync.Schema {
	user := dsync.FieldUsername | dsync.FieldEmail | dsync.FieldFirstName | dsync.FieldLastName | dsync.FieldDisplayName
	if len(s.cfg.Enterprise) > 0 {
		user |= dsync.FieldAttributes
	}
	if len(s.cfg.Groups) > 0 {
		user |= dsync.FieldGroups
	}
	return dsync.Schema{User: user, Delete: true}
}

// APIError is a SCIM error answer.
type APIError struct {
	Endpoint string
	Status   int
	ScimType string
	Detail   string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d", e.Endpoint, e.Status)
	if e.ScimType != "" {
		msg += " " + e.ScimType
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is maps SCIM's answers to the engine's sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case dsync.ErrNotFound:
		return e.Status == http.StatusNotFound
	case dsync.ErrExists:
		return e.Status == http.StatusConflict && (e.ScimType == "uniqueness" || e.ScimType == "")
	case dsync.ErrStopSink:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	}
	return false
}

func apiError(endpoint string, status int, _ http.Header, body []byte) error {
	e := &APIError{Endpoint: endpoint, Status: status}
	var env struct {
		ScimType string `json:"scimType"`
		Detail   string `json:"detail"`
	}
	if json.Unmarshal(body, &env) == nil {
		e.ScimType, e.Detail = env.ScimType, env.Detail
	} else {
		e.Detail = httpapi.Excerpt(body)
	}
	return e
}

func (s *Sink) do(ctx context.Context, endpoint, method, path string, body, out any) error {
	return s.api.Do(ctx, httpapi.Call{Endpoint: endpoint, Method: method, Path: path, Body: body,
		ContentType: mediaType, Auth: s.auth, Header: map[string]string{"Accept": mediaType}}, out)
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
		err = s.patchUser(ctx, op.UserID, []patchOp{{Op: "replace", Path: "active", Value: op.Kind == dsync.EnableUser}})
	case dsync.DeleteUser:
		err = s.do(ctx, "user.delete", http.MethodDelete, "/Users/"+url.PathEscape(op.UserID), nil, nil)
		if errors.Is(err, dsync.ErrNotFound) {
			err = nil // gone already
		}
	default:
		err = fmt.Errorf("%s: %w", op.Kind, dsync.ErrUnsupported)
	}
	if err != nil {
		return out, fmt.Errorf("scim: %s %s: %w", op.Kind, op.ID, err)
	}
	return out, nil
}

// user is the SCIM User resource, as idsync writes and reads it.
type user struct {
	Schemas     []string          `json:"schemas"`
	ID          string            `json:"id,omitempty"`
	ExternalID  string            `json:"externalId,omitempty"`
	UserName    string            `json:"userName"`
	Name        *name             `json:"name,omitempty"`
	DisplayName string            `json:"displayName,omitempty"`
	Emails      []email           `json:"emails,omitempty"`
	Active      bool              `json:"active"`
	Enterprise  map[string]string `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,omitempty"`
}

type name struct {
	GivenName  string `json:"givenName,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
}

type email struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

func (s *Sink) userName(id *dsync.Identity) string {
	if s.cfg.UserName == "email" || id.Username == "" {
		return id.Email
	}
	return id.Username
}

func (s *Sink) enterprise(id *dsync.Identity) map[string]string {
	var ext map[string]string
	for attr, field := range s.cfg.Enterprise {
		if v := id.Attributes.Get(attr); len(v) > 0 {
			if ext == nil {
				ext = make(map[string]string)
			}
			ext[field] = v[0]
		}
	}
	return ext
}

// resource is the whole User idsync wants for id.
func (s *Sink) resource(id *dsync.Identity, active bool) user {
	u := user{Schemas: []string{userSchema}, ExternalID: id.ID, UserName: s.userName(id),
		Name: &name{GivenName: id.FirstName, FamilyName: id.LastName}, DisplayName: id.DisplayName,
		Emails: []email{{Value: id.Email, Type: "work", Primary: true}}, Active: active, Enterprise: s.enterprise(id)}
	if u.Enterprise != nil {
		u.Schemas = append(u.Schemas, enterpriseSchema)
	}
	return u
}

// create POSTs the user; on 409 uniqueness it finds the account by userName and adopts
// it when it carries this identity's externalId or none.
func (s *Sink) create(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	var got user
	err := s.do(ctx, "user.create", http.MethodPost, "/Users", s.resource(&op.Want, true), &got)
	adopted := false
	if errors.Is(err, dsync.ErrExists) {
		var found *user
		if found, err = s.findByUserName(ctx, s.userName(&op.Want)); err == nil {
			switch {
			case found == nil:
				return dsync.Outcome{}, fmt.Errorf("userName %q is taken but cannot be found: %w", s.userName(&op.Want), dsync.ErrConflict)
			case found.ExternalID != "" && found.ExternalID != op.ID:
				return dsync.Outcome{}, fmt.Errorf("userName %q belongs to externalId %q: %w", found.UserName, found.ExternalID, dsync.ErrConflict)
			}
			adopted = found.ExternalID != op.ID
			got = *found
			err = s.writeUser(ctx, "user.replace", http.MethodPut, got.ID, s.resource(&op.Want, true))
		}
	}
	if err != nil {
		return dsync.Outcome{}, err
	}
	if err := s.setGroups(ctx, got.ID, nil, s.groupNames(&op.Want)); err != nil {
		return dsync.Outcome{}, err
	}
	return dsync.Outcome{UserID: got.ID, Adopted: adopted}, nil
}

// filterValue quotes a value for a SCIM filter: backslash and double quote escaped.
func filterValue(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// findByUserName finds the user with userName. RFC 7643 makes userName
// case-insensitive, but some servers compare it exactly in filters while refusing a
// case variant as taken (scimmy does): the lowercase form is tried too.
func (s *Sink) findByUserName(ctx context.Context, userName string) (*user, error) {
	tries := []string{userName}
	if lower := strings.ToLower(userName); lower != userName {
		tries = append(tries, lower)
	}
	for _, v := range tries {
		var list struct {
			Resources []user `json:"Resources"`
		}
		q := url.Values{"filter": {"userName eq " + filterValue(v)}}
		if err := s.do(ctx, "user.find", http.MethodGet, "/Users?"+q.Encode(), nil, &list); err != nil {
			return nil, err
		}
		for _, u := range list.Resources {
			if strings.EqualFold(u.UserName, userName) {
				return &u, nil
			}
		}
	}
	return nil, nil
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

// provider reads /ServiceProviderConfig once: whether PATCH and ETags are supported.
func (s *Sink) provider(ctx context.Context) {
	s.configOnce.Do(func() {
		var spc struct {
			Patch struct {
				Supported bool `json:"supported"`
			} `json:"patch"`
			Etag struct {
				Supported bool `json:"supported"`
			} `json:"etag"`
		}
		if err := s.do(ctx, "config", http.MethodGet, "/ServiceProviderConfig", nil, &spc); err != nil {
			s.log.Warn("could not read /ServiceProviderConfig: assuming PATCH works and no ETags", "err", err)
			s.patch = true
			return
		}
		s.patch, s.etag = spc.Patch.Supported, spc.Etag.Supported
	})
}

func (s *Sink) supportsPatch(ctx context.Context) bool {
	s.provider(ctx)
	return s.patch
}

// writeUser PATCHes or PUTs a user. Where the provider supports ETags, the write
// carries If-Match with the user's current version; a 412 (someone changed the user
// in between) is answered by reading it again and retrying once.
func (s *Sink) writeUser(ctx context.Context, endpoint, method, id string, body any) error {
	s.provider(ctx)
	path := "/Users/" + url.PathEscape(id)
	if !s.etag {
		return s.do(ctx, endpoint, method, path, body, nil)
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var u struct {
			Meta struct {
				Version string `json:"version"`
			} `json:"meta"`
		}
		if err = s.do(ctx, "user.get", http.MethodGet, path, nil, &u); err != nil {
			return err
		}
		err = s.api.Do(ctx, httpapi.Call{Endpoint: endpoint, Method: method, Path: path, Body: body, ContentType: mediaType,
			Auth: s.auth, Header: ifMatch(u.Meta.Version)}, nil)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusPreconditionFailed {
			return err
		}
		s.log.Debug("the user changed between read and write: reading it again", "endpoint", endpoint)
	}
	return err
}

// ifMatch is a write's headers: the SCIM media type, and the version it expects.
func ifMatch(version string) map[string]string {
	h := map[string]string{"Accept": mediaType}
	if version != "" {
		h["If-Match"] = version
	}
	return h
}

func (s *Sink) patchUser(ctx context.Context, id string, ops []patchOp) error {
	return s.writeUser(ctx, "user.patch", http.MethodPatch, id, map[string]any{"schemas": []string{patchSchema}, "Operations": ops})
}

// update sends the changed attributes: a PatchOp of replaces, or the whole resource
// with PUT where the provider has no PATCH. Groups are changed on the groups.
func (s *Sink) update(ctx context.Context, op dsync.Op) error {
	w := &op.Want
	var ops []patchOp
	if op.Fields.Has(dsync.FieldUsername) || op.Fields.Has(dsync.FieldEmail) && s.cfg.UserName == "email" {
		ops = append(ops, patchOp{Op: "replace", Path: "userName", Value: s.userName(w)})
	}
	if op.Fields.Has(dsync.FieldEmail) {
		ops = append(ops, patchOp{Op: "replace", Path: "emails", Value: []email{{Value: w.Email, Type: "work", Primary: true}}})
	}
	if op.Fields.Has(dsync.FieldFirstName) {
		ops = append(ops, patchOp{Op: "replace", Path: "name.givenName", Value: w.FirstName})
	}
	if op.Fields.Has(dsync.FieldLastName) {
		ops = append(ops, patchOp{Op: "replace", Path: "name.familyName", Value: w.LastName})
	}
	if op.Fields.Has(dsync.FieldDisplayName) {
		ops = append(ops, patchOp{Op: "replace", Path: "displayName", Value: w.DisplayName})
	}
	if op.Fields.Has(dsync.FieldAttributes) {
		for field, v := range s.enterprise(w) {
			ops = append(ops, patchOp{Op: "replace", Path: enterpriseSchema + ":" + field, Value: v})
		}
	}
	if len(ops) > 0 {
		var err error
		if s.supportsPatch(ctx) {
			err = s.patchUser(ctx, op.UserID, ops)
		} else {
			err = s.writeUser(ctx, "user.replace", http.MethodPut, op.UserID, s.resource(w, w.Active))
		}
		if err != nil {
			return err
		}
	}
	if op.Fields.Has(dsync.FieldGroups) {
		var had []string
		if op.Have != nil {
			had = s.groupNames(op.Have)
		}
		return s.setGroups(ctx, op.UserID, had, s.groupNames(w))
	}
	return nil
}

// groupNames maps an identity's groups to the managed SCIM groups, sorted.
func (s *Sink) groupNames(id *dsync.Identity) []string {
	var names []string
	for _, g := range id.Groups {
		if n, ok := s.cfg.Groups[g]; ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// setGroups adds the user to the groups in want and not in had, and removes it from
// those in had and not in want.
func (s *Sink) setGroups(ctx context.Context, userID string, had, want []string) error {
	for _, g := range want {
		if slices.Contains(had, g) {
			continue
		}
		if err := s.member(ctx, g, patchOp{Op: "add", Path: "members", Value: []map[string]string{{"value": userID}}}); err != nil {
			return err
		}
	}
	for _, g := range had {
		if slices.Contains(want, g) {
			continue
		}
		if err := s.member(ctx, g, patchOp{Op: "remove", Path: "members[value eq " + filterValue(userID) + "]"}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) member(ctx context.Context, group string, op patchOp) error {
	id, err := s.groupID(ctx, group)
	if err != nil {
		return err
	}
	return s.do(ctx, "group.patch", http.MethodPatch, "/Groups/"+url.PathEscape(id),
		map[string]any{"schemas": []string{patchSchema}, "Operations": []patchOp{op}}, nil)
}

// groupID finds a managed group by displayName, or creates it.
func (s *Sink) groupID(ctx context.Context, display string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock() // one lookup or creation at a time: never two groups of one name
	if id, ok := s.groups[display]; ok {
		return id, nil
	}
	var list struct {
		Resources []struct {
			ID          string `json:"id"`
			DisplayName string `json:"displayName"`
		} `json:"Resources"`
	}
	q := url.Values{"filter": {"displayName eq " + filterValue(display)}}
	if err := s.do(ctx, "group.find", http.MethodGet, "/Groups?"+q.Encode(), nil, &list); err != nil {
		return "", err
	}
	for _, g := range list.Resources {
		if g.DisplayName == display {
			s.groups[display] = g.ID
			return g.ID, nil
		}
	}
	var created struct {
		ID string `json:"id"`
	}
	body := map[string]any{"schemas": []string{groupSchema}, "displayName": display}
	if err := s.do(ctx, "group.create", http.MethodPost, "/Groups", body, &created); err != nil {
		return "", err
	}
	s.groups[display] = created.ID
	return created.ID, nil
}

// ReadUser reads a managed account back, for drift checks, in the terms idsync
// applied it.
func (s *Sink) ReadUser(ctx context.Context, e dsync.Entry) (dsync.Identity, error) {
	var u user
	if err := s.do(ctx, "user.get", http.MethodGet, "/Users/"+url.PathEscape(e.UserID), nil, &u); err != nil {
		return dsync.Identity{}, fmt.Errorf("scim: read user %s: %w", e.UserID, err)
	}
	got := *e.User
	if u.UserName != s.userName(e.User) {
		got.Username = u.UserName
	}
	primary := ""
	for _, m := range u.Emails {
		if m.Primary || primary == "" {
			primary = m.Value
		}
	}
	if !strings.EqualFold(primary, e.User.Email) {
		got.Email = primary
	}
	if u.Name != nil {
		got.FirstName, got.LastName = u.Name.GivenName, u.Name.FamilyName
	}
	got.DisplayName = u.DisplayName
	got.Active = u.Active
	return got, nil
}

var _ dsync.Lister = (*Sink)(nil)

// Owned pages through /Users (startIndex, count) and returns the users that carry an
// externalId: the ones idsync made or adopted, for --rebuild-snapshot.
func (s *Sink) Owned(ctx context.Context) ([]dsync.Entry, error) {
	const pageSize = 100
	var entries []dsync.Entry
	for start := 1; ; {
		var page struct {
			TotalResults int    `json:"totalResults"`
			Resources    []user `json:"Resources"`
		}
		q := url.Values{"startIndex": {fmt.Sprint(start)}, "count": {fmt.Sprint(pageSize)}}
		if err := s.do(ctx, "user.list", http.MethodGet, "/Users?"+q.Encode(), nil, &page); err != nil {
			return nil, fmt.Errorf("scim: list users: %w", err)
		}
		for _, u := range page.Resources {
			if u.ExternalID == "" {
				continue
			}
			id := dsync.Identity{ID: u.ExternalID, Username: u.UserName, DisplayName: u.DisplayName, Active: u.Active}
			if u.Name != nil {
				id.FirstName, id.LastName = u.Name.GivenName, u.Name.FamilyName
			}
			for _, m := range u.Emails {
				if m.Primary || id.Email == "" {
					id.Email = m.Value
				}
			}
			entries = append(entries, dsync.Entry{ID: u.ExternalID, UserID: u.ID, User: &id})
		}
		start += len(page.Resources)
		if len(page.Resources) == 0 || start > page.TotalResults {
			return entries, nil
		}
	}
}
