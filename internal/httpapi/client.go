// Package httpapi makes JSON calls to applications' HTTP APIs for idsync's sinks:
// retries with backoff and jitter on network errors, 5xx and 429 (Retry-After
// honoured), never on other 4xx; a rate limit; timeouts from the http.Client; and a
// measurement of every request and retry.
package httpapi

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
	"net/url"
	"strconv"
	"strings"
	gosync "sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// Observer receives measurements of requests; *sync.SinkObserver is one.
type Observer interface {
	Request(endpoint string, d time.Duration)
	Retry(reason string)
}

type noObserver struct{}

func (noObserver) Request(string, time.Duration) {}
func (noObserver) Retry(string)                  {}

// Client calls one application's API.
type Client struct {
	Base       string       // the URL paths are relative to, without a trailing slash
	HTTP       *http.Client // with a Timeout
	Limit      *rate.Limiter
	MaxRetries int
	Obs        Observer
	Log        *slog.Logger
	// Error builds the error for a non-2xx answer, in the application's terms. body is
	// valid only during the call: the error must keep copies (strings), not body.
	Error func(endpoint string, status int, header http.Header, body []byte) error
	// Sleep waits before a retry; tests replace it.
	Sleep func(context.Context, time.Duration) error

	// bodies holds the buffers answers are read into (set by New). An answer is done
	// with when Do returns: json.Unmarshal copies what it keeps (json.RawMessage
	// included), and so do the sinks' Error functions.
	bodies *gosync.Pool
}

// New returns a client with the defaults filled in: no observer, context sleeps.
func New(c Client) *Client {
	if c.Obs == nil {
		c.Obs = noObserver{}
	}
	if c.Sleep == nil {
		c.Sleep = sleepCtx
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.bodies = &gosync.Pool{New: func() any { return new(bytes.Buffer) }}
	return &c
}

// NewHTTPClient returns an http.Client with a timeout per request and an idle
// connection kept for each of conns workers: the default keeps 2 per host, and every
// other request would pay for a new connection and TLS handshake.
func NewHTTPClient(timeout time.Duration, conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	return &http.Client{Timeout: timeout, Transport: tr}
}

// Call is one request.
type Call struct {
	Endpoint    string // a fixed label, for logs, errors and metrics: "user.create"
	Method      string
	Path        string // with the query
	Body        any    // encoded as JSON; nil for none
	ContentType string // of the body; application/json when empty
	// Auth sets the request's credentials.
	Auth func(*http.Request)
	// Header holds more request headers (If-Match, say).
	Header map[string]string
	// Unsafe marks a request that must not be repeated once the application may have
	// received it (it would create a second object): it is retried only when the
	// application certainly did not act (429, 503, a refused connection).
	Unsafe bool
}

// Do sends c and decodes a 2xx JSON answer into out (if not nil; a *[]byte gets the
// answer's bytes undecoded). A non-2xx answer becomes the error Client.Error builds.
func (cl *Client) Do(ctx context.Context, c Call, out any) error {
	var payload []byte
	if c.Body != nil {
		var err error
		if payload, err = json.Marshal(c.Body); err != nil {
			return fmt.Errorf("%s: encode: %w", c.Endpoint, err)
		}
	}
	buf := cl.bodies.Get().(*bytes.Buffer)
	defer cl.putBody(buf)
	for attempt := 0; ; attempt++ {
		status, body, header, err := cl.once(ctx, c, payload, buf)
		if err == nil && status/100 == 2 {
			if out == nil || len(bytes.TrimSpace(body)) == 0 {
				return nil
			}
			if raw, ok := out.(*[]byte); ok { // the answer as it came
				*raw = bytes.Clone(body)
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("%s: decode answer: %w", c.Endpoint, err)
			}
			return nil
		}
		if err == nil {
			err = cl.Error(c.Endpoint, status, header, body)
		}
		retry, wait := cl.shouldRetry(c, status, header, err, attempt)
		if !retry {
			return err
		}
		cl.Obs.Retry(retryReason(status))
		cl.Log.Debug("retrying", "endpoint", c.Endpoint, "attempt", attempt+1, "wait", wait, "err", err)
		if serr := cl.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (gave up waiting to retry: %w)", err, serr)
		}
	}
}

// putBody returns buf to the pool, unless an unusually large answer grew it.
func (cl *Client) putBody(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		buf.Reset()
		cl.bodies.Put(buf)
	}
}

// Header values set on every request, shared: net/http only reads them.
var (
	acceptJSON      = []string{"application/json"}
	contentTypeJSON = []string{"application/json"}
)

// once makes one attempt. The answer's body is read into buf, and is valid until buf
// is used again.
func (cl *Client) once(ctx context.Context, c Call, payload []byte, buf *bytes.Buffer) (int, []byte, http.Header, error) {
	if cl.Limit != nil {
		if err := cl.Limit.Wait(ctx); err != nil {
			return 0, nil, nil, fmt.Errorf("%s: rate limit: %w", c.Endpoint, err)
		}
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, cl.Base+c.Path, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", c.Endpoint, err)
	}
	req.Header["Accept"] = acceptJSON // unless Auth or Header say otherwise
	if c.Auth != nil {
		c.Auth(req)
	}
	for k, v := range c.Header {
		req.Header.Set(k, v)
	}
	if payload != nil {
		if c.ContentType == "" {
			req.Header["Content-Type"] = contentTypeJSON
		} else {
			req.Header["Content-Type"] = []string{c.ContentType}
		}
	}
	start := time.Now()
	resp, err := cl.HTTP.Do(req)
	defer func() { cl.Obs.Request(c.Endpoint, time.Since(start)) }()
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", c.Endpoint, err)
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, 16<<20)); err != nil {
		return 0, nil, nil, fmt.Errorf("%s: read answer: %w", c.Endpoint, err)
	}
	return resp.StatusCode, buf.Bytes(), resp.Header, nil
}

// shouldRetry decides on one failed attempt, and how long to wait.
func (cl *Client) shouldRetry(c Call, status int, header http.Header, err error, attempt int) (bool, time.Duration) {
	if attempt >= cl.MaxRetries {
		return false, 0
	}
	var safe bool
	switch {
	case status == 0: // no answer; a cancelled ctx also ends the wait before a retry
		safe = !c.Unsafe || notSent(err)
	case Retryable(status):
		safe = !c.Unsafe || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
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
// the application: the connection was never made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Retryable reports whether a status is worth another try: the application (or a
// proxy in front of it) is overloaded or briefly away.
func Retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
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

// ParseURL checks an API's base URL: http or https with a host, and plain http only on
// loopback or where allowInsecure says so (credentials travel with every request).
func ParseURL(raw string, allowInsecure bool) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%q is not an http(s) URL", raw)
	}
	if u.Scheme == "http" && !allowInsecure && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("%q: use https, or set allow_insecure_http: true", raw)
	}
	return u, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Excerpt is a body that is not the API's error shape (an HTML page from a proxy, say),
// made fit for an error message: trimmed, and cut to 300 bytes at a character
// boundary.
func Excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) <= 300 {
		return s
	}
	cut := 300
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
