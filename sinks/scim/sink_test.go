package scim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/internal/scimtest"
	"github.com/idsync/idsync/sinks/sinktest"
	dsync "github.com/idsync/idsync/sync"
)

// proxy stands in front of the independent SCIM server (scimmy) and injects faults
// before a request reaches it, and can hide PATCH support.
type proxy struct {
	mu       gosync.Mutex
	failN    int
	failWith int
	latency  time.Duration
	noPatch  bool
	etag     bool // answer /ServiceProviderConfig with ETags supported
	fail412  int  // answer the next PATCHes of a user 412
	requests int
	methods  []string
}

func startProxy(t *testing.T, target string) (*proxy, string) {
	p := &proxy{}
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests++
		p.methods = append(p.methods, r.Method+" "+r.URL.Path)
		lat, fail, noPatch := p.latency, 0, p.noPatch
		if p.failN > 0 {
			p.failN--
			fail = p.failWith
		}
		p.mu.Unlock()
		if lat > 0 {
			select {
			case <-time.After(lat):
			case <-r.Context().Done():
				return
			}
		}
		if fail != 0 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(fail)
			return
		}
		p.mu.Lock()
		etag, precond := p.etag, false
		if p.fail412 > 0 && r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/Users/") {
			p.fail412--
			precond = true
		}
		p.mu.Unlock()
		if (noPatch || etag) && strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig") {
			w.Header().Set("Content-Type", mediaType)
			fmt.Fprintf(w, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],"patch":{"supported":%t},"etag":{"supported":%t}}`, !noPatch, etag)
			return
		}
		if precond {
			w.Header().Set("Content-Type", mediaType)
			w.WriteHeader(http.StatusPreconditionFailed)
			w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"412","detail":"version mismatch"}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL + u.Path
}

func newSink(t *testing.T, base, token string, edit func(*Config)) *Sink {
	t.Helper()
	retries := 3
	cfg := Config{URL: base, Token: token, Settings: httpapi.Settings{MaxRetries: &retries}, Groups: map[string]string{"staff": "Staff", "admins": "Admins"},
		Enterprise: map[string]string{"department": "department"}}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.api.Sleep = func(context.Context, time.Duration) error { return nil }
	return s
}

// users returns scimmy's users by externalId.
func users(t *testing.T, srv *scimtest.Server) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, u := range srv.Users(t) {
		if ext, _ := u["externalId"].(string); ext != "" {
			m[ext] = u
		}
	}
	return m
}

func primaryEmail(u map[string]any) string {
	emails, _ := u["emails"].([]any)
	for _, e := range emails {
		if m, ok := e.(map[string]any); ok {
			return m["value"].(string)
		}
	}
	return ""
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Target {
		srv := scimtest.Start(t)
		p, base := startProxy(t, srv.URL)
		s := newSink(t, base, srv.Token, nil)
		return sinktest.Target{
			Sink: s,
			Account: func(id string) (sinktest.Account, bool) {
				u, ok := users(t, srv)[id]
				if !ok {
					return sinktest.Account{}, false
				}
				active, _ := u["active"].(bool)
				return sinktest.Account{Email: primaryEmail(u), Active: active}, true
			},
			Requests:   func() int { p.mu.Lock(); defer p.mu.Unlock(); return p.requests },
			FailNext:   func(n, status int) { p.mu.Lock(); p.failN, p.failWith = n, status; p.mu.Unlock() },
			SetLatency: func(d time.Duration) { p.mu.Lock(); p.latency = d; p.mu.Unlock() },
			Remove: func(id string) {
				u := users(t, srv)[id]
				req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/Users/"+u["id"].(string), nil)
				req.Header.Set("Authorization", "Bearer "+srv.Token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusNoContent {
					t.Fatalf("delete behind the sink's back: %v %v", resp, err)
				}
				resp.Body.Close()
			},
		}
	})
}

func apply(t *testing.T, s *Sink, op dsync.Op) dsync.Outcome {
	t.Helper()
	out, err := s.Apply(t.Context(), op)
	if err != nil {
		t.Fatalf("%s: %v", op.Kind, err)
	}
	return out
}

func TestAdoptionAndConflict(t *testing.T) {
	srv := scimtest.Start(t)
	s := newSink(t, srv.URL, srv.Token, nil)
	// An account made by hand, with the userName idsync will want, and a quote in it.
	srv.AddUser(t, map[string]any{"userName": `ann "the" lee`, "active": false})
	want := sinktest.Person("A1")
	want.Username = `Ann "The" Lee` // userName is case-insensitive
	out := apply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: "A1", Want: want})
	if !out.Adopted || out.UserID == "" {
		t.Fatalf("outcome %+v, want the existing account adopted", out)
	}
	u := users(t, srv)["A1"]
	if u == nil || u["active"] != true || primaryEmail(u) != want.Email || len(srv.Users(t)) != 1 {
		t.Errorf("adopted account %v (of %d), want it converged: active, externalId A1, the email", u, len(srv.Users(t)))
	}
	// Another identity wanting that userName meets an account that is not its own.
	other := sinktest.Person("A2")
	other.Username = want.Username
	if _, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: "A2", Want: other}); !errors.Is(err, dsync.ErrConflict) {
		t.Errorf("err %v, want ErrConflict", err)
	}
}

func TestGroupsAndEnterprise(t *testing.T) {
	srv := scimtest.Start(t)
	s := newSink(t, srv.URL, srv.Token, nil)
	want := sinktest.Person("G1")
	want.Groups = []string{"staff", "unmanaged"}
	want.Attributes = dsync.AttributesOf(map[string][]string{"department": {"Physics"}})
	out := apply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: "G1", Want: want})
	members := func(group string) []string {
		var list struct {
			Resources []struct {
				DisplayName string `json:"displayName"`
				Members     []struct {
					Value string `json:"value"`
				} `json:"members"`
			} `json:"Resources"`
		}
		if err := s.do(t.Context(), "t", http.MethodGet, "/Groups", nil, &list); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, g := range list.Resources {
			if g.DisplayName == group {
				for _, m := range g.Members {
					ids = append(ids, m.Value)
				}
			}
		}
		return ids
	}
	if got := members("Staff"); len(got) != 1 || got[0] != out.UserID {
		t.Errorf("Staff members %v, want [%s]", got, out.UserID)
	}
	u := users(t, srv)["G1"]
	if ext, _ := u[enterpriseSchema].(map[string]any); ext["department"] != "Physics" {
		t.Errorf("enterprise extension %v, want department Physics", u[enterpriseSchema])
	}
	have := want
	want.Groups = []string{"admins"}
	apply(t, s, dsync.Op{Kind: dsync.UpdateUser, ID: "G1", Want: want, Have: &have, Fields: dsync.FieldGroups, UserID: out.UserID})
	if got, adm := members("Staff"), members("Admins"); len(got) != 0 || len(adm) != 1 {
		t.Errorf("after the move: Staff %v, Admins %v; want [] and [%s]", got, adm, out.UserID)
	}
}

func TestPutWhenPatchIsNotSupported(t *testing.T) {
	srv := scimtest.Start(t)
	p, base := startProxy(t, srv.URL)
	p.noPatch = true
	s := newSink(t, base, srv.Token, nil)
	want := sinktest.Person("P1")
	out := apply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: "P1", Want: want})
	have := want
	want.Email = "moved-P1@example.org"
	apply(t, s, dsync.Op{Kind: dsync.UpdateUser, ID: "P1", Want: want, Have: &have, Fields: dsync.FieldEmail, UserID: out.UserID})
	if got := primaryEmail(users(t, srv)["P1"]); got != want.Email {
		t.Errorf("email %q, want %q", got, want.Email)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !containsPrefix(p.methods, "PUT /scim/v2/Users/") || containsPrefix(p.methods, "PATCH /scim/v2/Users/") {
		t.Errorf("requests %v, want a PUT and no PATCH of the user", p.methods)
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func TestFilterValue(t *testing.T) {
	for in, want := range map[string]string{`ann`: `"ann"`, `a"b`: `"a\"b"`, `a\b`: `"a\\b"`} {
		if got := filterValue(in); got != want {
			t.Errorf("filterValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestOwnedPages(t *testing.T) {
	srv := scimtest.Start(t)
	s := newSink(t, srv.URL, srv.Token, nil)
	for i := range 230 {
		apply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: fmt.Sprintf("O%03d", i), Want: sinktest.Person(fmt.Sprintf("O%03d", i))})
	}
	srv.AddUser(t, map[string]any{"userName": "not-ours"})
	owned, err := s.Owned(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range owned {
		seen[e.ID] = true
	}
	if len(owned) != 230 || len(seen) != 230 {
		t.Errorf("owned %d (%d distinct), want 230 over three pages, without the account idsync did not make", len(owned), len(seen))
	}
}

// With ETags, a write that meets 412 (the user changed in between) reads the user again
// and retries once; a second 412 is an error.
func TestPreconditionFailedIsReadAgainOnce(t *testing.T) {
	srv := scimtest.Start(t)
	p, base := startProxy(t, srv.URL)
	p.etag = true
	s := newSink(t, base, srv.Token, nil)
	want := sinktest.Person("E1")
	out := apply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: "E1", Want: want})
	p.mu.Lock()
	p.fail412, p.methods = 1, nil
	p.mu.Unlock()
	want.Active = false
	apply(t, s, dsync.Op{Kind: dsync.DisableUser, ID: "E1", Want: want, UserID: out.UserID})
	if active := users(t, srv)["E1"]["active"]; active != false {
		t.Errorf("active %v after the retried disable, want false", active)
	}
	p.mu.Lock()
	methods := strings.Join(p.methods, " ")
	p.fail412 = 2
	p.mu.Unlock()
	if n := strings.Count(methods, "GET /scim/v2/Users/"); n != 2 {
		t.Errorf("requests %s: want the user read twice", methods)
	}
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.EnableUser, ID: "E1", Want: want, UserID: out.UserID})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusPreconditionFailed {
		t.Errorf("two 412s in a row: err %v, want the 412", err)
	}
}
