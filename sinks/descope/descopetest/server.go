// Package descopetest runs an in-process contract server for Descope's Management API
// (users), built from idsync's notes on that API (shared/apis/targets.md §1) rather
// than from any client: the exact bearer string "<ProjectID>:<ManagementKey>",
// {"user": ...} answers, loginId keys that take a loginId or a userId, 404 E112102 for
// unknown users, 409 E062107 for a taken loginId (the management API's answer is not
// documented), a full-overwrite update that clears every field it is not sent, a
// patch that changes only what it is sent, unique loginIds, batch create with
// per-user failures, both search paths and both field spellings, and rate-limit
// budgets answered with 429, Retry-After and E130429. Faults (failures before or after
// a request takes effect, latency) can be injected while it runs.
package descopetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/contract"
)

// Documented rate limits, per project and per 60 s window.
const (
	DocumentedUserLimit   = 500 // /v1/mgmt/user/*
	DocumentedCreateLimit = 100 // /v1/mgmt/user/create and /create/batch
)

// Options configures a Server. The zero value is a working server without limits.
type Options struct {
	// ProjectID and ManagementKey make the only bearer string accepted:
	// "Bearer <ProjectID>:<ManagementKey>". Defaults DefaultProjectID and
	// DefaultManagementKey.
	ProjectID     string
	ManagementKey string
	// UserLimit caps the user-management requests (every path under
	// /v1/mgmt/user, /v2/mgmt/user and /v1/mgmt/users) per Window; CreateLimit caps
	// create and create/batch requests per Window, which count towards UserLimit too.
	// Over a budget the server answers 429, E130429 and Retry-After: the seconds left
	// in the window, rounded up. 0 means no limit. The documented values are
	// DocumentedUserLimit and DocumentedCreateLimit.
	UserLimit   int
	CreateLimit int
	// Window is the length of a rate-limit window; default 60s. A window starts with
	// the first request after the last one ended.
	Window time.Duration
	// Now is the clock of the rate-limit windows and createdTime; default time.Now.
	// Tests that advance it stand in for waiting out a Retry-After.
	Now func() time.Time
	// Latency is added to every request; see SetLatency.
	Latency time.Duration
	// BatchAllOrNothing answers a batch create that holds a user whose loginId is
	// taken with 409 E062107 for the whole batch, creating none of them. By default
	// (unconfirmed either way) the others are created and the taken ones listed in
	// failedUsers.
	BatchAllOrNothing bool
	// UniqueEmails refuses, with 409 E062107, a create or patch that gives a user an
	// email another user has. Descope's rule here is not documented; off by default.
	UniqueEmails bool
	// Roles and Tenants, when not nil, are the project's roles and tenants: others are
	// refused with 400 E011003. Nil accepts any name.
	Roles   []string
	Tenants []string
}

// Defaults of Options.
const (
	DefaultProjectID     = "P2descopetest"
	DefaultManagementKey = "K2descopetest-management-key"
)

// Error codes the server answers with (targets.md §1, Errors). No code is documented
// for a refused management key: the server sends E011001, the generic bad request.
const (
	CodeBadRequest     = "E011001"
	CodeMissingArgs    = "E011002"
	CodeValidation     = "E011003"
	CodeUserExists     = "E062107"
	CodeUserNotFound   = "E112102"
	CodeUpdateConflict = "E111127"
	CodeRateLimited    = "E130429"
)

// Call is one request the server received.
type Call struct {
	Endpoint string // the label Requests counts it under
	Method   string
	Path     string // with the query
	Body     []byte
}

// Server is a fake Descope project. Every method is safe for concurrent use.
type Server struct {
	// URL is the base URL of a server made by NewServer or Start.
	URL string
	ts  *httptest.Server
	opt Options

	// Traffic counts the requests by endpoint (user.load, users.load, user.search,
	// user.create, user.create.batch, user.update, user.patch, user.status,
	// user.email, user.name, user.phone, user.picture, user.loginid, user.attribute,
	// user.role.set, user.role.add, user.role.remove, user.tenant.add,
	// user.tenant.remove, user.delete, user.delete.batch, other; refused ones
	// included) and adds the latency: a request whose client gives up while it waits
	// has no effect.
	contract.Traffic

	mu     sync.Mutex
	users  map[string]*User  // by userId
	logins map[string]string // lowercased loginId -> userId
	nextID int
	calls  []Call
	faults []fault
	window struct {
		start        time.Time
		user, create int
	}
}

// fault is an injected failure of the next n requests to endpoint ("" for any).
type fault struct {
	endpoint string
	n        int
	status   int
	after    bool // the request takes effect, then its answer is replaced
}

