package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"0", 0, true},
		{"-3", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Retry-After", tt.header)
		}
		got, ok := retryAfter(h, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Retry-After %q: got %v %v, want %v %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := range 12 {
		full := min(200*time.Millisecond<<min(attempt, 6), 10*time.Second)
		for range 50 {
			if d := backoff(attempt); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
}

// TestRetryPolicy runs a real server that fails the first request with each status,
// and checks which are retried, for a safe and an unsafe call.
func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		status             int
		retrySafe, retryUn bool
	}{
		{429, true, true},
		{503, true, true},
		{500, true, false},
		{502, true, false},
		{400, false, false},
		{404, false, false},
		{409, false, false},
	}
	for _, tt := range tests {
		for _, unsafe := range []bool{false, true} {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.WriteHeader(tt.status)
					return
				}
				fmt.Fprint(w, `{"ok":true}`)
			}))
			cl := New(Client{Base: srv.URL, HTTP: srv.Client(), MaxRetries: 3,
				Error: func(_ string, status int, _ http.Header, _ []byte) error { return fmt.Errorf("status %d", status) },
				Sleep: func(context.Context, time.Duration) error { return nil }})
			err := cl.Do(t.Context(), Call{Endpoint: "x", Method: http.MethodPost, Path: "/", Body: map[string]int{"a": 1}, Unsafe: unsafe}, nil)
			srv.Close()
			want := tt.retrySafe
			if unsafe {
				want = tt.retryUn
			}
			if (err == nil) != want {
				t.Errorf("status %d unsafe %v: err %v, want retried: %v", tt.status, unsafe, err, want)
			}
		}
	}
}

func TestRefusedConnectionIsRetriedEvenWhenUnsafe(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the dial is refused, nothing was sent
	var sleeps int
	cl := New(Client{Base: "http://" + addr, HTTP: &http.Client{Timeout: time.Second}, MaxRetries: 2,
		Error: func(string, int, http.Header, []byte) error { return errors.New("x") },
		Sleep: func(context.Context, time.Duration) error { sleeps++; return nil }})
	err := cl.Do(t.Context(), Call{Endpoint: "x", Method: http.MethodPost, Path: "/", Unsafe: true}, nil)
	if err == nil || sleeps != 2 {
		t.Errorf("err %v after %d retries, want an error after 2", err, sleeps)
	}
}

func TestExcerpt(t *testing.T) {
	if got := Excerpt([]byte("  <html>bad gateway</html>\n")); got != "<html>bad gateway</html>" {
		t.Errorf("short body: %q", got)
	}
	long := strings.Repeat("é", 200) // 400 bytes, two each
	got := Excerpt([]byte("x" + long))
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "...") || len(got) > 303 {
		t.Errorf("long body cut to %q (%d bytes): want valid UTF-8, at most 300 bytes and an ellipsis", got, len(got))
	}
}

// A request accepts JSON unless its call asks for another type (SCIM's
// application/scim+json), by its headers or its credentials.
func TestAcceptHeader(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Accept"))
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	cl := New(Client{Base: srv.URL, HTTP: srv.Client(), Error: func(string, int, http.Header, []byte) error { return errors.New("x") }})
	calls := []Call{
		{Endpoint: "plain", Method: http.MethodGet, Path: "/"},
		{Endpoint: "header", Method: http.MethodGet, Path: "/", Header: map[string]string{"Accept": "application/scim+json"}},
		{Endpoint: "auth", Method: http.MethodGet, Path: "/", Auth: func(r *http.Request) { r.Header.Set("Accept", "text/csv") }},
	}
	for _, c := range calls {
		if err := cl.Do(t.Context(), c, nil); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"application/json", "application/scim+json", "text/csv"}; !slices.Equal(got, want) {
		t.Errorf("Accept headers %q, want %q", got, want)
	}
}
