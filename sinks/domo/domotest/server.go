// Package domotest runs an in-process contract server for Domo's public User API
// (api.domo.com/v1/users) and its OAuth client-credentials token endpoint, built from
// what Domo's documentation and SDKs say (shared/apis/targets.md §2), for idsync's
// tests.
//
// What it does, and what it chose where Domo's behaviour is not confirmed:
//   - /oauth/token (GET or POST; parameters in the query or a form body; the client id
//     and secret as HTTP Basic) issues JWT-shaped bearer tokens with expires_in, only
//     to the right client and only with the scope user (a request without scope gets
//     every scope the client was granted). Anything else is 401.
//   - /v1/users wants "Authorization: bearer <token>" (any case of the scheme) with a
//     token it issued, not revoked and not expired: 401 otherwise.
//   - Create needs name, email and role (or roleId); the email must be unique among
//     users that are not deleted, compared case-insensitively. A duplicate is answered
//     400 with a Domo error body whose message says the email already exists
//     (unconfirmed; Options.DuplicateStatus makes it 409). Create answers 200
//     (Options.CreateStatus: 201) with the user.
//   - PUT replaces the whole record: a field not sent is cleared. It answers 200 with
//     the user (Options.EmptyPutBody: no body).
//   - DELETE answers 204. A deleted user still answers GET, with a subset of its
//     fields and "deleted": true; the list omits it; PUT and DELETE of it are 404.
//   - An id that never existed is 404 (unconfirmed).
//   - The list is a bare JSON array, limit 50 by default and at most 500 (more is
//     400), from offset, in id order; /v1/users/ with a trailing slash works too.
//   - Errors are Domo's JSON body: status, statusReason, message, path, toe.
//   - Rate limit: Domo documents none; Options.RateBudget sets a budget of requests per
//     window, over which requests are answered 429 with Retry-After, the
//     X-RateLimit-Limit and -Remaining headers a third party describes, and the error
//     body.
//
// Faults are injected before a request has any effect: FailNext, SetLatency (which
// notices a client that gives up); LoseNext applies requests and loses their answers;
// Remove deletes a user behind the client's back.
// All methods are safe for concurrent use.
package domotest

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/contract"
)

// Options configures a Server. The zero value is a working server.
type Options struct {
	// ClientID and ClientSecret are the OAuth client's credentials. Defaults
	// "idsync-test-client" and "domo-test-secret-0123456789".
	ClientID     string
	ClientSecret string
	// Scopes are the scopes the client was granted. Default account, data, user.
	Scopes []string
	// TokenTTL is the tokens' lifetime, sent as expires_in in whole seconds. Default
	// 3599s, as Domo answers.
	TokenTTL time.Duration
	// CreateStatus is the status of a successful create: 200 (default) or 201.
	CreateStatus int
	// DuplicateStatus is the status of a create or update that meets a taken email:
	// 400 (default) or 409.
	DuplicateStatus int
	// EmptyPutBody makes PUT answer 200 without a body.
	EmptyPutBody bool
	// RateBudget is how many requests, of every endpoint together, are allowed per
	// RateWindow; 0 for no limit. RateWindow defaults to one minute.
	RateBudget int
	RateWindow time.Duration
	// CustomRoles are the custom roles that exist, by roleId. The standard roles are
	// Admin (1), Privileged (2) and Participant (4); Domo does not document its
	// numbering, and custom ids must not be those.
	CustomRoles map[int64]string
	// Now is the server's clock, for token expiry and rate windows. Default time.Now.
	Now func() time.Time
	// Latency is added to every request.
	Latency time.Duration
}

const (
	defaultClientID     = "idsync-test-client"
	defaultClientSecret = "domo-test-secret-0123456789"
)

// standardRoles are the role names the API takes in "role", with the ids this server
// gives them.
var standardRoles = map[string]int64{"Admin": 1, "Privileged": 2, "Participant": 4}

// User is an account as an administrator would see it.
type User struct {
	ID     int64
	Name   string
	Email  string
	Role   string // the role's name: a standard role or a custom role's
	RoleID int64
	// The optional fields; EmployeeNumber as it was sent, a number's digits or a string.
	Title, AlternateEmail, Phone, Location, Timezone, Locale, EmployeeNumber string
	EmployeeID, Department                                                   string
	// Invited is set when the user was created with sendInvite=true.
	Invited   bool
	Deleted   bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Request is one request the server received, as its log keeps it.
type Request struct {
	Endpoint string // the Requests label
	Method   string
	Path     string // with the query
	Body     string
	Status   int
}

// Server is a fake Domo User API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of a started server: http://127.0.0.1:port.
	URL string

	opt Options
	ts  *httptest.Server

	// Traffic counts the requests by endpoint (token, user.create, user.list,
	// user.get, user.update, user.delete, other, faults and refusals included) and
	// adds the latency.
	contract.Traffic

	mu            sync.Mutex
	users         map[int64]*User
	nextID        int64
	tokens        map[string]time.Time // token -> expiry
	refuseTokens  bool
	tokenFetches  int
	log           []Request
	failNext      int
	failStatus    int
	loseNext      int
	windowStart   time.Time
	windowCount   int
	nextToe       int
	unauthorized  int
	rateLimited   int
	budget        int
	window        time.Duration
	customByName  map[string]int64
	roleNamesByID map[int64]string
}

