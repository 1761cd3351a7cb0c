package icuretest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	statusActive      = "ACTIVE"
	statusDisabled    = "DISABLED"
	statusRegistering = "REGISTERING"

	userPrefix = "/rest/v2/user"
)

// principal is who a request runs as.
type principal struct {
	admin bool
	user  string // the user's id, when not the administrator
}

type handler func(s *Server, w http.ResponseWriter, r *http.Request, who principal, args []string)

// route is one endpoint: the label Requests counts it under, whether it needs
// credentials, and its handler (nil for none: 404).
type route struct {
	label  string
	public bool
	handle handler
}

// routeFor finds the endpoint of a request; args are the path elements after the
// endpoint's own, unescaped. Literal paths (current, byEmail, undelete...) win over
// /{id}, as in Spring.
func routeFor(r *http.Request) (route, []string) {
	path := r.URL.EscapedPath()
	switch {
	case path == "/rest/v2/auth/login" && r.Method == http.MethodPost:
		return route{"auth.login", true, (*Server).handleLogin}, nil
	case path == "/rest/v2/auth/refresh" && r.Method == http.MethodPost:
		return route{"auth.refresh", true, (*Server).handleRefresh}, nil
	case path != userPrefix && !strings.HasPrefix(path, userPrefix+"/"):
		return route{label: "other"}, nil
	}
	elems, ok := segments(strings.TrimPrefix(path, userPrefix))
	if !ok {
		return route{label: "other"}, nil
	}
	switch m, n := r.Method, len(elems); {
	case n == 0 && m == http.MethodGet:
		return route{"user.list", false, (*Server).handleList}, nil
	case n == 0 && m == http.MethodPost:
		return route{"user.create", false, (*Server).handleCreate}, nil
	case n == 0 && m == http.MethodPut:
		return route{"user.modify", false, (*Server).handleModify}, nil
	case n == 1 && elems[0] == "current" && m == http.MethodGet:
		return route{"user.current", false, (*Server).handleCurrent}, nil
	case n == 2 && elems[0] == "byEmail" && m == http.MethodGet:
		return route{"user.by_email", false, (*Server).handleByEmail}, elems[1:]
	case n == 2 && elems[0] == "undelete" && m == http.MethodPost:
		return route{"user.undelete", false, (*Server).handleUndelete}, elems[1:]
	case n == 2 && elems[0] == "purge" && m == http.MethodDelete:
		return route{"user.purge", false, (*Server).handlePurge}, elems[1:]
	case n == 3 && elems[0] == "token" && m == http.MethodPost:
		return route{"user.token", false, (*Server).handleToken}, elems[1:]
	case n == 1 && m == http.MethodGet:
		return route{"user.get", false, (*Server).handleGet}, elems
	case n == 1 && m == http.MethodDelete:
		return route{"user.delete", false, (*Server).handleDelete}, elems
	}
	return route{label: "other"}, nil
}

// segments splits "/a/b%2Fc" into its unescaped elements; an empty element is not
// a route.
func segments(rest string) ([]string, bool) {
	if rest == "" {
		return nil, true
	}
	var elems []string
	for _, e := range strings.Split(strings.TrimPrefix(rest, "/"), "/") {
		v, err := url.PathUnescape(e)
		if err != nil || v == "" {
			return nil, false
		}
		elems = append(elems, v)
	}
	return elems, true
}

// statusWriter remembers the status of the answer, for the log.
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

// Handler returns the server's HTTP handler, for a server of one's own.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rt, args := routeFor(r)
	if !s.Arrive(r, rt.label) {
		return
	}

	sw := &statusWriter{ResponseWriter: w}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		s.log = append(s.log, Request{Endpoint: rt.label, Method: r.Method, Path: r.URL.RequestURI(), Status: sw.status})
	}()
	if s.injectFault(sw) || s.throttle(sw) {
		return
	}
	var who principal
	if !rt.public {
		var ok bool
		if who, ok = s.authenticate(r); !ok {
			writeMessage(sw, http.StatusUnauthorized, "Unauthorized: missing, invalid or expired credentials")
			return
		}
	}
	if rt.handle == nil {
		writeSpringError(sw, r, http.StatusNotFound)
		return
	}
	rt.handle(s, sw, r, who, args)
}

// injectFault answers with the status FailNext asked for, if one is due. s.mu is held.
func (s *Server) injectFault(w http.ResponseWriter) bool {
	if s.failNext <= 0 {
		return false
	}
	s.failNext--
	if s.failStatus == http.StatusTooManyRequests || s.failStatus == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "0")
	}
	writeMessage(w, s.failStatus, fmt.Sprintf("icuretest: injected %d %s", s.failStatus, http.StatusText(s.failStatus)))
	return true
}

