package ldaptest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func dial(t *testing.T, url string, opts ...ldap.DialOpt) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(url, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetTimeout(10 * time.Second)
	t.Cleanup(func() { c.Close() })
	return c
}

// bind dials s and binds as dn.
func bind(t *testing.T, s *Server, dn, password string) *ldap.Conn {
	t.Helper()
	c := dial(t, s.URL)
	if err := c.Bind(dn, password); err != nil {
		t.Fatalf("bind as %s: %v", dn, err)
	}
	return c
}

func search(t *testing.T, c *ldap.Conn, base, filter string, attrs ...string) []*ldap.Entry {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		t.Fatalf("search %s under %s: %v", filter, base, err)
	}
	return res.Entries
}

func TestPlainServerHoldsPeople(t *testing.T) {
	people := People(250)
	start := time.Now()
	s := Start(t, Options{People: people})
	t.Logf("started with %d people in %v", len(people), time.Since(start))

	if !strings.HasPrefix(s.URL, "ldap://127.0.0.1:") || s.LDAPSURL != "" || s.CAFile != "" {
		t.Errorf("got URL %q, LDAPSURL %q, CAFile %q; want a loopback ldap:// URL only", s.URL, s.LDAPSURL, s.CAFile)
	}
	c := bind(t, s, s.ServiceDN, s.ServicePassword)
	got := search(t, c, "ou=people,"+s.Suffix, "(objectClass=inetOrgPerson)", "uid", "cn", "mail", "entryUUID")
	if len(got) != len(people) {
		t.Fatalf("got %d people, want %d", len(got), len(people))
	}
	// Entries come back in load order; check one with non-ASCII letters round-trips.
	for i, e := range got {
		p := people[i]
		if e.DN != PersonDN(s.Suffix, p.UID) || e.GetAttributeValue("cn") != p.CN || e.GetAttributeValue("mail") != p.Mail {
			t.Errorf("got %s cn=%q mail=%q, want %s cn=%q mail=%q", e.DN, e.GetAttributeValue("cn"), e.GetAttributeValue("mail"), PersonDN(s.Suffix, p.UID), p.CN, p.Mail)
		}
		if len(e.GetAttributeValue("entryUUID")) != 36 {
			t.Errorf("%s: got entryUUID %q, want one assigned by slapadd", e.DN, e.GetAttributeValue("entryUUID"))
		}
	}
	groups := search(t, c, "ou=groups,"+s.Suffix, "(objectClass=groupOfNames)", "cn", "member")
	if len(groups) != 9 { // team-00..team-07 and managers
		t.Errorf("got %d groups, want 9", len(groups))
	}
}

func TestTLS(t *testing.T) {
	s := Start(t, Options{TLS: true})
	if !strings.HasPrefix(s.LDAPSURL, "ldaps://127.0.0.1:") {
		t.Fatalf("got LDAPSURL %q, want ldaps://127.0.0.1:PORT/", s.LDAPSURL)
	}
	pemFile, err := os.ReadFile(s.CAFile)
	if err != nil || !bytes.Equal(pemFile, s.CAPEM) {
		t.Fatalf("CAFile %s: got %v, want the bytes of CAPEM", s.CAFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}

	for _, name := range []string{"127.0.0.1", "localhost"} {
		t.Run("ldaps "+name, func(t *testing.T) {
			c := dial(t, s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: name}))
			if err := c.Bind(s.ServiceDN, s.ServicePassword); err != nil {
				t.Fatalf("bind over ldaps: %v", err)
			}
		})
	}
	t.Run("starttls", func(t *testing.T) {
		c := dial(t, s.URL)
		if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
			t.Fatalf("StartTLS: %v", err)
		}
		if _, ok := c.TLSConnectionState(); !ok {
			t.Fatal("got no TLS state after StartTLS")
		}
		if err := c.Bind(s.ServiceDN, s.ServicePassword); err != nil {
			t.Fatalf("bind after StartTLS: %v", err)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		_, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "ldap.example.org"}))
		if err == nil || !strings.Contains(err.Error(), "certificate is valid for") {
			t.Errorf("ldaps with the wrong name: got %v, want a verification error", err)
		}
		c := dial(t, s.URL)
		if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "ldap.example.org"}); err == nil {
			t.Error("StartTLS with the wrong name: got no error, want a verification error")
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		_, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}))
		if err == nil || !strings.Contains(err.Error(), "unknown authority") {
			t.Errorf("ldaps with an empty pool: got %v, want an unknown authority error", err)
		}
	})
}

