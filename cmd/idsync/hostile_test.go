package main

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/idsync/idsync/internal/ldaptest"
	"github.com/idsync/idsync/sinks/haplo/haplotest"
	dsync "github.com/idsync/idsync/sync"
)

// longName is a long but reasonable name: 1,000 characters, not all ASCII.
func longName() string {
	var b strings.Builder
	for utf8.RuneCountInString(b.String()) < 1000 {
		b.WriteString("Anne-Zoë Łukasz ")
	}
	s := []rune(b.String())[:1000]
	if s[len(s)-1] == ' ' {
		s[len(s)-1] = 'x'
	}
	return string(s)
}

// hostilePeople are people whose values a faithful sync must carry byte for byte:
// names in many scripts, bidi controls, joiners, unusual but valid emails, a long name.
// Logins and emails are unique; values hold no comma or quote, since row.String
// writes fields unquoted.
func hostilePeople() []row {
	people := []struct{ login, email, first, last string }{
		{"mohammed", "mohammed@example.org", "محمد", "عبد الله"},
		{"sarah", "sarah@example.org", "שרה", "כהן"},
		{"priya", "priya@example.org", "प्रिया", "शर्मा"},
		{"wei", "wei@example.org", "伟", "王"},
		{"sakura", "sakura@example.org", "さくら", "山田"},
		{"jimin", "jimin@example.org", "지민", "김"},
		{"Ольга", "olga@example.org", "Ольга", "Иванова"},
		{"eleni", "eleni@example.org", "Ελένη", "Παπαδοπούλου"},
		{"somchai", "somchai@example.org", "สมชาย", "ใจดี"},
		{"fox", "fox@example.org", "🦊", "👨‍👩‍👧‍👦"},
		{"rlo", "rlo@example.org", "\u202eAnn", "\u2066Lee\u2069 \u2067لي\u2069"},
		{"zwj", "zwj@example.org", "👩\u200d💻", "क\u094d\u200dष"},
		{"obrien", "o'brien@example.org", "Siobhán", "O'Brien"},
		{"tag", "a+tag@example.org", "Ann", "Tag"},
		{"sub", "user@sub.domain.example", "Sub", "Domain"},
		{"long", "long@example.org", "Ann", longName()},
	}
	rows := make([]row, len(people))
	for i, p := range people {
		rows[i] = row{id: fmt.Sprintf("H%02d", i+1), login: p.login, email: p.email, first: p.first, last: p.last,
			status: "active", teams: "engineering", title: "Lecturer"}
	}
	return rows
}

// checkFaithful asserts that Haplo holds each person's values exactly, on the account
// and on its profile.
func checkFaithful(t *testing.T, srv *haplotest.Server, people []row, byKey func(haplotest.User) string) {
	t.Helper()
	users := map[string]haplotest.User{}
	for _, u := range srv.Users() {
		users[byKey(u)] = u
	}
	for _, r := range people {
		u, ok := users[r.id]
		if !ok {
			t.Errorf("%s: no account", r.id)
			continue
		}
		if u.NameFirst != r.first || u.NameLast != r.last || u.Email != r.email || u.Tags["username"] != strings.ToLower(r.login) || u.Blocked {
			t.Errorf("%s: account %q %q %q username %q blocked %v; want %q %q %q %q, active", r.id,
				u.NameFirst, u.NameLast, u.Email, u.Tags["username"], u.Blocked, r.first, r.last, r.email, strings.ToLower(r.login))
		}
		p, ok := srv.Profile(u.Ref)
		if !ok {
			t.Errorf("%s: account links to %q, which is no profile", r.id, u.Ref)
			continue
		}
		for attr, want := range map[string]string{
			"dc:attribute:title":      r.first + " " + r.last,
			"std:attribute:email":     r.email,
			"std:attribute:job-title": r.title,
		} {
			if got := p.Attrs[attr]; len(got) != 1 || got[0] != want {
				t.Errorf("%s: profile %s %q, want [%q]", r.id, attr, got, want)
			}
		}
	}
}

