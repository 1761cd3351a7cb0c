package haplo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idsync/idsync/sinks/haplo/haplotest"
	dsync "github.com/idsync/idsync/sync"
)

var testGroups = []string{"haplo:group:engineering", "haplo:group:sales", "haplo:group:manual"}

// newTestSink starts a contract server and a sink for it. Retries wait nothing, but
// are counted, and the waits Haplo asked for are kept.
func newTestSink(t testing.TB, edit func(*Config)) (*Sink, *haplotest.Server, *[]time.Duration) {
	t.Helper()
	return newTestSinkOpt(t, haplotest.Options{}, edit)
}

// newTestSinkOpt is newTestSink with server options. The groups and seed are set; the
// control file is the shipped one unless opt has another.
func newTestSinkOpt(t testing.TB, opt haplotest.Options, edit func(*Config)) (*Sink, *haplotest.Server, *[]time.Duration) {
	t.Helper()
	opt.Groups, opt.Seed = testGroups, 1
	if opt.ControlFile == nil {
		opt.ControlFile = ControlFile
	}
	srv := haplotest.Start(t, opt)
	cfg := Config{
		URL: srv.URL(), UserAPIKey: srv.UserAPIKey(), ImportAPIKey: srv.ImportAPIKey(), ImportName: srv.ImportName(),
		Groups:     map[string]string{"engineering": "haplo:group:engineering", "sales": "haplo:group:sales"},
		Attributes: map[string]string{"job_title": "job_title"},
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	s.cl.api.Sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return s, srv, &waits
}

func person(id string) dsync.Identity {
	return dsync.Identity{
		ID: id, Username: "User" + id, Email: "user" + id + "@example.org", FirstName: "Ann", LastName: "Lee" + id,
		Active: true, Groups: []string{"engineering"}, Attributes: dsync.AttributesOf(map[string][]string{"job_title": {"Lecturer"}}),
	}
}

// create runs create_profile then create_user, as the engine would.
func create(t *testing.T, s *Sink, want dsync.Identity) (dsync.Outcome, dsync.Outcome) {
	t.Helper()
	p, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: want.ID, Want: want})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: want.ID, Want: want, ProfileRef: p.ProfileRef})
	if err != nil {
		t.Fatal(err)
	}
	return p, u
}

func TestCreateLinksUserToProfile(t *testing.T) {
	s, srv, _ := newTestSink(t, nil)
	p, u := create(t, s, person("E1"))
	id, _ := strconv.Atoi(u.UserID)
	got, ok := srv.User(id)
	if !ok {
		t.Fatalf("user %s not on the server", u.UserID)
	}
	if got.Ref != p.ProfileRef || got.Tags["username"] != "usere1" || got.Tags["idsync_id"] != "E1" || got.Blocked {
		t.Errorf("user = %+v, want ref %s, lowercase username, id tag E1, active", got, p.ProfileRef)
	}
	if !slices.Equal(got.Groups, []string{"haplo:group:engineering"}) {
		t.Errorf("groups %v, want [haplo:group:engineering]", got.Groups)
	}
	prof, _ := srv.Profile(p.ProfileRef)
	for attr, want := range map[string]string{
		"dc:attribute:title": "Ann LeeE1", "std:attribute:email": "userE1@example.org",
		"dc:attribute:type": "std:type:person", "std:attribute:job-title": "Lecturer",
	} {
		if v := prof.Attrs[attr]; len(v) != 1 || v[0] != want {
			t.Errorf("profile %s = %q, want %q", attr, v, want)
		}
	}
}