func TestServiceAccountReadsButCannotWrite(t *testing.T) {
	s := Start(t, Options{People: People(3)})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)
	if got := search(t, c, s.Suffix, "(uid=p000002)", "mail"); len(got) != 1 || got[0].GetAttributeValue("mail") != "p000002@example.org" {
		t.Fatalf("got %v, want p000002's entry with its mail", got)
	}
	if got := search(t, c, s.Suffix, "(objectClass=*)", "userPassword"); len(got) == 0 || got[0].GetAttributeValue("userPassword") != "" {
		t.Errorf("got %d entries, userPassword %q; want entries without passwords", len(got), got[0].GetAttributeValue("userPassword"))
	}

	mod := ldap.NewModifyRequest(PersonDN(s.Suffix, "p000001"), nil)
	mod.Replace("title", []string{"Dean"})
	if err := c.Modify(mod); !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("modify as the service account: got %v, want insufficientAccessRights", err)
	}
	add := ldap.NewAddRequest("uid=intruder,ou=people,"+s.Suffix, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("cn", []string{"x"})
	add.Attribute("sn", []string{"x"})
	if err := c.Add(add); !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("add as the service account: got %v, want insufficientAccessRights", err)
	}
	if err := c.Bind(s.ServiceDN, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind with a wrong password: got %v, want invalidCredentials", err)
	}

	// Anonymous users see nothing, not even that the suffix exists.
	anon := dial(t, s.URL)
	_, err := anon.Search(ldap.NewSearchRequest(s.Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(uid=*)", nil, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Errorf("anonymous search: got %v, want noSuchObject", err)
	}
}

func TestPPolicyLockedPerson(t *testing.T) {
	people := People(3)
	people[1].Locked = true
	s := Start(t, Options{Overlays: []string{OverlayPPolicy}, People: people})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)

	for _, p := range people {
		got := search(t, c, s.Suffix, "(uid="+p.UID+")", "pwdAccountLockedTime")
		if len(got) != 1 {
			t.Fatalf("%s: got %d entries, want 1", p.UID, len(got))
		}
		want := ""
		if p.Locked {
			want = "000001010000Z"
		}
		if v := got[0].GetAttributeValue("pwdAccountLockedTime"); v != want {
			t.Errorf("%s: got pwdAccountLockedTime %q, want %q", p.UID, v, want)
		}
		// operational: not among the user attributes
		all := search(t, c, s.Suffix, "(uid="+p.UID+")", "*")
		if v := all[0].GetAttributeValue("pwdAccountLockedTime"); v != "" {
			t.Errorf("%s: got pwdAccountLockedTime %q with *, want it only when asked by name", p.UID, v)
		}
	}

	// The default policy makes the lock real. (A password reset through slapd would clear
	// pwdAccountLockedTime, so the passwords are loaded with the entries.)
	s = Start(t, Options{Overlays: []string{OverlayPPolicy}, LDIF: []byte(fmt.Sprintf(`dn: uid=open,ou=people,%[1]s
objectClass: inetOrgPerson
uid: open
cn: Open
sn: Open
userPassword: pw

dn: uid=locked,ou=people,%[1]s
objectClass: inetOrgPerson
uid: locked
cn: Locked
sn: Locked
userPassword: pw
pwdAccountLockedTime: 000001010000Z
`, DefaultSuffix))})
	if err := dial(t, s.URL).Bind(PersonDN(s.Suffix, "open"), "pw"); err != nil {
		t.Errorf("bind as open: got %v, want success", err)
	}
	if err := dial(t, s.URL).Bind(PersonDN(s.Suffix, "locked"), "pw"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind as locked: got %v, want invalidCredentials", err)
	}
}

func TestMemberOf(t *testing.T) {
	people := People(50) // p000025 is in team-01 and managers, with p000050
	s := Start(t, Options{Overlays: []string{OverlayMemberOf}, People: people})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)

	memberOf := func(uid string) []string {
		t.Helper()
		got := search(t, c, s.Suffix, "(uid="+uid+")", "memberOf")
		if len(got) != 1 {
			t.Fatalf("%s: got %d entries, want 1", uid, len(got))
		}
		v := got[0].GetAttributeValues("memberOf")
		slices.Sort(v)
		return v
	}
	if got, want := memberOf("p000025"), []string{GroupDN(s.Suffix, "managers"), GroupDN(s.Suffix, "team-01")}; !slices.Equal(got, want) {
		t.Errorf("p000025 as loaded: got memberOf %q, want %q", got, want)
	}

	// The overlay keeps memberOf right from then on.
	s.Modify(t, fmt.Sprintf(`dn: %s
changetype: modify
delete: member
member: %s
`, GroupDN(s.Suffix, "managers"), PersonDN(s.Suffix, "p000025")))
	if got, want := memberOf("p000025"), []string{GroupDN(s.Suffix, "team-01")}; !slices.Equal(got, want) {
		t.Errorf("p000025 after leaving managers: got memberOf %q, want %q", got, want)
	}
	s.Modify(t, fmt.Sprintf(`dn: %s
changetype: add
objectClass: groupOfNames
cn: new
member: %s
`, GroupDN(s.Suffix, "new"), PersonDN(s.Suffix, "p000003")))
	if got, want := memberOf("p000003"), []string{GroupDN(s.Suffix, "new"), GroupDN(s.Suffix, "team-03")}; !slices.Equal(got, want) {
		t.Errorf("p000003 after a group was added: got memberOf %q, want %q", got, want)
	}
}

