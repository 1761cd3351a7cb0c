// Package descope implements a sync.Sink for Descope's Management API: users created
// with their loginId (alone, or gathered into create/batch requests on a first sync),
// changed with partial patches, enabled and disabled through their status, given
// project roles, tenants and custom attributes from mapped groups and attributes,
// and deleted. Users are addressed by Descope's userId, which idsync keeps; the
// loginId is data that follows its identity field.
package descope

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/time/rate"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

// Descope's error codes that idsync acts on.
const (
	codeUserNotFound = "E112102"
	codeUserExists   = "E062107"
	codeRateLimited  = "E130429"
)

// Sink applies operations to one Descope project.
type Sink struct {
	cfg Config
	// api makes every request but creates; creates makes create and create/batch,
	// each attempt waiting on the create budget, after general (api's limit).
	api     *httpapi.Client
	creates *httpapi.Client
	general *rate.Limiter
	auth    func(*http.Request)
	log     *slog.Logger
	batch   *batcher // nil when creates go alone

	roleGroups   map[string][]string // role -> the groups that give it
	tenantGroups map[string][]string // tenant -> the groups that give membership
}

var (
	_ dsync.Sink    = (*Sink)(nil)
	_ dsync.Reader  = (*Sink)(nil)
	_ dsync.Checker = (*Sink)(nil)
)

