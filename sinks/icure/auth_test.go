package icure

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	gosync "sync"
	"testing"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/sinks/icure/icuretest"
	"github.com/idsync/idsync/sinks/sinktest"
	dsync "github.com/idsync/idsync/sync"
)

// In token mode the workers share one login; an expired token is refreshed once for
// them all; an expired session logs in again.
func TestTokenAuthSharesOneLogin(t *testing.T) {
	s, srv, _ := newTestSink(t, icuretest.Options{}, func(c *Config) { c.Auth = "token" })
	people := make([]dsync.Identity, 16)
	ids := make([]string, 16)
	run := func(f func(i int) error) {
		t.Helper()
		var wg gosync.WaitGroup
		errs := make([]error, len(people))
		for i := range people {
			wg.Go(func() { errs[i] = f(i) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	run(func(i int) error {
		people[i] = sinktest.Person(fmt.Sprintf("T%02d", i))
		out, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: people[i].ID, Want: people[i]})
		ids[i] = out.UserID
		return err
	})
	if r := srv.Requests(); r["auth.login"] != 1 || r["user.create"] != 16 {
		t.Errorf("requests %v, want one login for 16 creates", r)
	}
	for _, r := range srv.Log() {
		if r.Status == http.StatusUnauthorized {
			t.Errorf("request %+v refused", r)
		}
	}

	srv.ExpireTokens()
	run(func(i int) error {
		p := people[i]
		p.Active = false
		_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.DisableUser, ID: p.ID, Want: p, UserID: ids[i]})
		return err
	})
	if r := srv.Requests(); r["auth.login"] != 1 || r["auth.refresh"] != 1 {
		t.Errorf("requests %v, want one refresh and no new login after the token expired", r)
	}

	srv.ExpireSessions()
	p := people[0]
	apply(t, s, dsync.Op{Kind: dsync.EnableUser, ID: p.ID, Want: p, UserID: ids[0]})
	if r := srv.Requests(); r["auth.login"] != 2 || r["auth.refresh"] != 2 {
		t.Errorf("requests %v, want a refused refresh then a second login", r)
	}
	if u := stored(t, srv, ids[0]); u.Status != "ACTIVE" {
		t.Errorf("status %s, want ACTIVE", u.Status)
	}
}

// Refused credentials stop the sink, at once in basic mode, and in token mode when
// logging in is refused or a renewed token is refused too.
func TestRefusedCredentialsStopTheSink(t *testing.T) {
	for _, mode := range []string{"basic", "token"} {
		t.Run(mode, func(t *testing.T) {
			var logs bytes.Buffer
			srv := icuretest.Start(t, icuretest.Options{})
			retries := 3
			s, err := New(Config{URL: srv.URL, Auth: mode, Username: srv.Username(), Password: "wrong-password-42",
				Settings: httpapi.Settings{MaxRetries: &retries}}, nil, nil, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatal(err)
			}
			p := sinktest.Person("Z1")
			_, err = s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
			if !errors.Is(err, dsync.ErrStopSink) {
				t.Fatalf("err %v, want ErrStopSink", err)
			}
			if n := len(srv.Log()); n != 1 {
				t.Errorf("%d requests, want 1: refused credentials are not retried", n)
			}
			if strings.Contains(err.Error()+logs.String(), "wrong-password-42") {
				t.Error("the password appears in an error or a log line")
			}
		})
	}

	// A server that takes the login and refresh but refuses every other request.
	srv := icuretest.Start(t, icuretest.Options{})
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/rest/v2/user") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"message":"JWT expired"}`))
			return
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(refusing.Close)
	s, _ := newSinkFor(t, refusing.URL, srv, func(c *Config) { c.Auth = "token" })
	p := sinktest.Person("Z2")
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: p.ID, Want: p})
	if !errors.Is(err, dsync.ErrStopSink) {
		t.Fatalf("err %v, want ErrStopSink", err)
	}
	if r := srv.Requests(); r["auth.login"] != 1 || r["auth.refresh"] != 1 {
		t.Errorf("requests %v, want one login and one refresh", r)
	}
}

func TestAPIErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		is     []error
		dup    string
		stale  bool
	}{
		{400, `{"message":"A user with Email a@b.org already exists"}`, []error{dsync.ErrExists}, "email", false},
		{400, `{"message":"A user with Login ann already exists"}`, []error{dsync.ErrExists}, "login", false},
		{400, `{"message":"User with email a@b.org already exists"}`, []error{dsync.ErrExists}, "email", false},
		{400, `{"message":"Invalid email x"}`, nil, "", false},
		{401, `{"message":"JWT expired"}`, []error{dsync.ErrStopSink}, "", false},
		{402, `{"message":"Quota exceeded"}`, []error{dsync.ErrStopSink}, "", false},
		{403, `{"message":"Forbidden"}`, []error{dsync.ErrStopSink}, "", false},
		{404, `{"timestamp":"x","path":"/rest/v2/user/1","status":404,"error":"Not Found"}`, []error{dsync.ErrNotFound}, "", false},
		{409, `{"message":"Outdated revision"}`, nil, "", true},
		{500, `<html>oops</html>`, nil, "", false},
	} {
		err := apiError("user.x", tc.status, nil, []byte(tc.body))
		for _, target := range []error{dsync.ErrExists, dsync.ErrNotFound, dsync.ErrStopSink, dsync.ErrConflict} {
			if got, want := errors.Is(err, target), slices.Contains(tc.is, target); got != want {
				t.Errorf("%d %s: errors.Is(%v) = %v, want %v", tc.status, tc.body, target, got, want)
			}
		}
		field, _ := err.(*APIError).Duplicate()
		if field != tc.dup || staleRev(err) != tc.stale {
			t.Errorf("%d %s: duplicate %q stale %v, want %q %v", tc.status, tc.body, field, staleRev(err), tc.dup, tc.stale)
		}
		if err.Error() == "" || strings.Contains(err.Error(), "{") {
			t.Errorf("%d: message %q, want the text of the body", tc.status, err)
		}
	}
}
