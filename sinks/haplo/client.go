package haplo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

// APIError is an error answer from Haplo: its status, and the kind and message of its
// JSON envelope (or the text of a non-JSON body).
type APIError struct {
	Endpoint string
	Status   int
	Kind     string
	Message  string
}

func (e *APIError) Error() string {
	if e.Kind == "" {
		return fmt.Sprintf("%s: HTTP %d: %s", e.Endpoint, e.Status, e.Message)
	}
	return fmt.Sprintf("%s: HTTP %d %s: %s", e.Endpoint, e.Status, e.Kind, e.Message)
}

// Is maps Haplo's kinds to the engine's sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case dsync.ErrNotFound:
		return e.Kind == "haplo:api-v0:user:no-such-user" || e.Kind == "haplo:api-v0:user:no-user-found"
	case dsync.ErrExists:
		// Haplo gives one kind, creation-failed, for a taken email or username and for
		// a bad ref: only the message tells them apart.
		return (e.Kind == "haplo:api-v0:user:creation-failed" || e.Kind == "haplo:api-v0:user:update-failed") &&
			strings.Contains(e.Message, "already exists")
	case dsync.ErrStopSink:
		switch e.Kind {
		case "INVALID-API-KEY", "UNAUTHORISED", "THROTTLE", "haplo:api-v0:generic:not-permitted":
			return true
		}
		return e.Status == http.StatusUnauthorized
	}
	return false
}

// client makes Haplo API calls: the shared retrying client, with Haplo's two keys as
// the Authorization headers that carry them, made once rather than for every request.
type client struct {
	api        *httpapi.Client
	userAuth   secret.Secret
	importAuth secret.Secret
}

// basicAuth is the Authorization header of a Haplo API key: HTTP Basic, user "haplo".
func basicAuth(key secret.Secret) secret.Secret {
	return secret.New("Basic " + base64.StdEncoding.EncodeToString([]byte("haplo:"+key.Reveal())))
}

// call is one request, authenticated with auth (client.userAuth or importAuth).
type call struct {
	endpoint string // a fixed label, for logs and errors: "user.create"
	method   string
	path     string // with query
	auth     secret.Secret
	body     any
	// unsafe marks a request that must not be repeated once Haplo may have received
	// it (a push-data record without a ref or a profile code creates a new profile
	// each time): it is retried only when Haplo certainly did not act.
	unsafe bool
}

// do sends c and decodes a 2xx JSON answer into out. Non-2xx answers become *APIError.
func (cl *client) do(ctx context.Context, c call, out any) error {
	auth := c.auth
	return cl.api.Do(ctx, httpapi.Call{
		Endpoint: c.endpoint, Method: c.method, Path: c.path, Body: c.body, Unsafe: c.unsafe,
		// Haplo never sends WWW-Authenticate: credentials go with every request.
		// (httpapi sets Accept: application/json.)
		Auth: func(r *http.Request) { r.Header["Authorization"] = []string{auth.Reveal()} },
	}, out)
}

// apiError builds the error for a non-2xx answer. Haplo answers JSON envelopes
// {success, kind, error:{message}} and push-data results {result, errors}, but also
// text/plain "Bad request (failed validation)" when a path element or parameter fails
// to decode.
func apiError(endpoint string, status int, header http.Header, body []byte) error {
	e := &APIError{Endpoint: endpoint, Status: status}
	var env struct {
		Kind  string `json:"kind"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Result string   `json:"result"`
		Errors []string `json:"errors"`
	}
	if strings.Contains(header.Get("Content-Type"), "json") && json.Unmarshal(body, &env) == nil {
		e.Kind, e.Message = env.Kind, env.Error.Message
		if env.Result != "" {
			e.Kind, e.Message = "push-data:"+env.Result, strings.Join(env.Errors, "; ")
		}
		return e
	}
	e.Message = httpapi.Excerpt(body)
	return e
}