// New builds a sink, reading the management key file. It does not contact Descope.
func New(cfg Config, hc *http.Client, obs httpapi.Observer, log *slog.Logger) (*Sink, error) {
	if errs := cfg.Validate("descope"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.setDefaults()
	key, err := secret.Load("management_key", cfg.ManagementKey, cfg.ManagementKeyFile)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bearer := secret.New("Bearer " + cfg.ProjectID + ":" + key.Reveal())
	cfg.ManagementKey = "" // the key lives on in bearer only, which never prints
	s := &Sink{cfg: cfg, log: log, auth: func(r *http.Request) { r.Header.Set("Authorization", bearer.Reveal()) },
		roleGroups: map[string][]string{}, tenantGroups: map[string][]string{}}
	s.api = cfg.NewClient(cfg.baseURL(), hc, httpapi.Client{Obs: obs, Log: log, Error: apiError})
	s.general = s.api.Limit
	creates := *s.api
	creates.Limit = rate.NewLimiter(rate.Limit(cfg.CreateRateLimit), createBurst)
	s.creates = &creates
	if cfg.BatchSize > 1 {
		s.batch = &batcher{size: cfg.BatchSize, wait: cfg.BatchWait, send: s.sendBatch, budget: creates.Limit}
	}
	for group, role := range cfg.Roles {
		s.roleGroups[role] = append(s.roleGroups[role], group)
	}
	for group, t := range cfg.Tenants {
		s.tenantGroups[t.TenantID] = append(s.tenantGroups[t.TenantID], group)
	}
	return s, nil
}

// Concurrency is the configured number of identities applied at once.
func (s *Sink) Concurrency() int { return s.cfg.Concurrency }

// Schema: users take the email and names, the username when it is the loginId, groups
// when roles or tenants are mapped, attributes when custom attributes are; no
// profiles; deletes are possible.
func (s *Sink) Schema() dsync.Schema {
	user := dsync.FieldEmail | dsync.FieldFirstName | dsync.FieldLastName | dsync.FieldDisplayName
	if s.cfg.LoginID == "username" {
		user |= dsync.FieldUsername
	}
	if len(s.cfg.Roles) > 0 || len(s.cfg.Tenants) > 0 {
		user |= dsync.FieldGroups
	}
	if len(s.cfg.CustomAttributes) > 0 {
		user |= dsync.FieldAttributes
	}
	return dsync.Schema{User: user, Delete: true}
}

// Check holds the people who have no value for the loginId field.
func (s *Sink) Check(id *dsync.Identity) []string {
	if strings.TrimSpace(s.loginID(id)) == "" {
		return []string{fmt.Sprintf("Descope needs a loginId, and the identity has no %s (login_id)", s.cfg.LoginID)}
	}
	return nil
}

// loginID is the identity's loginId.
func (s *Sink) loginID(id *dsync.Identity) string {
	switch s.cfg.LoginID {
	case "username":
		return id.Username
	case "id":
		return id.ID
	}
	return id.Email
}

// loginField is the field the loginId follows; 0 for the anchor, which never changes.
func (s *Sink) loginField() dsync.FieldSet {
	switch s.cfg.LoginID {
	case "username":
		return dsync.FieldUsername
	case "email":
		return dsync.FieldEmail
	}
	return 0
}

// APIError is a Descope error answer.
type APIError struct {
	Endpoint    string
	Status      int
	Code        string // errorCode: E112102, ...
	Description string
	Message     string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d", e.Endpoint, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	var text []string
	for _, t := range []string{e.Description, e.Message} {
		if t != "" {
			text = append(text, t)
		}
	}
	if len(text) > 0 {
		msg += ": " + strings.Join(text, ": ")
	}
	return msg
}

// Is maps Descope's answers to the engine's sentinels. Only 404 with E112102 is a
// missing user: a 404 without it (a wrong URL, a proxy) must not make the engine
// forget accounts. A 429 that outlasted the retries stops the sink for the run.
func (e *APIError) Is(target error) bool {
	switch target {
	case dsync.ErrNotFound:
		return e.Status == http.StatusNotFound && e.Code == codeUserNotFound
	case dsync.ErrExists:
		return e.Code == codeUserExists || e.Status == http.StatusConflict
	case dsync.ErrStopSink:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden ||
			e.Status == http.StatusTooManyRequests || e.Code == codeRateLimited
	}
	return false
}

// apiError reads an error answer. A 307 is a success, as Descope's SDK takes it.
func apiError(endpoint string, status int, _ http.Header, body []byte) error {
	if status == http.StatusTemporaryRedirect {
		return nil
	}
	e := &APIError{Endpoint: endpoint, Status: status}
	var env struct {
		Code        string `json:"errorCode"`
		Description string `json:"errorDescription"`
		Message     string `json:"errorMessage"`
		Msg         string `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil {
		e.Code, e.Description, e.Message = env.Code, env.Description, env.Message
		if e.Message == "" {
			e.Message = env.Msg
		}
	} else {
		e.Message = httpapi.Excerpt(body)
	}
	return e
}

// call makes one request that is safe to repeat.
func (s *Sink) call(ctx context.Context, endpoint, method, path string, body, out any) error {
	return s.api.Do(ctx, httpapi.Call{Endpoint: endpoint, Method: method, Path: path, Body: body, Auth: s.auth}, out)
}

// createCall makes a create or create/batch request: not repeated once Descope may
// have acted, and within both budgets.
func (s *Sink) createCall(ctx context.Context, endpoint, path string, body, out any) error {
	if s.general != nil {
		if err := s.general.Wait(ctx); err != nil {
			return fmt.Errorf("%s: rate limit: %w", endpoint, err)
		}
	}
	return s.creates.Do(ctx, httpapi.Call{Endpoint: endpoint, Method: http.MethodPost, Path: path, Body: body,
		Auth: s.auth, Unsafe: true}, out)
}

// Apply carries out one operation.
func (s *Sink) Apply(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	var (
		out dsync.Outcome
		err error
	)
	if op.Kind != dsync.CreateUser && op.UserID == "" && op.Kind != dsync.DeleteUser {
		err = fmt.Errorf("the snapshot has no Descope userId: %w", dsync.ErrNotFound)
	} else {
		switch op.Kind {
		case dsync.CreateUser:
			out, err = s.create(ctx, op)
		case dsync.UpdateUser:
			out, err = s.update(ctx, op)
		case dsync.EnableUser:
			if err = s.setStatus(ctx, op.UserID, "enabled"); errors.Is(err, dsync.ErrNotFound) {
				out, err = s.recreate(ctx, op, err)
			}
		case dsync.DisableUser:
			// A missing user says ErrNotFound: there is nobody to disable, and the
			// engine forgets the account.
			err = s.setStatus(ctx, op.UserID, "disabled")
		case dsync.DeleteUser:
			err = s.delete(ctx, op.UserID)
		default:
			err = fmt.Errorf("%s: %w", op.Kind, dsync.ErrUnsupported)
		}
	}
	if err != nil {
		return out, fmt.Errorf("descope: %s %s: %w", op.Kind, op.ID, err)
	}
	return out, nil
}

// user is Descope's User object, as far as idsync reads it.
type user struct {
	UserID           string         `json:"userId"`
	LoginIDs         []string       `json:"loginIds"`
	LoginID          string         `json:"loginId"` // only in a failed batch user, maybe
	Name             string         `json:"name"`
	GivenName        string         `json:"givenName"`
	FamilyName       string         `json:"familyName"`
	Email            string         `json:"email"`
	RoleNames        []string       `json:"roleNames"`
	UserTenants      []userTenant   `json:"userTenants"`
	Status           string         `json:"status"`
	CustomAttributes map[string]any `json:"customAttributes"`
}

type userTenant struct {
	TenantID  string   `json:"tenantId"`
	RoleNames []string `json:"roleNames"`
}

type userAnswer struct {
	User user `json:"user"`
}

// load reads a user by userId.
func (s *Sink) load(ctx context.Context, userID string) (*user, error) {
	return s.loadBy(ctx, url.Values{"loginId": {""}, "userId": {userID}})
}

// loadLogin reads a user by loginId.
func (s *Sink) loadLogin(ctx context.Context, loginID string) (*user, error) {
	return s.loadBy(ctx, url.Values{"loginId": {loginID}, "userId": {""}})
}

func (s *Sink) loadBy(ctx context.Context, q url.Values) (*user, error) {
	var a userAnswer
	if err := s.call(ctx, "user.load", http.MethodGet, "/v1/mgmt/user?"+q.Encode(), nil, &a); err != nil {
		return nil, err
	}
	if a.User.UserID == "" {
		return nil, errors.New("user.load: the answer holds no user")
	}
	return &a.User, nil
}

// searchEmail finds the users with this email.
func (s *Sink) searchEmail(ctx context.Context, email string) ([]user, error) {
	var a struct {
		Users []user `json:"users"`
	}
	body := map[string]any{"emails": []string{email}, "limit": 10}
	if err := s.call(ctx, "user.search", http.MethodPost, "/v2/mgmt/user/search", body, &a); err != nil {
		return nil, err
	}
	return a.Users, nil
}

// setStatus enables or disables a user; setting the status it has changes nothing.
func (s *Sink) setStatus(ctx context.Context, userID, status string) error {
	return s.call(ctx, "user.status", http.MethodPost, "/v1/mgmt/user/update/status",
		map[string]string{"loginId": userID, "status": status}, nil)
}

// delete deletes a user; one that is gone already is no error.
func (s *Sink) delete(ctx context.Context, userID string) error {
	if userID == "" {
		return nil
	}
	err := s.call(ctx, "user.delete", http.MethodPost, "/v1/mgmt/user/delete",
		map[string]string{"loginId": userID, "userId": ""}, nil)
	if errors.Is(err, dsync.ErrNotFound) {
		return nil
	}
	return err
}