// NewServer starts a server for opt. It panics if opt is not valid, as
// httptest.NewServer does when it cannot listen. Close it when done.
func NewServer(opt Options) *Server {
	s := newServer(opt)
	s.ts = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.ts.URL
	return s
}

// Start is NewServer for a test: the server is closed when the test ends.
func Start(tb testing.TB, opt Options) *Server {
	tb.Helper()
	s := NewServer(opt)
	tb.Cleanup(s.Close)
	return s
}

// Close shuts the server down, waiting for requests in flight.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// Handler returns the server's HTTP handler, for a server started some other way.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func newServer(opt Options) *Server {
	if opt.ClientID == "" {
		opt.ClientID = defaultClientID
	}
	if opt.ClientSecret == "" {
		opt.ClientSecret = defaultClientSecret
	}
	if opt.Scopes == nil {
		opt.Scopes = []string{"account", "data", "user"}
	}
	if opt.TokenTTL == 0 {
		opt.TokenTTL = 3599 * time.Second
	}
	if opt.CreateStatus == 0 {
		opt.CreateStatus = http.StatusOK
	}
	if opt.DuplicateStatus == 0 {
		opt.DuplicateStatus = http.StatusBadRequest
	}
	if opt.RateWindow == 0 {
		opt.RateWindow = time.Minute
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	switch {
	case opt.CreateStatus != http.StatusOK && opt.CreateStatus != http.StatusCreated:
		panic(fmt.Sprintf("domotest: CreateStatus %d: 200 or 201", opt.CreateStatus))
	case opt.DuplicateStatus != http.StatusBadRequest && opt.DuplicateStatus != http.StatusConflict:
		panic(fmt.Sprintf("domotest: DuplicateStatus %d: 400 or 409", opt.DuplicateStatus))
	case opt.TokenTTL < time.Second || opt.RateBudget < 0 || opt.RateWindow < 0:
		panic("domotest: TokenTTL is at least a second, RateBudget and RateWindow not negative")
	}
	s := &Server{
		opt: opt, users: map[int64]*User{}, nextID: 1001, tokens: map[string]time.Time{},
		budget: opt.RateBudget, window: opt.RateWindow,
		customByName: map[string]int64{}, roleNamesByID: map[int64]string{},
	}
	for name, id := range standardRoles {
		s.roleNamesByID[id] = name
	}
	for id, name := range opt.CustomRoles {
		if _, taken := s.roleNamesByID[id]; taken || id <= 0 || name == "" {
			panic(fmt.Sprintf("domotest: custom role %d %q: a positive id of its own and a name", id, name))
		}
		s.roleNamesByID[id] = name
		s.customByName[name] = id
	}
	s.SetLatency(opt.Latency)
	return s
}

// ClientID and ClientSecret return the OAuth client's credentials.
func (s *Server) ClientID() string     { return s.opt.ClientID }
func (s *Server) ClientSecret() string { return s.opt.ClientSecret }

// Log returns every request that has ended, in the order they ended.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// TokenFetches returns how many tokens the server has issued.
func (s *Server) TokenFetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenFetches
}

// Unauthorized returns how many /v1 requests were refused 401 for their token.
func (s *Server) Unauthorized() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unauthorized
}

// RateLimited returns how many requests were refused 429 for the rate budget.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateLimited
}

// Users returns copies of the users that are not deleted, by id.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	var us []User
	for _, u := range s.users {
		if !u.Deleted {
			us = append(us, *u)
		}
	}
	slices.SortFunc(us, func(a, b User) int { return cmp.Compare(a.ID, b.ID) })
	return us
}

// User returns a copy of the user with id, deleted or not.
func (s *Server) User(id int64) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// UserByEmail returns a copy of the user, not deleted, with email (any case).
func (s *Server) UserByEmail(email string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.byEmail(email, 0); u != nil {
		return *u, true
	}
	return User{}, false
}

// AddUser seeds a user as an administrator would create it, without the API's
// checks, and returns it with its id. An empty role is Participant.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.Role == "" && u.RoleID == 0 {
		u.Role = "Participant"
	}
	if u.RoleID == 0 {
		u.RoleID = standardRoles[u.Role]
	}
	u.ID = s.nextID
	s.nextID++
	u.CreatedAt, u.UpdatedAt = s.opt.Now().UTC(), s.opt.Now().UTC()
	s.users[u.ID] = &u
	return u
}