// New returns a server that is not listening: use Handler, or NewServer and Start.
func New(opt Options) *Server {
	if opt.ProjectID == "" {
		opt.ProjectID = DefaultProjectID
	}
	if opt.ManagementKey == "" {
		opt.ManagementKey = DefaultManagementKey
	}
	if opt.Window <= 0 {
		opt.Window = time.Minute
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Server{opt: opt, users: map[string]*User{}, logins: map[string]string{}}
	s.SetLatency(opt.Latency)
	return s
}

// NewServer starts a server on a loopback port; Close stops it.
func NewServer(opt Options) *Server {
	s := New(opt)
	s.ts = httptest.NewServer(s.Handler())
	s.URL = s.ts.URL
	return s
}

// Start starts a server that is closed when the test ends.
func Start(tb testing.TB, opt Options) *Server {
	tb.Helper()
	s := NewServer(opt)
	tb.Cleanup(s.Close)
	return s
}

// Close stops a server made by NewServer.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// ProjectID and ManagementKey are the credentials the server accepts.
func (s *Server) ProjectID() string     { return s.opt.ProjectID }
func (s *Server) ManagementKey() string { return s.opt.ManagementKey }

// Handler returns the HTTP handler of the fake project.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Users returns copies of every user, in creation order.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	us := make([]User, 0, len(s.users))
	for _, u := range s.users {
		us = append(us, u.clone())
	}
	slices.SortFunc(us, func(a, b User) int { return a.seq - b.seq })
	return us
}

// User returns a copy of the user with this loginId or userId.
func (s *Server) User(loginIDOrUserID string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.resolve(loginIDOrUserID)
	if u == nil {
		return User{}, false
	}
	return u.clone(), true
}

// AddUser seeds a user as someone working in the console would make it, without the
// API's rules, and returns it with its userId (and an enabled status when none is
// given). It panics when a loginId is taken: a broken test.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range u.LoginIDs {
		if s.logins[strings.ToLower(l)] != "" {
			panic(fmt.Sprintf("descopetest: loginId %q is taken", l))
		}
	}
	c := u.clone()
	if c.Status == "" {
		c.Status = "enabled"
	}
	s.insert(&c)
	return c.clone()
}

// Edit changes the user with this loginId or userId as someone working in the
// console would, without the API's rules; a change of its loginIds is indexed. It
// reports whether there was such a user.
func (s *Server) Edit(loginIDOrUserID string, edit func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.resolve(loginIDOrUserID)
	if u == nil {
		return false
	}
	c := u.clone()
	edit(&c)
	c.UserID, c.seq = u.UserID, u.seq
	ids := c.LoginIDs
	c.LoginIDs = u.LoginIDs
	*u = c
	s.setLoginIDs(u, ids)
	return true
}

// Remove deletes the user with this loginId or userId behind the client's back. It
// reports whether there was one.
func (s *Server) Remove(loginIDOrUserID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.resolve(loginIDOrUserID)
	if u != nil {
		s.remove(u)
	}
	return u != nil
}

// Calls returns every request received, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// FailNext makes the next n requests fail with status before they have any effect.
// A 429 carries Retry-After: 0 and E130429.
func (s *Server) FailNext(n, status int) { s.Fail(Fault{N: n, Status: status}) }

// Fault is a failure to inject.
type Fault struct {
	// Endpoint is the Requests label of the requests to fail; "" for any.
	Endpoint string
	N        int
	Status   int
	// After lets the request take effect before its answer is replaced by the
	// failure: a proxy or the network failing after Descope acted.
	After bool
}

// Fail injects f, after the faults already waiting.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.N > 0 {
		s.faults = append(s.faults, fault{endpoint: f.Endpoint, n: f.N, status: f.Status, after: f.After})
	}
}

// takeFault returns the fault due for a request to endpoint, if any. s.mu is held.
func (s *Server) takeFault(endpoint string) (fault, bool) {
	for i := range s.faults {
		f := &s.faults[i]
		if f.endpoint != "" && f.endpoint != endpoint {
			continue
		}
		got := *f
		if f.n--; f.n == 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		return got, true
	}
	return fault{}, false
}

// route is one endpoint.
type route struct {
	label  string
	create bool // counts towards the create budget
	handle func(s *Server, w http.ResponseWriter, r *http.Request, body []byte)
}

