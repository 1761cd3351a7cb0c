package haplo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

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

// retryable reports whether a status is worth another try: Haplo (or a proxy in
// front of it) is overloaded or briefly away.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// Observer receives measurements of the sink's requests; *sync.SinkObserver is one.
type Observer interface {
	Request(endpoint string, d time.Duration)
	Retry(reason string)
}

type noObserver struct{}

func (noObserver) Request(string, time.Duration) {}
func (noObserver) Retry(string)                  {}

// client makes Haplo API calls with the right key, retries and timeouts.
type client struct {
	obs        Observer
	limit      *rate.Limiter // nil: no rate limit
	base       string
	http       *http.Client
	userKey    secret.Secret
	importKey  secret.Secret
	maxRetries int
	log        *slog.Logger
	sleep      func(context.Context, time.Duration) error
}

// call is one request.
type call struct {
	endpoint string // a fixed label, for logs and errors: "user.create"
	method   string
	path     string // with query
	key      secret.Secret
	body     any
	// unsafe marks a request that must not be repeated once Haplo may have received
	// it (a push-data record without a ref or a profile code creates a new profile
	// each time): it is retried only when Haplo certainly did not act (429, 503, a
	// refused connection).
	unsafe bool
}

// do sends c and decodes a 2xx JSON answer into out. Non-2xx answers become *APIError.
func (cl *client) do(ctx context.Context, c call, out any) error {
	var payload []byte
	if c.body != nil {
		var err error
		if payload, err = json.Marshal(c.body); err != nil {
			return fmt.Errorf("%s: encode: %w", c.endpoint, err)
		}
	}
	for attempt := 0; ; attempt++ {
		status, body, header, err := cl.once(ctx, c, payload)
		if err == nil && status/100 == 2 {
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("%s: decode answer: %w", c.endpoint, err)
			}
			return nil
		}
		if err == nil {
			err = apiError(c.endpoint, status, header, body)
		}
		retry, wait := cl.shouldRetry(c, status, header, err, attempt)
		if !retry {
			return err
		}
		cl.obs.Retry(retryReason(status))
		cl.log.Debug("retrying", "endpoint", c.endpoint, "attempt", attempt+1, "wait", wait, "err", err)
		if serr := cl.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (gave up waiting to retry: %w)", err, serr)
		}
	}
}

func (cl *client) once(ctx context.Context, c call, payload []byte) (int, []byte, http.Header, error) {
	if cl.limit != nil {
		if err := cl.limit.Wait(ctx); err != nil {
			return 0, nil, nil, fmt.Errorf("%s: rate limit: %w", c.endpoint, err)
		}
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, cl.base+c.path, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", c.endpoint, err)
	}
	req.SetBasicAuth("haplo", c.key.Reveal())
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := cl.http.Do(req)
	defer func() { cl.obs.Request(c.endpoint, time.Since(start)) }()
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: read answer: %w", c.endpoint, err)
	}
	return resp.StatusCode, body, resp.Header, nil
}

// shouldRetry decides on one failed attempt, and how long to wait.
func (cl *client) shouldRetry(c call, status int, header http.Header, err error, attempt int) (bool, time.Duration) {
	if attempt >= cl.maxRetries {
		return false, 0
	}
	var safe bool
	switch {
	case status == 0: // no answer; a cancelled ctx also ends the wait before a retry
		safe = !c.unsafe || notSent(err)
	case retryable(status):
		safe = !c.unsafe || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
	}
	if !safe {
		return false, 0
	}
	if d, ok := retryAfter(header, time.Now()); ok {
		return true, min(d, 5*time.Minute)
	}
	return true, backoff(attempt)
}

// retryReason names why a request is retried, for the metric.
func retryReason(status int) string {
	switch {
	case status == 0:
		return "network"
	case status == http.StatusTooManyRequests:
		return "status_429"
	}
	return "status_5xx"
}

// backoff is exponential from 200ms, capped at 10s, with full jitter over its upper
// half so that many workers do not retry in step.
func backoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << min(attempt, 6)
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// notSent reports whether a transport error happened before the request could reach
// Haplo: the connection was never made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
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
	e.Message = strings.TrimSpace(string(body))
	if len(e.Message) > 300 {
		e.Message = e.Message[:300] + "..."
	}
	return e
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