// TestHostileValuesEndToEnd syncs hostile but valid values from CSV into Haplo, and a
// person with a rejected value beside them.
func TestHostileValuesEndToEnd(t *testing.T) {
	e := newEnv(t, 0, "")
	good := hostilePeople()
	// A quoted local part is valid in RFC 5322 but not to idsync (net/mail returns it
	// unquoted): that person is held. The field is quoted for the CSV file.
	rejected := row{id: "H99", login: "quoted", email: `"""quoted local""@example.org"`, first: "Q", last: "Local", status: "active", title: "Lecturer"}
	e.rows = append(append([]row{}, good...), rejected)
	e.writeCSV()
	rejectedLine := fmt.Sprintf("people.csv:%d", len(e.rows)+1)

	out := e.mustRun(exitOK, "--once")
	if !strings.Contains(out, rejectedLine) || !strings.Contains(out, "invalid email") {
		t.Errorf("first run printed:\n%s\nwant the rejected row named as %s with its invalid email", out, rejectedLine)
	}
	if got := applied(e.lastRun()); got[dsync.CreateProfile] != len(good) || got[dsync.CreateUser] != len(good) || len(got) != 2 {
		t.Errorf("first run applied %v, want %d profiles and %d users", got, len(good), len(good))
	}
	e.checkServer(len(good))
	checkFaithful(t, e.srv, good, func(u haplotest.User) string { return u.Tags["idsync_id"] })

	// Nothing changed: the second run plans nothing and sends nothing.
	before := totalRequests(e.srv)
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("second run applied %v, want nothing", got)
	}
	if got := totalRequests(e.srv) - before; got != 0 {
		t.Errorf("second run made %d requests, want 0", got)
	}

	// A synced person whose row turns bad is held as they are; nobody else is touched.
	e.rows[0].email = `"""mohammed""@example.org"`
	e.rows[0].last = "Changed"
	e.writeCSV()
	before = totalRequests(e.srv)
	out = e.mustRun(exitOK, "--once")
	if !strings.Contains(out, "people.csv:2") || !strings.Contains(out, "invalid email") {
		t.Errorf("run printed:\n%s\nwant people.csv:2 held for its invalid email", out)
	}
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("held row applied %v, want nothing", got)
	}
	if got := totalRequests(e.srv) - before; got != 0 {
		t.Errorf("held row made %d requests, want 0", got)
	}
	checkFaithful(t, e.srv, good, func(u haplotest.User) string { return u.Tags["idsync_id"] })
}

// TestHostileIDNEmailEndToEnd: an IDN email passes dsync.ValidEmail (net/mail takes
// UTF-8 domains), so the CSV source reads it faithfully. Haplo's email check is
// ASCII only; what idsync should do is hold the person with a message, not create a
// profile and then fail to create the account on every run.
func TestHostileIDNEmailEndToEnd(t *testing.T) {
	e := newEnv(t, 2, "")
	e.rows[1].email = "user@bücher.example"
	e.writeCSV()
	out := e.mustRun(exitOK, "--once")
	if !strings.Contains(out, "people.csv:3") || !strings.Contains(out, "user@bücher.example") {
		t.Errorf("run printed:\n%s\nwant people.csv:3 held for its email", out)
	}
	if got := applied(e.lastRun()); got[dsync.CreateUser] != 1 || got[dsync.CreateProfile] != 1 {
		t.Errorf("applied %v, want only the other person created", got)
	}
	if n := len(e.srv.Profiles()); n != 1 {
		t.Errorf("haplo has %d profiles, want 1: none for the held person", n)
	}
}

// TestHostileValuesLDAP syncs the same kind of values from a real slapd.
func TestHostileValuesLDAP(t *testing.T) {
	good := hostilePeople()
	var people []ldaptest.Person
	for i, r := range good {
		// uid is IA5 in slapd's schema: the login is the row's id.
		good[i].login = strings.ToLower(r.id)
		people = append(people, ldaptest.Person{UID: good[i].login, GivenName: r.first, SN: r.last, CN: r.first + " " + r.last,
			Mail: r.email, Title: r.title})
	}
	people = append(people, ldaptest.Person{UID: "h99", GivenName: "Q", SN: "Local", CN: "Q Local",
		Mail: `"quoted local"@example.org`, Title: "Lecturer"})
	e, dir := newLDAPEnv(t, people, 4)

	out := e.mustRun(exitOK, "--once")
	heldDN := ldaptest.PersonDN(dir.Suffix, "h99")
	if !strings.Contains(out, heldDN) || !strings.Contains(out, "invalid email") {
		t.Errorf("first run printed:\n%s\nwant %s held for its invalid email", out, heldDN)
	}
	if got := applied(e.lastRun()); got[dsync.CreateProfile] != len(good) || got[dsync.CreateUser] != len(good) || len(got) != 2 {
		t.Errorf("first run applied %v, want %d profiles and %d users", got, len(good), len(good))
	}
	if n := len(e.srv.Users()); n != len(good) {
		t.Errorf("haplo has %d users, want %d", n, len(good))
	}
	byLogin := map[string]string{}
	for _, r := range good {
		byLogin[r.login] = r.id
	}
	checkFaithful(t, e.srv, good, func(u haplotest.User) string { return byLogin[u.Tags["username"]] })

	before := totalRequests(e.srv)
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 || totalRequests(e.srv) != before {
		t.Errorf("second run applied %v with %d requests, want nothing", got, totalRequests(e.srv)-before)
	}
}
