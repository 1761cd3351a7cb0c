package haplotest

import (
	"net/http"
	"net/http/httptest"
	"strings"
)

// route is one endpoint: the label Requests counts it under, and its handler.
type route struct {
	label  string
	handle func(s *Server, w http.ResponseWriter, r *http.Request, c *caller, args []string)
}

const (
	userAPIPrefix  = "/api/v0-user/"
	pushDataPrefix = "/api/push-data"
)

// routeFor finds the endpoint for a request; args are the path elements after
// the endpoint's own path.
func routeFor(r *http.Request) (route, []string, bool) {
	path := r.URL.Path
	var args []string
	switch {
	case path == pushDataPrefix || strings.HasPrefix(path, pushDataPrefix+"/"):
		args = splitElements(strings.TrimPrefix(path, pushDataPrefix))
		switch r.Method {
		case http.MethodPost:
			return route{"push-data", (*Server).handlePushData}, args, true
		case http.MethodGet:
			return route{"push-data", (*Server).handlePushDataGet}, args, true
		}
	case strings.HasPrefix(path, userAPIPrefix):
		elems := splitElements(strings.TrimPrefix(path, userAPIPrefix))
		if len(elems) == 0 {
			break
		}
		args = elems[1:]
		switch r.Method + " " + elems[0] {
		case "GET id":
			return route{"user.get", (*Server).handleGetUser}, args, true
		case "POST id":
			return route{"user.update", (*Server).handleUpdateUser}, args, true
		case "POST create":
			return route{"user.create", (*Server).handleCreateUser}, args, true
		case "POST enable":
			return route{"user.enable", (*Server).handleEnableUser}, args, true
		case "GET find-by-tag":
			return route{"user.find-by-tag", (*Server).handleFindByTag}, args, true
		case "GET group":
			return route{"user.group", (*Server).handleGetGroup}, args, true
		}
	}
	return route{label: "other"}, nil, false
}

// splitElements splits the rest of a path into its elements, as the platform
// hands them to a plugin: empty elements (from "//" or a trailing "/") are dropped.
func splitElements(rest string) []string {
	var elems []string
	for _, e := range strings.Split(rest, "/") {
		if e != "" {
			elems = append(elems, e)
		}
	}
	return elems
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rt, args, found := routeFor(r)

	if !s.Arrive(r, rt.label) {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if s.injectFault(w) {
		return
	}
	if s.loseResponse(rt.label) {
		// Apply the request, then drop the connection without answering.
		s.serveLocked(httptest.NewRecorder(), r, rt, args, found)
		abortResponse(w)
		return
	}
	s.serveLocked(w, r, rt, args, found)
}

func (s *Server) serveLocked(w http.ResponseWriter, r *http.Request, rt route, args []string, found bool) {
	c, fail := s.authenticate(r)
	if fail != nil {
		writeJSON(w, http.StatusForbidden, envelopeError{Kind: fail.kind, Error: errorMessage{fail.message}}, "")
		return
	}
	if !found {
		writeText(w, http.StatusNotFound, "Not found")
		return
	}
	rt.handle(s, w, r, c, args)
}

// badRequest is the platform's answer when a plugin endpoint's declared
// arguments fail to decode.
func badRequest(w http.ResponseWriter) {
	writeText(w, http.StatusBadRequest, "Bad request (failed validation)")
}