func TestUpdatesSendOnlyWhatChangedAndKeepUnmanagedGroups(t *testing.T) {
	s, srv, _ := newTestSink(t, nil)
	want := person("E1")
	p, u := create(t, s, want)
	id, _ := strconv.Atoi(u.UserID)
	// An administrator adds a group idsync does not manage.
	got, _ := srv.User(id)
	got.Groups = append(got.Groups, "haplo:group:manual")
	srv.SetUser(got)

	have := want
	want.Groups = []string{"sales"}
	want.Email = "ann.lee@example.org"
	op := dsync.Op{Kind: dsync.UpdateUser, ID: "E1", Want: want, Have: &have, Fields: dsync.FieldGroups | dsync.FieldEmail, UserID: u.UserID, ProfileRef: p.ProfileRef}
	if _, err := s.Apply(t.Context(), op); err != nil {
		t.Fatal(err)
	}
	got, _ = srv.User(id)
	if wantGroups := []string{"haplo:group:manual", "haplo:group:sales"}; !slices.Equal(sorted(got.Groups), wantGroups) {
		t.Errorf("groups %v, want %v: managed replaced, unmanaged kept", got.Groups, wantGroups)
	}
	if got.Email != "ann.lee@example.org" || got.NameLast != "LeeE1" {
		t.Errorf("user = %+v, want the new email and the old names", got)
	}

	before := srv.Requests()["push-data"]
	want.Attributes = nil
	op = dsync.Op{Kind: dsync.UpdateProfile, ID: "E1", Want: want, Fields: dsync.FieldAttributes | dsync.FieldEmail, UserID: u.UserID, ProfileRef: p.ProfileRef}
	out, err := s.Apply(t.Context(), op)
	if err != nil {
		t.Fatal(err)
	}
	if out.ProfileRef != "" {
		t.Errorf("update returned ref %q, want none (same profile)", out.ProfileRef)
	}
	prof, _ := srv.Profile(p.ProfileRef)
	if v := prof.Attrs["std:attribute:job-title"]; len(v) != 0 {
		t.Errorf("job title %q, want it cleared", v)
	}
	if v := prof.Attrs["std:attribute:email"]; len(v) != 1 || v[0] != "ann.lee@example.org" {
		t.Errorf("profile email %q, want the new one", v)
	}
	if n := srv.Requests()["push-data"] - before; n != 1 {
		t.Errorf("update_profile made %d push-data requests, want 1", n)
	}
}

func TestDisableAndEnable(t *testing.T) {
	s, srv, _ := newTestSink(t, nil)
	want := person("E1")
	p, u := create(t, s, want)
	id, _ := strconv.Atoi(u.UserID)
	applied := dsync.Project(want, s.Schema().Profile)
	for _, tt := range []struct {
		kind        dsync.OpKind
		blocked     bool
		profileType string
	}{
		{dsync.DisableUser, true, "std:type:person:past"},
		{dsync.DisableUser, true, "std:type:person:past"}, // again: idempotent
		{dsync.EnableUser, false, "std:type:person"},
	} {
		op := dsync.Op{Kind: tt.kind, ID: "E1", Want: want, Have: &applied, UserID: u.UserID, ProfileRef: p.ProfileRef}
		if _, err := s.Apply(t.Context(), op); err != nil {
			t.Fatal(err)
		}
		got, _ := srv.User(id)
		prof, _ := srv.Profile(p.ProfileRef)
		if got.Blocked != tt.blocked || prof.Attrs["dc:attribute:type"][0] != tt.profileType {
			t.Errorf("after %s: blocked %v, profile type %v; want %v, %s", tt.kind, got.Blocked, prof.Attrs["dc:attribute:type"], tt.blocked, tt.profileType)
		}
		if prof.Attrs["dc:attribute:title"][0] != "Ann LeeE1" {
			t.Errorf("after %s: title %v, want it unchanged", tt.kind, prof.Attrs["dc:attribute:title"])
		}
	}
}

// A run that crashed after Haplo created the account, before the snapshot recorded it:
// the repeated create adopts the account by its id tag and reuses its profile.
func TestRepeatedCreateAdoptsOwnAccount(t *testing.T) {
	s, srv, _ := newTestSink(t, nil)
	want := person("E1")
	p1, u1 := create(t, s, want)
	p2, u2 := create(t, s, want)
	if p2.ProfileRef != p1.ProfileRef || u2.UserID != u1.UserID {
		t.Errorf("second create: ref %s user %s, want the first's %s %s", p2.ProfileRef, u2.UserID, p1.ProfileRef, u1.UserID)
	}
	if u2.Adopted {
		t.Error("an account with idsync's own id tag was reported as adopted from elsewhere")
	}
	if n, m := len(srv.Users()), len(srv.Profiles()); n != 1 || m != 1 {
		t.Errorf("%d users and %d profiles, want 1 of each", n, m)
	}
}