// Edit changes the user with id as an administrator would by hand, and reports
// whether it exists.
func (s *Server) Edit(id int64, edit func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return false
	}
	edit(u)
	u.UpdatedAt = s.opt.Now().UTC()
	return true
}

// Remove deletes the user with email (any case) behind the client's back, as an
// administrator would, and reports whether there was one. It answers GET as deleted
// from then on.
func (s *Server) Remove(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byEmail(email, 0)
	if u == nil {
		return false
	}
	u.Deleted = true
	return true
}

// FailNext makes the next n requests fail with status before they have any effect.
// A 429 carries Retry-After: 0.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failStatus = n, status
}

// LoseNext makes the next n requests take effect and then answer 502, as a proxy
// does when the application's answer is lost.
func (s *Server) LoseNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseNext = n
}

// SetRateBudget changes the rate budget: n requests per window, 0 for no limit. The
// current window starts again.
func (s *Server) SetRateBudget(n int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budget, s.window, s.windowStart, s.windowCount = n, window, time.Time{}, 0
}

// RevokeTokens makes every token issued so far invalid, as their expiry would.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// SetTokensRefused makes /v1 refuse every token, new ones too, with 401 (on), as
// when the client loses its access between the token and the call.
func (s *Server) SetTokensRefused(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseTokens = on
}

// byEmail finds the user, not deleted and other than except, with email in any
// case. s.mu is held.
func (s *Server) byEmail(email string, except int64) *User {
	for _, u := range s.users {
		if !u.Deleted && u.ID != except && strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}

// statusWriter keeps the status a handler wrote, for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

const maxBody = 1 << 20

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rt := routeFor(r)
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	r.Body = io.NopCloser(bytes.NewReader(body))
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		s.log = append(s.log, Request{Endpoint: rt.label, Method: r.Method, Path: r.URL.RequestURI(), Body: string(body), Status: sw.status})
		s.mu.Unlock()
	}()

	if !s.Arrive(r, rt.label) {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.injectFault(sw, r) || s.throttle(sw, r) {
		return
	}
	if s.loseNext > 0 {
		s.loseNext--
		rt.handle(s, httptest.NewRecorder(), r)
		s.writeError(sw, r, http.StatusBadGateway, "domotest: the answer was lost")
		return
	}
	rt.handle(s, sw, r)
}

// injectFault answers with the failure FailNext asked for, if one is due. s.mu is held.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	if s.failNext <= 0 {
		return false
	}
	s.failNext--
	if s.failStatus == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "0")
	}
	s.writeError(w, r, s.failStatus, "domotest: injected failure")
	return true
}

// throttle enforces the rate budget over a fixed window. s.mu is held.
func (s *Server) throttle(w http.ResponseWriter, r *http.Request) bool {
	if s.budget <= 0 {
		return false
	}
	now := s.opt.Now()
	if s.windowStart.IsZero() || !now.Before(s.windowStart.Add(s.window)) {
		s.windowStart, s.windowCount = now, 0
	}
	w.Header().Set("X-RateLimit-Limit", fmt.Sprint(s.budget))
	if s.windowCount >= s.budget {
		s.rateLimited++
		wait := s.windowStart.Add(s.window).Sub(now)
		secs := int64((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		w.Header().Set("X-RateLimit-Remaining", "0")
		s.writeError(w, r, http.StatusTooManyRequests, "Rate limit exceeded")
		return true
	}
	s.windowCount++
	w.Header().Set("X-RateLimit-Remaining", fmt.Sprint(s.budget-s.windowCount))
	return false
}

// route is one endpoint: the label Requests counts it under, and its handler.
type route struct {
	label  string
	handle func(s *Server, w http.ResponseWriter, r *http.Request)
}

func routeFor(r *http.Request) route {
	path := r.URL.Path
	switch {
	case path == "/oauth/token":
		if r.Method == http.MethodGet || r.Method == http.MethodPost {
			return route{"token", (*Server).handleToken}
		}
	case path == "/v1/users" || path == "/v1/users/":
		switch r.Method {
		case http.MethodGet:
			return route{"user.list", (*Server).handleList}
		case http.MethodPost:
			return route{"user.create", (*Server).handleCreate}
		}
	case strings.HasPrefix(path, "/v1/users/") && !strings.Contains(strings.TrimPrefix(path, "/v1/users/"), "/"):
		switch r.Method {
		case http.MethodGet:
			return route{"user.get", (*Server).handleGet}
		case http.MethodPut:
			return route{"user.update", (*Server).handleUpdate}
		case http.MethodDelete:
			return route{"user.delete", (*Server).handleDelete}
		}
		return route{"other", methodNotAllowed}
	default:
		return route{"other", notFound}
	}
	return route{"other", methodNotAllowed}
}

func notFound(s *Server, w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, http.StatusNotFound, "No handler found for "+r.Method+" "+r.URL.Path)
}

func methodNotAllowed(s *Server, w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, http.StatusMethodNotAllowed, "Request method '"+r.Method+"' not supported")
}