// throttle spends one request of the window's budget, or answers 429 with the
// seconds left in the window. s.mu is held.
func (s *Server) throttle(w http.ResponseWriter) bool {
	if s.rateLimit <= 0 {
		return false
	}
	now := s.now()
	if !now.Before(s.windowEnd) {
		s.windowEnd, s.windowUsed = now.Add(s.rateWindow), 0
	}
	if s.windowUsed < s.rateLimit {
		s.windowUsed++
		return false
	}
	wait := max(int(math.Ceil(s.windowEnd.Sub(now).Seconds())), 1)
	w.Header().Set("Retry-After", strconv.Itoa(wait))
	// kraken's TooManyRequestsException, through its error handler.
	writeMessage(w, http.StatusTooManyRequests, "Too many requests")
	return true
}

// authenticate checks a request's credentials. s.mu is held.
func (s *Server) authenticate(r *http.Request) (principal, bool) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		g, ok := s.access[tok]
		if !ok || !s.now().Before(g.expires) {
			return principal{}, false
		}
		return s.holder(g.user)
	}
	login, pw, ok := r.BasicAuth()
	if !ok {
		return principal{}, false
	}
	return s.credentials(login, pw)
}

// credentials checks a login and a password: the administrator's, or a user's login
// with its password or one of its authentication tokens. Users who are not ACTIVE or
// are deleted cannot authenticate. s.mu is held.
func (s *Server) credentials(login, pw string) (principal, bool) {
	if login == s.opt.Username && pw == s.opt.Password {
		return principal{admin: true}, true
	}
	now := s.now()
	for _, u := range s.users {
		if u.login != login || u.deletionDate != 0 || u.status != statusActive {
			continue
		}
		if u.passwordHash != "" && u.passwordHash == hashPassword(pw) {
			return principal{user: u.id}, true
		}
		for _, t := range u.tokens {
			if t.Value == pw && now.Before(t.Expires) {
				return principal{user: u.id}, true
			}
		}
	}
	return principal{}, false
}

// holder is who a bearer or refresh token was issued to, if they may still
// authenticate. s.mu is held.
func (s *Server) holder(userID string) (principal, bool) {
	if userID == "" {
		return principal{admin: true}, true
	}
	u, ok := s.users[userID]
	if !ok || u.deletionDate != 0 || u.status != statusActive {
		return principal{}, false
	}
	return principal{user: userID}, true
}

// handleLogin is POST /rest/v2/auth/login {"username", "password"}.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	var creds struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
	}
	if err := json.NewDecoder(r.Body).Decode(&creds); err != nil {
		writeMessage(w, http.StatusBadRequest, "Failed to read HTTP message")
		return
	}
	if creds.Username == nil || creds.Password == nil {
		// LoginController's !! on a missing field ends in its catch-all: 401.
		writeSpringError(w, r, http.StatusUnauthorized)
		return
	}
	who, ok := s.credentials(*creds.Username, *creds.Password)
	if !ok {
		writeSpringError(w, r, http.StatusUnauthorized)
		return
	}
	tok, ref := rand.Text(), rand.Text()
	now := s.now()
	s.access[tok] = grant{user: who.user, expires: now.Add(s.opt.TokenTTL)}
	s.refresh[ref] = grant{user: who.user, expires: now.Add(s.opt.RefreshTTL)}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "refreshToken": ref, "successful": true})
}

// handleRefresh is POST /rest/v2/auth/refresh with the refresh token in the
// Refresh-Token header (a "Bearer " prefix is dropped). It answers a new token, and no
// new refresh token.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	ref := strings.TrimPrefix(r.Header.Get("Refresh-Token"), "Bearer ")
	if ref == "" {
		writeMessage(w, http.StatusBadRequest, "Required header 'Refresh-Token' is not present.")
		return
	}
	g, ok := s.refresh[ref]
	if ok && s.now().Before(g.expires) {
		if _, ok := s.holder(g.user); ok {
			tok := rand.Text()
			s.access[tok] = grant{user: g.user, expires: s.now().Add(s.opt.TokenTTL)}
			writeJSON(w, http.StatusOK, map[string]any{"token": tok, "successful": true})
			return
		}
	}
	writeMessage(w, http.StatusUnauthorized, "Invalid or expired refresh token")
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"icuretest: cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeMessage writes kraken's error body, {"message": "..."}.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

// writeSpringError writes the body Spring renders for a ResponseStatusException,
// which the controllers throw for get by id or email and a refused login: no
// "message".
func writeSpringError(w http.ResponseWriter, r *http.Request, status int) {
	writeJSON(w, status, map[string]any{
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "path": r.URL.Path, "status": status,
		"error": http.StatusText(status), "requestId": rand.Text()[:8],
	})
}