func TestCreateAdoptsExistingAccountByUsername(t *testing.T) {
	s, srv, _ := newTestSink(t, nil)
	prof := srv.AddProfile(haplotest.Profile{Attrs: map[string][]string{"dc:attribute:title": {"Ann Old"}}})
	old := srv.AddUser(haplotest.User{NameFirst: "Ann", NameLast: "Old", Email: "old@example.org", Ref: prof.Ref,
		Tags: map[string]string{"username": "usere1"}, Groups: []string{"haplo:group:manual"}, Blocked: true})
	p, u := create(t, s, person("E1"))
	if p.ProfileRef != prof.Ref {
		t.Errorf("profile ref %s, want the account's existing profile %s", p.ProfileRef, prof.Ref)
	}
	if u.UserID != strconv.Itoa(old.ID) || !u.Adopted {
		t.Errorf("outcome %+v, want user %d adopted", u, old.ID)
	}
	got, _ := srv.User(old.ID)
	if got.Blocked || got.Email != "userE1@example.org" || got.Tags["idsync_id"] != "E1" ||
		!slices.Equal(sorted(got.Groups), []string{"haplo:group:engineering", "haplo:group:manual"}) {
		t.Errorf("adopted user = %+v, want active, converged, tagged, manual group kept", got)
	}
	if n := len(srv.Users()); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

func TestConflicts(t *testing.T) {
	t.Run("username taken by another identity", func(t *testing.T) {
		s, srv, _ := newTestSink(t, nil)
		srv.AddUser(haplotest.User{NameFirst: "X", NameLast: "Y", Email: "x@example.org", Tags: map[string]string{"username": "usere1", "idsync_id": "OTHER"}})
		_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
		if !errors.Is(err, dsync.ErrConflict) {
			t.Fatalf("err %v, want ErrConflict", err)
		}
		if n := len(srv.Profiles()); n != 0 {
			t.Errorf("%d profiles created for a conflicting identity, want 0", n)
		}
	})
	t.Run("adoption turned off", func(t *testing.T) {
		s, srv, _ := newTestSink(t, func(c *Config) { f := false; c.AdoptByUsername = &f })
		srv.AddUser(haplotest.User{NameFirst: "X", NameLast: "Y", Email: "x@example.org", Tags: map[string]string{"username": "usere1"}})
		if _, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")}); !errors.Is(err, dsync.ErrConflict) {
			t.Fatalf("err %v, want ErrConflict", err)
		}
	})
	t.Run("email held by a blocked account of someone else", func(t *testing.T) {
		s, srv, _ := newTestSink(t, nil)
		srv.AddUser(haplotest.User{NameFirst: "X", NameLast: "Y", Email: "USERE1@example.org", Blocked: true, Tags: map[string]string{"username": "someone"}})
		_, _, err := func() (dsync.Outcome, dsync.Outcome, error) {
			p, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
			if err != nil {
				return p, dsync.Outcome{}, err
			}
			u, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateUser, ID: "E1", Want: person("E1"), ProfileRef: p.ProfileRef})
			return p, u, err
		}()
		if !errors.Is(err, dsync.ErrConflict) || !strings.Contains(err.Error(), "already exists with email") {
			t.Fatalf("err %v, want ErrConflict naming the email", err)
		}
	})
}

