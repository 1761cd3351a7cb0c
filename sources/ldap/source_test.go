package ldap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/ldaptest"
	dsync "github.com/idsync/idsync/sync"
)

// These tests run against a real slapd (Debian's slapd and ldap-utils): .ci/run
// installs them, and ldaptest fails, never skips, without them.

func serviceConfig(srv *ldaptest.Server, edit func(*Config)) Config {
	c := Config{
		URL: srv.URL, BindDN: srv.ServiceDN, BindPassword: srv.ServicePassword, PageSize: 7,
		Searches:          []Search{{BaseDN: "ou=people," + srv.Suffix, Filter: "(objectClass=inetOrgPerson)"}},
		ProfileAttributes: map[string]string{"job_title": "title"},
	}
	if edit != nil {
		edit(&c)
	}
	return c
}

func read(t *testing.T, cfg Config) ([]dsync.Identity, error) {
	t.Helper()
	src, err := New("dir", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return src.Read(t.Context())
}

func byUID(ids []dsync.Identity) map[string]dsync.Identity {
	m := make(map[string]dsync.Identity, len(ids))
	for _, id := range ids {
		m[id.Username] = id
	}
	return m
}

func TestReadPagesEverything(t *testing.T) {
	people := ldaptest.People(50)
	srv := ldaptest.Start(t, ldaptest.Options{People: people, SizeLimit: 10})
	// Page size 7 over 50 people: 8 pages, past a server size limit of 10.
	ids, err := read(t, serviceConfig(srv, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 50 {
		t.Fatalf("read %d identities, want 50", len(ids))
	}
	got := byUID(ids)
	p := people[3]
	id := got[p.UID]
	if id.ID == "" || id.Email != p.Mail || id.FirstName != p.GivenName || id.LastName != p.SN || !id.Active || !id.Valid() {
		t.Errorf("identity %+v, want it mapped from %+v", id, p)
	}
	if !strings.HasPrefix(strings.ToLower(id.Origin), "uid="+p.UID) {
		t.Errorf("origin %q, want the DN", id.Origin)
	}
	seen := map[string]bool{}
	for _, x := range ids {
		if seen[x.ID] {
			t.Errorf("entryUUID %s twice", x.ID)
		}
		seen[x.ID] = true
	}
}

func TestReadTLS(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(3), TLS: true})
	for _, tt := range []struct {
		name string
		edit func(*Config)
	}{
		{"ldaps", func(c *Config) { c.URL = srv.LDAPSURL; c.CAFile = srv.CAFile }},
		{"starttls", func(c *Config) { c.StartTLS = true; c.CAFile = srv.CAFile }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := read(t, serviceConfig(srv, tt.edit))
			if err != nil || len(ids) != 3 {
				t.Fatalf("read %d, %v; want 3", len(ids), err)
			}
		})
	}
	t.Run("unknown CA is final", func(t *testing.T) {
		_, err := read(t, serviceConfig(srv, func(c *Config) {
			c.URL = ""
			c.URLs = []string{srv.LDAPSURL, srv.URL} // the second would work without TLS
		}))
		if err == nil || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), srv.URL) {
			t.Errorf("err %v, want a certificate error and no try of the next server", err)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		_, err := read(t, serviceConfig(srv, func(c *Config) { c.URL = srv.LDAPSURL; c.CAFile = srv.CAFile; c.ServerName = "ldap.example.com" }))
		if err == nil || !strings.Contains(err.Error(), "ldap.example.com") {
			t.Errorf("err %v, want a certificate name error", err)
		}
	})
}

func TestReadFailover(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(3)})
	ids, err := read(t, serviceConfig(srv, func(c *Config) {
		c.URL = ""
		c.URLs = []string{"ldap://127.0.0.1:1/", srv.URL}
		c.DialTimeout = time.Second
	}))
	if err != nil || len(ids) != 3 {
		t.Errorf("read %d, %v; want 3 from the second server", len(ids), err)
	}
}

func TestWrongPassword(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(3)})
	_, err := read(t, serviceConfig(srv, func(c *Config) { c.BindPassword = "wrong" }))
	if err == nil || !strings.Contains(err.Error(), "invalid credentials") || !strings.Contains(err.Error(), srv.ServiceDN) {
		t.Errorf("err %v, want invalid credentials naming the bind DN", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong") && !strings.Contains(err.Error(), "credentials") {
		t.Errorf("the password appears in %v", err)
	}
}

// The server dies in the middle of a paged read: the read fails, whole.
func TestServerStoppedMidRead(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(10000)})
	src, err := New("dir", serviceConfig(srv, func(c *Config) { c.PageSize = 5 }), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, srv.Kill)
	ids, err := src.Read(t.Context())
	if err == nil {
		t.Fatalf("read %d identities from a server killed mid-read, and no error", len(ids))
	}
	if ids != nil {
		t.Errorf("a failed read returned %d identities", len(ids))
	}
}

