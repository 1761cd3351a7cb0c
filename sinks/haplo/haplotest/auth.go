package haplotest

import (
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"time"
)

const (
	minKeyLength   = 16                // shorter keys are never looked up
	throttleLimit  = 50                // failed key look-ups from one IP ...
	throttleWindow = 300 * time.Second // ... within this window suspend API use
)

// caller is who a request runs as. A request whose Authorization header is
// absent or not "Basic haplo:<key>" runs as the anonymous user.
type caller struct {
	userAPI   bool // the users API service user, member of haplo:group:api-v0:user-api
	importAPI bool // the push-data service user, member of haplo:group:data-import-api:service
}

// authFailure is a platform-level rejection of an API key.
type authFailure struct{ kind, message string }

var (
	errInvalidKey = &authFailure{"INVALID-API-KEY", "Bad API Key"}
	errThrottled  = &authFailure{"THROTTLE", "Too many failed API authentication attempts, API usage suspended. Pause requests to wait until restriction lifted."}
)

// authenticate checks the request's API key as the platform does. s.mu is held.
func (s *Server) authenticate(r *http.Request) (*caller, *authFailure) {
	key, ok := basicKey(r.Header.Get("Authorization"))
	if !ok {
		return &caller{}, nil
	}
	var path string
	c := &caller{}
	switch key {
	case s.opt.UserAPIKey:
		path, c.userAPI = userAPIPrefix, true
	case s.opt.ImportAPIKey:
		path, c.importAPI = "="+pushDataPrefix+"/"+s.opt.ImportName, true
	}
	if len(key) >= minKeyLength {
		ip := clientIP(r)
		if s.throttled(ip) {
			return nil, errThrottled
		}
		if path == "" {
			s.keyFailures[ip] = append(s.keyFailures[ip], s.now())
		}
	}
	if path == "" || !keyPathAllows(path, requestURI(r)) {
		return nil, errInvalidKey
	}
	return c, nil
}

// basicKey returns the key from "Basic base64(haplo:<key>)". Any other
// header, including another user name, is ignored by the platform.
func basicKey(header string) (string, bool) {
	enc, ok := strings.CutPrefix(header, "Basic ")
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return strings.CutPrefix(string(b), "haplo:")
}

// keyPathAllows applies a key's path restriction: a prefix of the request
// URI, or with a leading "=" the whole request URI, query string included.
func keyPathAllows(keyPath, uri string) bool {
	if exact, ok := strings.CutPrefix(keyPath, "="); ok {
		return uri == exact
	}
	return strings.HasPrefix(uri, keyPath)
}

func requestURI(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttled reports whether ip has had throttleLimit or more failed key
// look-ups within throttleWindow. s.mu is held.
func (s *Server) throttled(ip string) bool {
	cutoff := s.now().Add(-throttleWindow)
	recent := s.keyFailures[ip][:0]
	for _, t := range s.keyFailures[ip] {
		if t.After(cutoff) {
			recent = append(recent, t)
		}
	}
	s.keyFailures[ip] = recent
	return len(recent) >= throttleLimit
}
