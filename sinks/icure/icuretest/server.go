// Package icuretest runs an in-process contract server for iCure's user REST API v2
// (the kraken / Cardinal backend), built from what kraken-common's UserController,
// UserLogicImpl and LoginController and kraken-lite's error handler do, for idsync's
// tests.
//
// It checks HTTP basic credentials (the administrator's, or a user's login with its
// password or an authentication token) and bearer tokens from its login endpoint,
// which expire; keeps users as CouchDB documents with revs; applies iCure's rules on
// create and modify (client-chosen ids, the id format, login, email and phone rules,
// uniqueness of email and login checked only when they change, "*" keeping the stored
// password); deletes softly; and makes authentication tokens for users. Faults (a
// status for the next requests, latency, a rate-limit budget) can be injected while it
// runs, and users changed or deleted behind the client's back.
//
// Where the API's behaviour is not documented, the server follows kraken-common's
// source: soft-deleted users are left out of the by-email lookup, the uniqueness
// checks and the list (its CouchDB views skip deleted documents); the uniqueness
// checks of a create run before the id is tried, so a create repeated with the same id
// and email answers the duplicate 400, and only a create whose email and login are
// free meets the id's 409.
package icuretest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/contract"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Username and Password are the administrator's credentials, for basic auth and
	// the login endpoint. Defaults "admin" and "admin-password-0123".
	Username string
	Password string
	// TokenTTL is how long a bearer token from the login or refresh endpoint is
	// valid; default one hour. RefreshTTL likewise for refresh tokens; default 24 h.
	TokenTTL   time.Duration
	RefreshTTL time.Duration
	// RateLimit is how many requests a RateWindow (default one second) admits; those
	// beyond it are answered 429 with a Retry-After of the seconds left in the window.
	// 0 admits all.
	RateLimit  int
	RateWindow time.Duration
	// Latency is added to every request.
	Latency time.Duration
	// TokenAsJSON makes the token endpoint answer the token as a JSON string; by
	// default it is the bare text (text/plain). Which one iCure sends is not confirmed.
	TokenAsJSON bool
	// DefaultLimit is the list endpoint's page size when the request gives none;
	// default 1000, as icure.pagination.defaultLimit.
	DefaultLimit int
}

// User is a user document as an administrator would see it.
type User struct {
	ID, Rev      string
	Created      int64 // ms since the epoch
	DeletionDate int64 // ms since the epoch; 0 while the user is not deleted
	Name         string
	Login        string
	Email        string
	MobilePhone  string
	Status       string // ACTIVE, DISABLED or REGISTERING
	PatientID    string
	HCPartyID    string // healthcarePartyId
	// PasswordHash is the stored password's hash, "" for none. The API never returns
	// it: reads say "*".
	PasswordHash string
	// Extra holds the document's other fields as they were written (roles,
	// properties, termsOfUseDate...).
	Extra map[string]json.RawMessage
}

// Deleted reports whether the user is soft-deleted.
func (u User) Deleted() bool { return u.DeletionDate != 0 }

// Token is an authentication token made by the token endpoint.
type Token struct {
	Value   string
	Created time.Time
	Expires time.Time
}

// Request is one request the server received, as its log keeps it.
type Request struct {
	Endpoint string // as counted by Requests
	Method   string
	Path     string // with the query
	Status   int
}

// Server is a fake iCure backend. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of a server made by NewServer or Start; /rest/v2 is under it.
	URL string

	opt Options
	ts  *httptest.Server

	// Traffic counts the requests by endpoint (auth.login, auth.refresh, user.create,
	// user.modify, user.get, user.by_email, user.current, user.list, user.delete,
	// user.undelete, user.purge, user.token, other; faults and refused credentials
	// included) and adds the latency.
	contract.Traffic

	mu         sync.Mutex
	users      map[string]*record
	access     map[string]grant // bearer tokens
	refresh    map[string]grant // refresh tokens
	log        []Request
	failNext   int
	failStatus int
	touchAfter map[string]int // user id -> GETs after which to Touch it
	rateLimit  int
	rateWindow time.Duration
	windowEnd  time.Time
	windowUsed int
	serial     int
	now        func() time.Time
}

// grant is what a bearer or refresh token stands for.
type grant struct {
	user    string // the user's id; "" for the administrator
	expires time.Time
}

// NewServer starts a server on a loopback port. Close it when done.
func NewServer(opt Options) *Server {
	s := newServer(opt)
	s.ts = httptest.NewServer(s.Handler())
	s.URL = s.ts.URL
	return s
}

// Start is NewServer, closed when the test ends.
func Start(tb testing.TB, opt Options) *Server {
	tb.Helper()
	s := NewServer(opt)
	tb.Cleanup(s.Close)
	return s
}

// Close shuts the server down.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

func newServer(opt Options) *Server {
	if opt.Username == "" {
		opt.Username = "admin"
	}
	if opt.Password == "" {
		opt.Password = "admin-password-0123"
	}
	if opt.TokenTTL <= 0 {
		opt.TokenTTL = time.Hour
	}
	if opt.RefreshTTL <= 0 {
		opt.RefreshTTL = 24 * time.Hour
	}
	if opt.RateWindow <= 0 {
		opt.RateWindow = time.Second
	}
	if opt.DefaultLimit <= 0 {
		opt.DefaultLimit = 1000
	}
	s := &Server{
		opt:        opt,
		users:      map[string]*record{},
		access:     map[string]grant{},
		refresh:    map[string]grant{},
		touchAfter: map[string]int{},
		rateLimit:  opt.RateLimit,
		rateWindow: opt.RateWindow,
		now:        time.Now,
	}
	s.SetLatency(opt.Latency)
	return s
}

