package domotest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// handleToken is the OAuth client-credentials endpoint: GET or POST, the parameters in
// the query or a form body, the client's id and secret as HTTP Basic.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.opt.ClientID || secret != s.opt.ClientSecret {
		s.writeError(w, r, http.StatusUnauthorized, "Bad credentials")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeError(w, r, http.StatusBadRequest, "Could not read the request parameters")
		return
	}
	if gt := r.Form.Get("grant_type"); gt != "client_credentials" {
		s.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Unsupported grant type: %s", gt))
		return
	}
	scopes := strings.FieldsFunc(r.Form.Get("scope"), func(c rune) bool { return c == ' ' || c == ',' })
	if len(scopes) == 0 {
		scopes = s.opt.Scopes // the Python SDK: no scope means every scope granted
	}
	for _, sc := range scopes {
		if !slices.Contains(s.opt.Scopes, sc) {
			s.writeError(w, r, http.StatusUnauthorized, "Invalid scope: "+sc)
			return
		}
	}
	if !slices.Contains(scopes, "user") {
		s.writeError(w, r, http.StatusUnauthorized, "The scope user is required")
		return
	}
	now := s.opt.Now()
	exp := now.Add(s.opt.TokenTTL)
	s.tokenFetches++
	jti := fmt.Sprintf("domotest-%d", s.tokenFetches)
	tok := jwt(map[string]any{"exp": exp.Unix(), "iat": now.Unix(), "jti": jti, "scope": scopes, "client_id": id})
	s.tokens[tok] = exp
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "bearer", "expires_in": int64(s.opt.TokenTTL.Seconds()),
		"scope": strings.Join(scopes, " "), "customer": "domotest", "jti": jti, "role": "Admin", "userId": 1,
	})
}

// jwt makes a token shaped like Domo's: a JWT whose signature is random.
func jwt(claims map[string]any) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte(rand.Text()))
}

// authenticate checks a /v1 request's bearer token and Accept header, and answers the
// request when it fails. s.mu is held.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	exp, known := s.tokens[tok]
	switch {
	case !strings.EqualFold(scheme, "bearer") || tok == "":
		s.unauthorized++
		s.writeError(w, r, http.StatusUnauthorized, "Full authentication is required to access this resource")
		return false
	case !known || !s.opt.Now().Before(exp) || s.refuseTokens:
		s.unauthorized++
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		s.writeError(w, r, http.StatusUnauthorized, "Invalid access token")
		return false
	case !acceptsJSON(r.Header.Get("Accept")):
		s.writeError(w, r, http.StatusNotAcceptable, "Could not find acceptable representation")
		return false
	}
	return true
}

// acceptsJSON reports whether an Accept header allows application/json.
func acceptsJSON(accept string) bool {
	if accept == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && (mt == "application/json" || mt == "application/*" || mt == "*/*") {
			return true
		}
	}
	return false
}

// errorBody is Domo's error answer.
type errorBody struct {
	Status       int    `json:"status"`
	StatusReason string `json:"statusReason"`
	Message      string `json:"message"`
	Path         string `json:"path"`
	Toe          string `json:"toe"`
}

// writeError answers with Domo's error body. s.mu is held.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, message string) {
	s.nextToe++
	writeJSON(w, status, errorBody{Status: status, StatusReason: http.StatusText(status), Message: message,
		Path: r.URL.Path, Toe: fmt.Sprintf("DOMOTEST-%08X", s.nextToe)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
