package icure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

// APIError is an error answer from iCure: its status and the message of its body,
// {"message": "..."}, or of the body Spring renders itself for some 404s and 401s.
type APIError struct {
	Endpoint string
	Status   int
	Message  string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: HTTP %d", e.Endpoint, e.Status)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Endpoint, e.Status, e.Message)
}

// duplicateMessage matches DuplicateUserException's "A user with Email <v> already
// exists" (the field word is Login, Email or Phone), and the older "User with email <v>
// already exists".
var duplicateMessage = regexp.MustCompile(`(?i)^(?:a )?user with (login|email|phone) .* already exists`)

// Duplicate reports whether the answer says another user holds a unique value, and
// which: "login", "email" or "phone". iCure answers it with 400, like a validation
// error; only the message tells them apart.
func (e *APIError) Duplicate() (field string, ok bool) {
	if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict {
		return "", false
	}
	m := duplicateMessage.FindStringSubmatch(strings.TrimSpace(e.Message))
	if m == nil {
		return "", false
	}
	return strings.ToLower(m[1]), true
}

// Is maps iCure's answers to the engine's sentinels. A 402 (quota exceeded) stops the
// sink like refused credentials: nothing more can be created until someone acts.
func (e *APIError) Is(target error) bool {
	switch target {
	case dsync.ErrNotFound:
		return e.Status == http.StatusNotFound
	case dsync.ErrExists:
		_, dup := e.Duplicate()
		return dup
	case dsync.ErrStopSink:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Status == http.StatusPaymentRequired
	}
	return false
}

// hasStatus reports whether err is an answer with status.
func hasStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

// staleRev reports a 409 that is not a duplicate: the rev sent is no longer the
// document's (or, for a create, the id is taken).
func staleRev(err error) bool {
	var e *APIError
	if !errors.As(err, &e) || e.Status != http.StatusConflict {
		return false
	}
	_, dup := e.Duplicate()
	return !dup
}

func apiError(endpoint string, status int, _ http.Header, body []byte) error {
	e := &APIError{Endpoint: endpoint, Status: status}
	var env struct {
		Message string `json:"message"`
		Error   string `json:"error"` // Spring's own error body
	}
	if json.Unmarshal(body, &env) == nil {
		e.Message = env.Message
		if e.Message == "" {
			e.Message = env.Error
		}
	} else {
		e.Message = httpapi.Excerpt(body)
	}
	return e
}

// session holds the credentials idsync sends, and in token mode the JWT that every
// worker shares: one login for them all, and one refresh when it expires.
type session struct {
	api      *httpapi.Client
	username string
	password secret.Secret
	bearer   bool
	log      *slog.Logger

	lock chan struct{} // held by the one worker that logs in or refreshes

	mu      sync.Mutex
	gen     int // counts the tokens obtained, so that a worker renews only the one it saw fail
	token   secret.Secret
	refresh secret.Secret
}

// jwt is the answer of the login and refresh endpoints.
type jwt struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refreshToken"`
	Successful   bool   `json:"successful"`
}

// basic sets HTTP basic credentials.
func (a *session) basic(r *http.Request) { r.SetBasicAuth(a.username, a.password.Reveal()) }

// current returns the token to send and its generation, logging in first if there is
// none yet.
func (a *session) current(ctx context.Context) (secret.Secret, int, error) {
	a.mu.Lock()
	tok, gen := a.token, a.gen
	a.mu.Unlock()
	if !tok.Empty() {
		return tok, gen, nil
	}
	return a.renew(ctx, gen)
}

// renew replaces the token of generation gen, which iCure refused (or which does not
// exist yet): with the refresh token if there is one, else, or if that fails, by
// logging in again. When another worker has already replaced it, renew returns the
// newer token.
func (a *session) renew(ctx context.Context, gen int) (secret.Secret, int, error) {
	select {
	case a.lock <- struct{}{}:
	case <-ctx.Done():
		return secret.Secret{}, 0, ctx.Err()
	}
	defer func() { <-a.lock }()
	a.mu.Lock()
	tok, cur, refresh := a.token, a.gen, a.refresh
	a.mu.Unlock()
	if cur != gen && !tok.Empty() {
		return tok, cur, nil
	}
	var (
		got jwt
		err error
	)
	if !refresh.Empty() {
		// iCure's refresh takes the refresh token in a Refresh-Token header (kraken-common
		// LoginController) and answers {"successful", "token"}.
		err = a.api.Do(ctx, httpapi.Call{Endpoint: "auth.refresh", Method: http.MethodPost, Path: "/rest/v2/auth/refresh",
			Header: map[string]string{"Refresh-Token": refresh.Reveal()}}, &got)
		if ctx.Err() != nil {
			return secret.Secret{}, 0, err
		}
		if err != nil || got.Token == "" {
			a.log.Debug("the token could not be refreshed: logging in again", "err", err)
		}
	}
	if refresh.Empty() || err != nil || got.Token == "" {
		got = jwt{}
		err = a.api.Do(ctx, httpapi.Call{Endpoint: "auth.login", Method: http.MethodPost, Path: "/rest/v2/auth/login",
			Body: map[string]string{"username": a.username, "password": a.password.Reveal()}}, &got)
		if err != nil {
			return secret.Secret{}, 0, fmt.Errorf("log in as %q: %w", a.username, err)
		}
		if !got.Successful || got.Token == "" {
			return secret.Secret{}, 0, fmt.Errorf("log in as %q: iCure answered without a token: %w", a.username, dsync.ErrStopSink)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	a.token = secret.New(got.Token)
	if got.RefreshToken != "" {
		a.refresh = secret.New(got.RefreshToken)
	}
	return a.token, a.gen, nil
}

// do sends c with the session's credentials and decodes a 2xx answer into out. In
// token mode, a 401 makes it renew the token once and send c again; a second 401 is
// returned, and stops the sink.
func (a *session) do(ctx context.Context, c httpapi.Call, out any) error {
	if !a.bearer {
		c.Auth = a.basic
		return a.api.Do(ctx, c, out)
	}
	for renewed := false; ; renewed = true {
		tok, gen, err := a.current(ctx)
		if err != nil {
			return err
		}
		c.Auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok.Reveal()) }
		err = a.api.Do(ctx, c, out)
		if renewed || !hasStatus(err, http.StatusUnauthorized) {
			return err
		}
		if _, _, err := a.renew(ctx, gen); err != nil {
			return err
		}
	}
}