// Username is the administrator's login.
func (s *Server) Username() string { return s.opt.Username }

// Password is the administrator's password.
func (s *Server) Password() string { return s.opt.Password }

// Users returns copies of every user document, soft-deleted ones included, sorted by
// id.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	us := make([]User, 0, len(s.users))
	for _, id := range slices.Sorted(maps.Keys(s.users)) {
		us = append(us, s.users[id].export())
	}
	return us
}

// User returns a copy of the user document with id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return r.export(), true
}

// AddUser stores u as an administrator (or another application) would have made it,
// without the API's checks but for a free id. Its rev and creation date are set; an
// empty status is ACTIVE. It returns the stored user.
func (s *Server) AddUser(u User) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		return User{}, fmt.Errorf("icuretest: a user needs an id")
	}
	if _, ok := s.users[u.ID]; ok {
		return User{}, fmt.Errorf("icuretest: user %s exists", u.ID)
	}
	r := &record{id: u.ID, created: s.now().UnixMilli(), deletionDate: u.DeletionDate, name: u.Name, login: u.Login,
		email: u.Email, mobilePhone: u.MobilePhone, status: u.Status, patientID: u.PatientID, hcpID: u.HCPartyID,
		passwordHash: u.PasswordHash, extra: maps.Clone(u.Extra)}
	if r.status == "" {
		r.status = statusActive
	}
	s.bump(r)
	s.users[r.id] = r
	return r.export(), nil
}

// Edit changes a user as an administrator editing it by hand would: f gets a copy of
// the user, and what it leaves in it (but the id, rev and creation date) is stored
// under a new rev, without the API's checks. It reports false if there is no such
// user.
func (s *Server) Edit(id string, f func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[id]
	if !ok {
		return false
	}
	u := r.export()
	f(&u)
	r.deletionDate, r.name, r.login, r.email, r.mobilePhone = u.DeletionDate, u.Name, u.Login, u.Email, u.MobilePhone
	r.status, r.patientID, r.hcpID, r.passwordHash, r.extra = u.Status, u.PatientID, u.HCPartyID, u.PasswordHash, u.Extra
	s.bump(r)
	return true
}

// SetPassword sets a user's password, as the user would. It reports false if there is
// no such user.
func (s *Server) SetPassword(id, password string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[id]
	if ok {
		r.passwordHash = hashPassword(password)
		s.bump(r)
	}
	return ok
}

// CheckPassword reports whether password is the user's stored password.
func (s *Server) CheckPassword(id, password string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[id]
	return ok && r.passwordHash != "" && r.passwordHash == hashPassword(password)
}

// Tokens returns the user's authentication tokens by key, expired ones included.
func (s *Server) Tokens(id string) map[string]Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[id]
	if !ok {
		return nil
	}
	return maps.Clone(r.tokens)
}

// Remove soft-deletes the user behind the client's back, as an administrator would:
// it keeps its document, with a deletionDate and a new rev. It reports false if there
// is no such user.
func (s *Server) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[id]
	if ok {
		r.deletionDate = s.now().UnixMilli()
		s.bump(r)
	}
	return ok
}

// Touch changes the user behind the client's back, as another writer would: it sets
// termsOfUseDate and gives the document a new rev, so that a PUT at the old rev is
// answered 409. It reports false if there is no such user.
func (s *Server) Touch(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.touch(id)
}

func (s *Server) touch(id string) bool {
	r, ok := s.users[id]
	if ok {
		if r.extra == nil {
			r.extra = map[string]json.RawMessage{}
		}
		r.extra["termsOfUseDate"] = json.RawMessage(fmt.Sprint(s.now().UnixMilli()))
		s.bump(r)
	}
	return ok
}

// TouchAfterGet makes each of the next n reads of the user by id (GET
// /rest/v2/user/{id}) Touch it once answered: the rev the client read is stale by the
// time it writes.
func (s *Server) TouchAfterGet(id string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touchAfter[id] = n
}

// FailNext makes the next n requests fail with status before they have any effect. A
// 429 or 503 carries Retry-After: 0.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failStatus = n, status
}

// SetRateLimit changes the rate-limit budget: n requests per window; 0 admits all.
func (s *Server) SetRateLimit(n int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit, s.rateWindow, s.windowEnd, s.windowUsed = n, window, time.Time{}, 0
}

// ExpireTokens makes every bearer token issued so far expire; refresh tokens stay
// valid.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

// ExpireSessions makes every bearer and refresh token issued so far expire: a client
// must log in again.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
	clear(s.refresh)
}

// Log returns every request received so far, in order of their answers.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// record is a stored user document.
type record struct {
	id, rev      string
	revN         int
	created      int64
	deletionDate int64
	name         string
	login        string
	email        string
	mobilePhone  string
	status       string
	patientID    string
	hcpID        string
	passwordHash string
	tokens       map[string]Token
	extra        map[string]json.RawMessage
}

func (r *record) export() User {
	return User{ID: r.id, Rev: r.rev, Created: r.created, DeletionDate: r.deletionDate, Name: r.name, Login: r.login,
		Email: r.email, MobilePhone: r.mobilePhone, Status: r.status, PatientID: r.patientID, HCPartyID: r.hcpID,
		PasswordHash: r.passwordHash, Extra: maps.Clone(r.extra)}
}

// bump gives r a new rev, as CouchDB does on every write. s.mu is held.
func (s *Server) bump(r *record) {
	r.revN++
	s.serial++
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", r.id, r.revN, s.serial))
	r.rev = fmt.Sprintf("%d-%s", r.revN, hex.EncodeToString(sum[:16]))
}

func hashPassword(pw string) string {
	sum := sha256.Sum256([]byte("icuretest:" + pw))
	return hex.EncodeToString(sum[:])
}