func TestModify(t *testing.T) {
	people := People(2)
	s := Start(t, Options{People: people})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)
	s.Modify(t, fmt.Sprintf(`dn: uid=new,ou=people,%[1]s
changetype: add
objectClass: inetOrgPerson
uid: new
cn: Néw Person
sn: Person

dn: %[2]s
changetype: modify
replace: title
title: Dean
-
delete: telephoneNumber

dn: %[3]s
changetype: delete
`, s.Suffix, PersonDN(s.Suffix, "p000001"), PersonDN(s.Suffix, "p000002")))

	var got []string
	for _, e := range search(t, c, "ou=people,"+s.Suffix, "(objectClass=inetOrgPerson)", "uid", "cn", "title", "telephoneNumber") {
		got = append(got, fmt.Sprintf("%s cn=%s title=%s tel=%s", e.GetAttributeValue("uid"), e.GetAttributeValue("cn"),
			e.GetAttributeValue("title"), e.GetAttributeValue("telephoneNumber")))
	}
	want := []string{"p000001 cn=" + people[0].CN + " title=Dean tel=", "new cn=Néw Person title= tel="}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestKillBreaksTheConnection(t *testing.T) {
	s := Start(t, Options{People: People(5)})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)
	search(t, c, s.Suffix, "(uid=*)")
	s.Kill()
	if _, err := c.Search(ldap.NewSearchRequest(s.Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(uid=*)", nil, nil)); err == nil {
		t.Error("search after Kill: got no error")
	}
	if _, err := ldap.DialURL(s.URL); err == nil {
		t.Error("dial after Kill: got no error")
	}
	s.Stop() // after Kill, and again in Cleanup: no-ops
}

func TestStopIsIdempotent(t *testing.T) {
	s := Start(t, Options{})
	s.Stop()
	s.Stop()
	if _, err := ldap.DialURL(s.URL); err == nil {
		t.Error("dial after Stop: got no error")
	}
}

func TestSizeLimitMimicsADMaxPageSize(t *testing.T) {
	const limit = 100
	people := People(3*limit + 7)
	s := Start(t, Options{People: people, SizeLimit: limit})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)
	req := func() *ldap.SearchRequest {
		return ldap.NewSearchRequest("ou=people,"+s.Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=inetOrgPerson)", []string{"uid"}, nil)
	}

	res, err := c.Search(req())
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || len(res.Entries) != limit {
		t.Errorf("plain search: got %d entries and %v, want %d and sizeLimitExceeded", len(res.Entries), err, limit)
	}

	for _, page := range []uint32{limit / 2, limit, 5 * limit} {
		res, err := c.SearchWithPaging(req(), page)
		if err != nil || len(res.Entries) != len(people) {
			t.Errorf("paged search, %d a page: got %d entries and %v, want %d", page, len(res.Entries), err, len(people))
		}
	}

	// Unlike AD, which would cap it at the limit, a page is as large as the client asks.
	r := req()
	r.Controls = []ldap.Control{ldap.NewControlPaging(2 * limit)}
	res, err = c.Search(r)
	if err != nil || len(res.Entries) != 2*limit {
		t.Errorf("first page of %d: got %d entries and %v, want %d", 2*limit, len(res.Entries), err, 2*limit)
	}

	admin := bind(t, s, s.AdminDN, s.AdminPassword)
	if got := search(t, admin, "ou=people,"+s.Suffix, "(objectClass=inetOrgPerson)", "uid"); len(got) != len(people) {
		t.Errorf("plain search as the rootdn: got %d entries, want all %d", len(got), len(people))
	}
}

func TestNoSizeLimitByDefault(t *testing.T) {
	people := People(600) // slapd's own default limit is 500
	s := Start(t, Options{People: people})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)
	if got := search(t, c, "ou=people,"+s.Suffix, "(objectClass=inetOrgPerson)", "uid"); len(got) != len(people) {
		t.Errorf("got %d entries, want %d", len(got), len(people))
	}
}