var routes = map[string]route{
	"GET /v1/mgmt/user":                         {label: "user.load", handle: (*Server).handleLoad},
	"POST /v1/mgmt/users/load":                  {label: "users.load", handle: (*Server).handleLoadMany},
	"POST /v1/mgmt/user/search":                 {label: "user.search", handle: (*Server).handleSearch},
	"POST /v2/mgmt/user/search":                 {label: "user.search", handle: (*Server).handleSearch},
	"POST /v1/mgmt/user/create":                 {label: "user.create", create: true, handle: (*Server).handleCreate},
	"POST /v1/mgmt/user/create/batch":           {label: "user.create.batch", create: true, handle: (*Server).handleBatch},
	"POST /v1/mgmt/user/update":                 {label: "user.update", handle: (*Server).handleUpdate},
	"PATCH /v1/mgmt/user/patch":                 {label: "user.patch", handle: (*Server).handlePatch},
	"POST /v1/mgmt/user/update/status":          {label: "user.status", handle: (*Server).handleStatus},
	"POST /v1/mgmt/user/update/email":           {label: "user.email", handle: (*Server).handleEmail},
	"POST /v1/mgmt/user/update/name":            {label: "user.name", handle: (*Server).handleName},
	"POST /v1/mgmt/user/update/phone":           {label: "user.phone", handle: (*Server).handlePhone},
	"POST /v1/mgmt/user/update/picture":         {label: "user.picture", handle: (*Server).handlePicture},
	"POST /v1/mgmt/user/update/loginid":         {label: "user.loginid", handle: (*Server).handleLoginID},
	"POST /v1/mgmt/user/update/customAttribute": {label: "user.attribute", handle: (*Server).handleAttribute},
	"POST /v1/mgmt/user/update/role/set":        {label: "user.role.set", handle: (*Server).handleRoles},
	"POST /v2/mgmt/user/update/role/add":        {label: "user.role.add", handle: (*Server).handleRoles},
	"POST /v1/mgmt/user/update/role/remove":     {label: "user.role.remove", handle: (*Server).handleRoles},
	"POST /v1/mgmt/user/update/tenant/add":      {label: "user.tenant.add", handle: (*Server).handleTenant},
	"POST /v1/mgmt/user/update/tenant/remove":   {label: "user.tenant.remove", handle: (*Server).handleTenant},
	"POST /v1/mgmt/user/delete":                 {label: "user.delete", handle: (*Server).handleDelete},
	"POST /v1/mgmt/user/delete/batch":           {label: "user.delete.batch", handle: (*Server).handleDeleteBatch},
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rt, found := routes[r.Method+" "+r.URL.Path]
	if !found {
		rt.label = "other"
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Endpoint: rt.label, Method: r.Method, Path: r.URL.RequestURI(), Body: body})
	s.mu.Unlock()
	if !s.Arrive(r, rt.label) {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	f, faulty := s.takeFault(rt.label)
	if faulty && !f.after {
		writeFault(w, f.status)
		return
	}
	out := w
	var rec *httptest.ResponseRecorder
	if faulty {
		rec = httptest.NewRecorder()
		out = rec
	}
	s.serveLocked(out, r, rt, found, body)
	if faulty {
		writeFault(w, f.status)
	}
}

func (s *Server) serveLocked(w http.ResponseWriter, r *http.Request, rt route, found bool, body []byte) {
	if r.Header.Get("Authorization") != "Bearer "+s.opt.ProjectID+":"+s.opt.ManagementKey {
		writeError(w, http.StatusUnauthorized, CodeBadRequest, "Unauthorized", "the management key is not valid for this project")
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, CodeBadRequest, "Not found", "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	if wait, ok := s.overBudget(rt.create); ok {
		w.Header().Set("Retry-After", strconv.Itoa(wait))
		writeError(w, http.StatusTooManyRequests, CodeRateLimited, "Rate limit exceeded", "too many requests, retry later")
		return
	}
	rt.handle(s, w, r, body)
}

// overBudget counts a request against the budgets and reports whether it is over
// one, and the seconds to wait. s.mu is held.
func (s *Server) overBudget(create bool) (int, bool) {
	if s.opt.UserLimit <= 0 && s.opt.CreateLimit <= 0 {
		return 0, false
	}
	now := s.opt.Now()
	w := &s.window
	if w.start.IsZero() || !now.Before(w.start.Add(s.opt.Window)) {
		w.start, w.user, w.create = now, 0, 0
	}
	over := s.opt.UserLimit > 0 && w.user >= s.opt.UserLimit ||
		create && s.opt.CreateLimit > 0 && w.create >= s.opt.CreateLimit
	if over {
		left := w.start.Add(s.opt.Window).Sub(now)
		return max(1, int(math.Ceil(left.Seconds()))), true
	}
	w.user++
	if create {
		w.create++
	}
	return 0, false
}

// writeFault answers an injected failure.
func writeFault(w http.ResponseWriter, status int) {
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "0")
		writeError(w, status, CodeRateLimited, "Rate limit exceeded", "injected")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "descopetest: injected %d %s\n", status, http.StatusText(status))
}

// apiError is Descope's error body.
type apiError struct {
	Code        string `json:"errorCode"`
	Description string `json:"errorDescription"`
	Message     string `json:"errorMessage"`
}

func writeError(w http.ResponseWriter, status int, code, description, message string) {
	writeJSON(w, status, apiError{code, description, message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		panic(err) // only the server's own values are encoded
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func notFound(w http.ResponseWriter, who string) {
	writeError(w, http.StatusNotFound, CodeUserNotFound, "User not found", fmt.Sprintf("user %q not found", who))
}

func badRequest(w http.ResponseWriter, code, message string) {
	writeError(w, http.StatusBadRequest, code, "Bad request", message)
}

// decode reads a JSON body into v, or answers 400.
func decode(w http.ResponseWriter, body []byte, v any) bool {
	if err := json.Unmarshal(body, v); err != nil {
		badRequest(w, CodeBadRequest, "the body is not valid JSON: "+err.Error())
		return false
	}
	return true
}