func TestRetries(t *testing.T) {
	t.Run("5xx then success", func(t *testing.T) {
		s, srv, waits := newTestSink(t, nil)
		srv.FailNext(2, http.StatusBadGateway)
		create(t, s, person("E1"))
		if len(*waits) != 2 {
			t.Errorf("%d retries, want 2", len(*waits))
		}
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		s, srv, waits := newTestSink(t, nil)
		srv.SetFaults(haplotest.Faults{RetryAfter: "7"})
		srv.FailNext(1, http.StatusTooManyRequests)
		create(t, s, person("E1"))
		if len(*waits) != 1 || (*waits)[0] != 7*time.Second {
			t.Errorf("waits %v, want [7s]", *waits)
		}
	})
	t.Run("a new profile is not re-sent after a 500", func(t *testing.T) {
		// Haplo may have created it before failing: a second push would make a
		// second profile. 429 and 503 say it did nothing, and are retried.
		s, srv, waits := newTestSink(t, nil)
		srv.FailNext(1, http.StatusInternalServerError)
		_, err := s.push(t.Context(), ptr(person("E1")), "", true)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 500 || len(*waits) != 0 {
			t.Fatalf("err %v after %d retries, want the 500 and no retry", err, len(*waits))
		}
		srv.FailNext(1, http.StatusServiceUnavailable)
		if _, err := s.push(t.Context(), ptr(person("E1")), "", true); err != nil || len(*waits) != 1 {
			t.Fatalf("err %v after %d retries, want success after one retry of the 503", err, len(*waits))
		}
		if n := len(srv.Profiles()); n != 1 {
			t.Errorf("%d profiles, want 1", n)
		}
	})
	t.Run("bad key stops the sink", func(t *testing.T) {
		s, _, waits := newTestSink(t, func(c *Config) { c.UserAPIKey = "wrong-key-0123456789abcdef" })
		_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
		if !errors.Is(err, dsync.ErrStopSink) || len(*waits) != 0 {
			t.Errorf("err %v after %d retries, want ErrStopSink and no retry", err, len(*waits))
		}
	})
	t.Run("a non-JSON 400 is reported as sent", func(t *testing.T) {
		s, _, _ := newTestSink(t, nil)
		err := s.cl.do(t.Context(), call{endpoint: "user.get", method: http.MethodGet, path: "/api/v0-user/id/abc", auth: s.cl.userAuth}, nil)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, "Bad request") {
			t.Errorf("err %v, want the text/plain 400", err)
		}
	})
	t.Run("cancelled context returns promptly", func(t *testing.T) {
		s, srv, _ := newTestSink(t, nil)
		srv.SetLatency(5 * time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Apply(ctx, dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
		if err == nil || time.Since(start) > 2*time.Second {
			t.Errorf("err %v after %v, want an error within 2s", err, time.Since(start))
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestStaleRefMakesNewProfileAndRelinks(t *testing.T) {
	s, srv, _ := newTestSink(t, nil)
	want := person("E1")
	_, u := create(t, s, want)
	out, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.UpdateProfile, ID: "E1", Want: want, Fields: dsync.FieldEmail, UserID: u.UserID, ProfileRef: "9zzzz"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.Atoi(u.UserID)
	got, _ := srv.User(id)
	if out.ProfileRef == "" || got.Ref != out.ProfileRef {
		t.Errorf("outcome ref %q, user ref %q: want the new profile, linked", out.ProfileRef, got.Ref)
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{URL: "https://haplo.example.org", UserAPIKey: "k", ImportAPIKey: "k", ImportName: "people"}
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"good", func(*Config) {}, ""},
		{"no url", func(c *Config) { c.URL = "" }, "haplo.url: required"},
		{"plain http off loopback", func(c *Config) { c.URL = "http://haplo.example.org" }, "use https"},
		{"plain http on loopback", func(c *Config) { c.URL = "http://127.0.0.1:8080" }, ""},
		{"url with a path", func(c *Config) { c.URL = "https://h.example.org/api" }, "without a path"},
		{"no keys", func(c *Config) { c.UserAPIKey, c.ImportAPIKey = "", "" }, "user_api_key: required"},
		{"bad group code", func(c *Config) { c.Groups = map[string]string{"x": "Staff"} }, "groups.x"},
		{"everyone", func(c *Config) { c.Groups = map[string]string{"x": "std:group:everyone"} }, "implicit"},
		{"reserved field", func(c *Config) { c.Attributes = map[string]string{"t": "email"} }, "attributes.t"},
		{"code is reserved", func(c *Config) { c.Attributes = map[string]string{"t": "code"} }, "attributes.t"},
		{"same types", func(c *Config) { c.ProfileType, c.PastProfileType = "std:type:person", "std:type:person" }, "must differ"},
	}
	for _, tt := range tests {
		c := good()
		tt.edit(&c)
		var msgs []string
		for _, e := range c.Validate("sinks[0].haplo") {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "\n")
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRateLimit(t *testing.T) {
	s, srv, _ := newTestSink(t, func(c *Config) { c.RateLimit, c.Burst = 50, 1 })
	start := time.Now()
	for i := range 5 {
		create(t, s, person(strconv.Itoa(i))) // 3 requests each
	}
	// 15 requests at 50/s with a burst of 1: at least 14 intervals of 20 ms.
	if d := time.Since(start); d < 280*time.Millisecond {
		t.Errorf("15 requests took %v at 50/s, want at least 280ms", d)
	}
	if n := srv.Requests()["push-data"]; n != 5 {
		t.Errorf("%d pushes, want 5", n)
	}
}

func TestProfileCode(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9_-]+:[:a-zA-Z0-9_-]+$`)
	for id, want := range map[string]string{
		"E1":       "idsync:person:E1",
		"a_b-C9":   "idsync:person:a_b-C9",
		"x41":      "idsync:person:x783431", // plain codes never start with x
		"A":        "idsync:person:A",
		"a.b":      "idsync:person:x612e62",
		"a@b.org":  "idsync:person:x6140622e6f7267",
		"Zoë":      "idsync:person:x5a6fc3ab",
		"uid=1,ou": "idsync:person:x7569643d312c6f75",
		"":         "idsync:person:x",
		"a:b":      "idsync:person:x613a62",
	} {
		got := profileCode(id)
		if got != want || !valid.MatchString(got) || profileCode(id) != got {
			t.Errorf("profileCode(%q) = %q, want %q, a valid behaviour code", id, got, want)
		}
	}
	// One code per id, and never one code for two ids: ids that look like the hex
	// form of others, and ids differing only in case.
	seen := map[string]string{}
	ids := []string{"x612e62", "a.b", "x", "", "X", "xx", "x78", "ab", "AB", "Ab", "a b", "a\x00b", "612e62", "-", "_"}
	for i := range 300 {
		ids = append(ids, strconv.Itoa(i), "x"+strconv.Itoa(i), fmt.Sprintf("%x", i), fmt.Sprintf("x%x", i), string(rune(i)))
	}
	for _, id := range ids {
		code := profileCode(id)
		if other, ok := seen[code]; ok && other != id {
			t.Errorf("ids %q and %q share the code %q", other, id, code)
		}
		seen[code] = id
		if !valid.MatchString(code) {
			t.Errorf("profileCode(%q) = %q, not a valid behaviour code", id, code)
		}
	}
}

// newCodesSink is a sink with profile_codes on, against a Haplo whose person type
// has std:attribute:configured-behaviour, its probe already made.
func newCodesSink(t *testing.T) (*Sink, *haplotest.Server, *[]time.Duration) {
	t.Helper()
	s, srv, waits := newTestSinkOpt(t, haplotest.Options{PersonHasBehaviour: true}, func(c *Config) { c.ProfileCodes = true })
	if err := s.checkCodes(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, srv, waits
}

// wantOneProfile checks that Haplo holds one profile, ref, carrying the code of id
// alone.
func wantOneProfile(t *testing.T, srv *haplotest.Server, ref, id string) {
	t.Helper()
	ps := srv.Profiles()
	if len(ps) != 1 || ps[0].Ref != ref {
		t.Fatalf("profiles %+v, want one, %s", ps, ref)
	}
	if got := ps[0].Attrs["std:attribute:configured-behaviour"]; !slices.Equal(got, []string{profileCode(id)}) {
		t.Errorf("configured behaviour %q, want %q alone", got, profileCode(id))
	}
}

func TestProfileCodes(t *testing.T) {
	t.Run("a lost answer to a new profile's push is retried and finds it", func(t *testing.T) {
		s, srv, waits := newCodesSink(t)
		srv.LoseNext(2, "push-data")
		p, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
		if err != nil {
			t.Fatal(err)
		}
		if len(*waits) != 2 {
			t.Errorf("%d retries, want 2", len(*waits))
		}
		wantOneProfile(t, srv, p.ProfileRef, "E1")
		if prof, _ := srv.Profile(p.ProfileRef); prof.Attrs["dc:attribute:title"][0] != "Ann LeeE1" {
			t.Errorf("profile %+v", prof)
		}
	})
	t.Run("a 500 on a new profile's push is retried", func(t *testing.T) {
		s, srv, waits := newCodesSink(t)
		srv.FailNext(1, http.StatusInternalServerError)
		p, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
		if err != nil || len(*waits) != 1 {
			t.Fatalf("err %v after %d retries, want success after one", err, len(*waits))
		}
		wantOneProfile(t, srv, p.ProfileRef, "E1")
	})
	t.Run("the run after a crash finds the profile and links the account to it", func(t *testing.T) {
		// The profile was made, and the run was killed before the snapshot recorded
		// its ref: the next run creates it again.
		s, srv, _ := newCodesSink(t)
		first, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
		if err != nil {
			t.Fatal(err)
		}
		before := srv.Requests()["push-data"]
		p, u := create(t, s, person("E1"))
		if p.ProfileRef != first.ProfileRef {
			t.Errorf("second create gave ref %s, want the first's %s", p.ProfileRef, first.ProfileRef)
		}
		// The push finds the profile unchanged; a touch push learns its ref, and a
		// push with the ref takes the touch away.
		if n := srv.Requests()["push-data"] - before; n != 3 {
			t.Errorf("%d pushes, want 3", n)
		}
		wantOneProfile(t, srv, first.ProfileRef, "E1")
		id, _ := strconv.Atoi(u.UserID)
		if got, _ := srv.User(id); got.Ref != first.ProfileRef {
			t.Errorf("user ref %q, want %s", got.Ref, first.ProfileRef)
		}
		// Changed data: the push itself saves the profile and says its ref.
		before = srv.Requests()["push-data"]
		want := person("E1")
		want.LastName = "Leigh"
		p2, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: want})
		if err != nil || p2.ProfileRef != first.ProfileRef || srv.Requests()["push-data"]-before != 1 {
			t.Errorf("changed create: %+v, %v after %d pushes; want %s in one", p2, err, srv.Requests()["push-data"]-before, first.ProfileRef)
		}
	})
	t.Run("a touch push whose answer is lost is tried again", func(t *testing.T) {
		s, srv, _ := newCodesSink(t)
		first, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
		if err != nil {
			t.Fatal(err)
		}
		srv.LoseNext(1, "push-data")
		ref, err := s.revealByCode(t.Context(), ptr(person("E1")), true)
		if err != nil || ref != first.ProfileRef {
			t.Fatalf("ref %q, err %v; want %s", ref, err, first.ProfileRef)
		}
		wantOneProfile(t, srv, ref, "E1")
	})
	t.Run("a stale ref finds the profile by its code", func(t *testing.T) {
		s, srv, _ := newCodesSink(t)
		want := person("E1")
		p, u := create(t, s, want)
		want.Email = "ann.lee@example.org"
		out, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.UpdateProfile, ID: "E1", Want: want, Fields: dsync.FieldEmail, UserID: u.UserID, ProfileRef: "9zzzz"})
		if err != nil {
			t.Fatal(err)
		}
		id, _ := strconv.Atoi(u.UserID)
		if got, _ := srv.User(id); out.ProfileRef != p.ProfileRef || got.Ref != p.ProfileRef {
			t.Errorf("outcome ref %q, user ref %q: want the profile the code names, %s", out.ProfileRef, got.Ref, p.ProfileRef)
		}
		wantOneProfile(t, srv, p.ProfileRef, "E1")
	})
	t.Run("profiles made before codes get theirs at their next update", func(t *testing.T) {
		s, srv, _ := newTestSinkOpt(t, haplotest.Options{PersonHasBehaviour: true}, nil)
		want := person("E1")
		p, u := create(t, s, want)
		s.cfg.ProfileCodes = true
		want.Email = "ann.lee@example.org"
		if _, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.UpdateProfile, ID: "E1", Want: want, Fields: dsync.FieldEmail, UserID: u.UserID, ProfileRef: p.ProfileRef}); err != nil {
			t.Fatal(err)
		}
		wantOneProfile(t, srv, p.ProfileRef, "E1")
	})
	t.Run("the probe is made once", func(t *testing.T) {
		s, srv, _ := newTestSinkOpt(t, haplotest.Options{PersonHasBehaviour: true}, func(c *Config) { c.ProfileCodes = true })
		for i := range 3 {
			create(t, s, person(strconv.Itoa(i)))
		}
		if n, m := srv.Requests()["push-data"], len(srv.Profiles()); n != 4 || m != 3 {
			t.Errorf("%d pushes and %d profiles, want the probe and 3, making 3", n, m)
		}
	})
}

// With codes on but not stored by Haplo, the sink stops before it pushes a profile:
// its pushes would be retried as safe, and make duplicates.
func TestProfileCodesProbeStopsSink(t *testing.T) {
	for _, tt := range []struct {
		name string
		opt  haplotest.Options
		want string
	}{
		{"person type without the attribute", haplotest.Options{}, "Unknown name in field std:attribute:configured-behaviour"},
		{"an older control file, without codes", haplotest.Options{PersonHasBehaviour: true, ControlFile: []byte(`{"dataImportControlFileVersion":0,"model":"haplo:person",
			"files":{"DEFAULT":{"read":"json","singleRecord":true}},
			"instructions":[{"action":"new","destination":"profile"},
				{"source":"last","destination":"value:person-name","name":"last"},
				{"action":"field-structured","structured":"value:person-name","destination":"profile","name":"dc:attribute:title"}]}`)}, "dc:attribute:title is not set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, srv, _ := newTestSinkOpt(t, tt.opt, func(c *Config) { c.ProfileCodes = true })
			_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.CreateProfile, ID: "E1", Want: person("E1")})
			if !errors.Is(err, dsync.ErrStopSink) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "profile_codes") {
				t.Errorf("err %v, want ErrStopSink naming profile_codes and %q", err, tt.want)
			}
			if n := len(srv.Profiles()); n != 0 {
				t.Errorf("%d profiles, want 0", n)
			}
		})
	}
}

// TestHaploEmail holds haploEmail to the platform's regular expression, on chosen
// cases and on a million random strings over the characters that matter.
func TestHaploEmail(t *testing.T) {
	re := regexp.MustCompile("^[a-zA-Z0-9!#$%*/?|^{}`~&'+=_.-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9.-]+$")
	cases := []string{"", "a@b.c", "ann.lee@example.org", "@b.c", "a@.c", "a@b.", "a@b..", "a@b.c.", "a@@b.c", "a@b@c.d",
		"a b@c.d", "a@b_c.d", "a@b-c.d-e", "é@b.c", "a@bé.c", "a@xn--bcher-kva.example", "a@b.c\n", "!#$%*/?|^{}`~&'+=_.-@b.c", "a\x00@b.c"}
	for _, c := range cases {
		if got, want := haploEmail(c), re.MatchString(c); got != want {
			t.Errorf("haploEmail(%q) = %v, the regex says %v", c, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab9@.-_ !é\n"
	buf := make([]byte, 0, 12)
	for range 1000000 {
		buf = buf[:0]
		for range rng.IntN(10) {
			buf = append(buf, alphabet[rng.IntN(len(alphabet))])
		}
		if got, want := haploEmail(string(buf)), re.MatchString(string(buf)); got != want {
			t.Fatalf("haploEmail(%q) = %v, the regex says %v", buf, got, want)
		}
	}
}