func TestCancelClosesConnection(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(3000)})
	src, err := New("dir", serviceConfig(srv, func(c *Config) { c.PageSize = 5 }), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = src.Read(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("err %v after %v, want the deadline, promptly", err, time.Since(start))
	}
}

func TestGroupsAndLocks(t *testing.T) {
	people := ldaptest.People(6)
	people[0].Groups = []string{"staff", "admins"}
	people[1].Groups = []string{"staff"}
	people[2].Groups = nil
	people[2].Locked = true
	people[3].Mail = ""
	srv := ldaptest.Start(t, ldaptest.Options{People: people, Overlays: []string{ldaptest.OverlayMemberOf, ldaptest.OverlayPPolicy}})
	check := func(t *testing.T, ids []dsync.Identity) {
		got := byUID(ids)
		for i, want := range [][]string{{"admins", "staff"}, {"staff"}, nil} {
			g := slices.Clone(got[people[i].UID].Groups)
			slices.Sort(g)
			if !slices.Equal(g, want) {
				t.Errorf("%s groups %q, want %q", people[i].UID, g, want)
			}
		}
		if got[people[2].UID].Active {
			t.Errorf("locked %s is active", people[2].UID)
		}
		if !got[people[1].UID].Active {
			t.Errorf("unlocked %s is inactive", people[1].UID)
		}
		noMail := got[people[3].UID]
		if noMail.Valid() || !strings.Contains(strings.Join(noMail.Problems, ""), "no mail") || noMail.ID == "" {
			t.Errorf("entry without mail: %+v, want held with a problem naming it", noMail)
		}
	}
	t.Run("memberOf", func(t *testing.T) {
		ids, err := read(t, serviceConfig(srv, func(c *Config) { c.Groups.MemberOf = "memberOf"; c.Active.From = "ppolicy" }))
		if err != nil {
			t.Fatal(err)
		}
		check(t, ids)
	})
	t.Run("group search", func(t *testing.T) {
		ids, err := read(t, serviceConfig(srv, func(c *Config) {
			c.Groups.Search = &GroupSearch{BaseDN: "ou=groups," + srv.Suffix}
			c.Active.From = "ppolicy"
		}))
		if err != nil {
			t.Fatal(err)
		}
		check(t, ids)
	})
}

// A continuation reference is part of the directory idsync was not given: it fails the
// read, unless referrals: skip says those are other partitions.
func TestReferrals(t *testing.T) {
	suffix := ldaptest.DefaultSuffix
	ref := fmt.Sprintf("dn: ou=remote,ou=people,%s\nobjectClass: referral\nobjectClass: extensibleObject\nou: remote\nref: ldap://ldap.other.example.org/ou=people,dc=other,dc=org\n", suffix)
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(5), LDIF: []byte(ref)})
	_, err := read(t, serviceConfig(srv, nil))
	if err == nil || !strings.Contains(err.Error(), "ldap.other.example.org") || !strings.Contains(err.Error(), "referrals: skip") {
		t.Errorf("err %v, want the referral named and the way to skip it", err)
	}
	ids, err := read(t, serviceConfig(srv, func(c *Config) { c.Referrals = "skip" }))
	if err != nil || len(ids) != 5 {
		t.Errorf("with referrals: skip, read %d, %v; want 5", len(ids), err)
	}
}

// TestOverlappingSearches: two searches that both find some people list each person
// once; one search is not checked for repeats (a server returns an entry once).
func TestOverlappingSearches(t *testing.T) {
	people := ldaptest.People(12)
	srv := ldaptest.Start(t, ldaptest.Options{People: people})
	ids, err := read(t, serviceConfig(srv, func(c *Config) {
		c.Searches = append(c.Searches, Search{BaseDN: "ou=people," + srv.Suffix, Filter: "(uid=" + people[2].UID + ")"},
			Search{BaseDN: "OU=People," + srv.Suffix, Filter: "(objectClass=person)"})
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 12 || len(byUID(ids)) != 12 {
		t.Errorf("three overlapping searches gave %d identities (%d people), want 12", len(ids), len(byUID(ids)))
	}
}

// However many identities the engine says to expect, too few, none, about right or far
// too many, a read gives the same identities in the same order, across the blocks it
// gathers them in (4,096 each).
func TestExpectChangesNothing(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(5000)})
	cfg := serviceConfig(srv, func(c *Config) { c.PageSize = 1000 })
	src, err := New("dir", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var want []dsync.Identity
	for _, n := range []int{0, 100, 4096, 5000, 1_000_000} {
		src.Expect(n)
		ids, err := src.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 5000 {
			t.Fatalf("expecting %d: read %d identities, want 5000", n, len(ids))
		}
		if want == nil {
			want = ids
			continue
		}
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("expecting %d: the identities differ from a read expecting none", n)
		}
		if n == 1_000_000 && cap(ids) > 2*len(ids) {
			t.Errorf("expecting far too many: a slice of %d places kept for %d identities", cap(ids), len(ids))
		}
	}
}