func TestOtherSuffix(t *testing.T) {
	s := Start(t, Options{Suffix: "o=Ünïversity", People: People(1)})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)
	if got := search(t, c, s.Suffix, "(objectClass=organization)", "o"); len(got) != 1 || got[0].GetAttributeValue("o") != "Ünïversity" {
		t.Errorf("got %v, want the o=Ünïversity entry", got)
	}
}

func TestLDIFOption(t *testing.T) {
	s := Start(t, Options{LDIF: []byte(fmt.Sprintf(`dn: uid=extra,ou=people,%s
objectClass: inetOrgPerson
uid: extra
cn: Extra
sn: Extra
`, DefaultSuffix))})
	c := bind(t, s, s.ServiceDN, s.ServicePassword)
	if got := search(t, c, s.Suffix, "(uid=extra)"); len(got) != 1 {
		t.Errorf("got %d entries, want the one from Options.LDIF", len(got))
	}
}

func TestPeopleAreDeterministic(t *testing.T) {
	a, b := People(1000), People(1000)
	if !bytes.Equal(PeopleLDIF(DefaultSuffix, a, true), PeopleLDIF(DefaultSuffix, b, true)) {
		t.Error("two calls gave different LDIF")
	}
	if a[0].UID != "p000001" || a[0].Mail != "p000001@example.org" || a[999].UID != "p001000" {
		t.Errorf("got uids %s, %s and mail %s; want p000001, p001000 and p000001@example.org", a[0].UID, a[999].UID, a[0].Mail)
	}
}

func TestLDIFEncoding(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"plain", "cn: plain\n"},
		{"Zoë", "cn:: Wm/Dqw==\n"},
		{" lead", "cn:: IGxlYWQ=\n"},
		{":colon", "cn:: OmNvbG9u\n"},
		{"<url", "cn:: PHVybA==\n"},
		{"trail ", "cn:: dHJhaWwg\n"},
		{"", ""},
	} {
		var b bytes.Buffer
		attr(&b, "cn", tc.value)
		if b.String() != tc.want {
			t.Errorf("attr(cn, %q): got %q, want %q", tc.value, b.String(), tc.want)
		}
	}
	if got, want := GroupDN("dc=x", "a,b+c"), `cn=a\,b\+c,ou=groups,dc=x`; got != want {
		t.Errorf("GroupDN: got %q, want %q", got, want)
	}
}

// BenchmarkLoad100k loads 100,000 people, with memberOf, as the first-sync benchmarks do
// (slapadd and start per iteration), and checks that a paged search reads them all back.
// It takes several seconds, so it is a benchmark:
//
//	go test -run '^$' -bench Load100k -benchtime 1x ./internal/ldaptest/
func BenchmarkLoad100k(b *testing.B) {
	const n = 100_000
	ldif := PeopleLDIF(DefaultSuffix, People(n), true)
	var s *Server
	for b.Loop() {
		s = Start(b, Options{Overlays: []string{OverlayMemberOf, OverlayPPolicy}, LDIF: ldif, SizeLimit: 1000})
	}
	b.StopTimer()
	if fi, err := os.Stat(filepath.Join(s.Dir, "db", "data.mdb")); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok { // the file is sparse: count its blocks
			b.ReportMetric(float64(st.Blocks*512)/(1<<20), "MB-mdb")
		}
	}
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.ServiceDN, s.ServicePassword); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	res, err := c.SearchWithPaging(ldap.NewSearchRequest("ou=people,"+s.Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=inetOrgPerson)", []string{"uid", "cn", "mail", "memberOf", "entryUUID"}, nil), 1000)
	if err != nil || len(res.Entries) != n {
		b.Fatalf("paged search: got %d entries and %v, want %d", len(res.Entries), err, n)
	}
	b.ReportMetric(time.Since(start).Seconds(), "s-paged-read")
}

func BenchmarkStartEmpty(b *testing.B) {
	for b.Loop() {
		s := Start(b, Options{TLS: true})
		s.Stop()
	}
}

func BenchmarkPeopleLDIF100k(b *testing.B) {
	people := People(100_000)
	for b.Loop() {
		PeopleLDIF(DefaultSuffix, people, true)
	}
}

// fatalTB records Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingToolSaysWhatToInstall(t *testing.T) {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		findTool(f, "slapd-not-installed")
	}()
	<-done
	if !strings.Contains(f.msg, "apt-get install slapd ldap-utils") {
		t.Errorf("got %q, want it to say apt-get install slapd ldap-utils", f.msg)
	}
}
