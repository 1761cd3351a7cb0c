package domo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
	dsync "github.com/idsync/idsync/sync"
)

const (
	tokenEndpoint = "oauth.token"
	tokenPath     = "/oauth/token?grant_type=client_credentials&scope=user"
)

// token is an OAuth access token and when to get a new one.
type token struct {
	value   string
	renewAt time.Time
}

// renewAt is when a token that lives ttl from now is renewed: a minute before it
// expires, or a tenth of its life before when that is shorter.
func renewAt(now time.Time, ttl time.Duration) time.Time {
	return now.Add(ttl - min(time.Minute, ttl/10))
}

// token returns a token that is not about to expire, and its version for drop. The
// workers share one token and one fetch of it.
func (s *Sink) token(ctx context.Context) (string, int, error) {
	t, gen, err := s.tokens.get(ctx, func(t token) bool { return s.now().Before(t.renewAt) }, s.fetchToken)
	return t.value, gen, err
}

// fetchToken asks for a client-credentials token with the scope user, the client's
// id and secret as HTTP Basic and the parameters in the query, as Domo's docs show it
// (the Python and Java SDKs send the parameters as a form body instead). Its life is
// expires_in, or the JWT's exp when the answer has none.
func (s *Sink) fetchToken(ctx context.Context) (token, error) {
	var answer struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	start := s.now()
	err := s.api.Do(ctx, httpapi.Call{Endpoint: tokenEndpoint, Method: http.MethodPost, Path: tokenPath,
		Auth: func(r *http.Request) { r.SetBasicAuth(s.cfg.ClientID, s.secret.Reveal()) }}, &answer)
	if err != nil {
		return token{}, fmt.Errorf("get a token: %w", err)
	}
	if answer.AccessToken == "" {
		return token{}, fmt.Errorf("get a token: the answer has no access_token: %w", dsync.ErrStopSink)
	}
	ttl := time.Duration(answer.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = jwtLife(answer.AccessToken, start)
	}
	if ttl <= 0 {
		ttl = 5 * time.Minute // neither says: renew often, and on a 401 anyway
	}
	s.log.Debug("got a token", "expires_in", ttl)
	return token{value: answer.AccessToken, renewAt: renewAt(start, ttl)}, nil
}

// jwtLife reads how long a JWT has left from its exp claim; 0 when it cannot tell.
func jwtLife(tok string, now time.Time) time.Duration {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return 0
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp <= 0 {
		return 0
	}
	return time.Unix(int64(claims.Exp), 0).Sub(now)
}

// call sends c with the token. A 401 gets a new token and sends c once more, as the
// Java SDK does; a second 401 is returned, and stops the sink.
func (s *Sink) call(ctx context.Context, c httpapi.Call, out any) error {
	for renewed := false; ; renewed = true {
		tok, gen, err := s.token(ctx)
		if err != nil {
			return err
		}
		c.Auth = func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }
		err = s.api.Do(ctx, c, out)
		var apiErr *APIError
		if renewed || !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
			return err
		}
		s.log.Debug("the token was refused: getting a new one", "endpoint", c.Endpoint)
		s.tokens.drop(gen)
	}
}
