package ldap

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/idsync/idsync/internal/ldaptest"
)

// The connection against a real slapd: the same entries as go-ldap's paged search,
// and every way a read can fail failing it whole. Then against fake servers, for
// what slapd will not do on request.

var recordSeeds = flag.Bool("record-seeds", false, "rewrite FuzzDecodeMessage's seed corpus from a real slapd's responses")

// wireDir is a directory with what the decoder must get right: memberOf, ppolicy
// locks, binary values (a 200 KB one among them), multi-valued attributes, and more
// entries than a page.
func wireDir(t *testing.T) *ldaptest.Server {
	t.Helper()
	people := ldaptest.People(40)
	people[3].Locked = true
	people[5].Groups = append(people[5].Groups, "admins", "staff")
	rng := rand.New(rand.NewPCG(1, 2))
	photo := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[0], b[1] = 0x00, 0xff // not text
		return base64.StdEncoding.EncodeToString(b)
	}
	var ldif strings.Builder
	for i, size := range []int{10, 3000, 200000} {
		fmt.Fprintf(&ldif, "dn: uid=bin%d,ou=people,%s\nobjectClass: inetOrgPerson\nuid: bin%d\ncn: Binary %d\ncn: Zweiter Name %d\nsn: Ødegård\n"+
			"mail: bin%d@example.org\nmail: bin%d.alias@example.org\ndescription: one\ndescription: two\ndescription: three, with ünïcode\n"+
			"jpegPhoto:: %s\njpegPhoto:: %s\n\n", i, ldaptest.DefaultSuffix, i, i, i, i, i, photo(size), photo(7))
	}
	return ldaptest.Start(t, ldaptest.Options{People: people, TLS: true, LDIF: []byte(ldif.String()),
		Overlays: []string{ldaptest.OverlayMemberOf, ldaptest.OverlayPPolicy}})
}

func testTLS(srv *ldaptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// transports are the three ways to a server.
var transports = []string{"ldap", "ldaps", "starttls"}

func transportURL(srv *ldaptest.Server, transport string) string {
	if transport == "ldaps" {
		return srv.LDAPSURL
	}
	return srv.URL
}

// dialTest connects and binds as the service account.
func dialTest(t *testing.T, srv *ldaptest.Server, transport string) *conn {
	t.Helper()
	c, err := dialConn(t.Context(), transportURL(srv, transport), testTLS(srv), 5*time.Second, 30*time.Second, transport == "starttls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.bind(srv.ServiceDN, srv.ServicePassword); err != nil {
		t.Fatal(err)
	}
	return c
}

// searchAll runs a paged search on c and returns every entry, or the error.
func searchAll(c *conn, base, filter string, attrs []string, pageSize int) ([]*ldap.Entry, error) {
	var got []*ldap.Entry
	req := &searchRequest{base: base, scope: ldap.ScopeWholeSubtree, filter: filter, attrs: attrs, pageSize: uint32(pageSize)}
	err := c.search(req, func(e *ldap.Entry) { got = append(got, copyEntry(e)) }, func(int, []string) error { return nil })
	return got, err
}

// copyEntry copies what search reuses once fn returns: the entry and its slices.
func copyEntry(e *ldap.Entry) *ldap.Entry {
	out := &ldap.Entry{DN: e.DN}
	for _, a := range e.Attributes {
		out.Attributes = append(out.Attributes, &ldap.EntryAttribute{Name: a.Name,
			Values: slices.Clone(a.Values), ByteValues: slices.Clone(a.ByteValues)})
	}
	return out
}

// readers counts the search reader goroutines running, after giving any that has
// just closed its channel a second to return.
func readers() int {
	buf := make([]byte, 1<<20)
	n := 0
	for range 100 {
		if n = strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*conn).readPages("); n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

func TestConnMatchesGoLDAP(t *testing.T) {
	srv := wireDir(t)
	base := "ou=people," + srv.Suffix
	cfg := serviceConfig(srv, func(c *Config) { c.Groups.MemberOf = "memberOf"; c.Active.From = "ppolicy" })
	cfg.setDefaults()
	mapped := append(newMapper(&cfg, "dir").attributes(), "jpegPhoto", "description")
	for _, transport := range transports {
		for _, attrs := range [][]string{mapped, {"*", "+"}} {
			t.Run(transport+" "+strings.Join(attrs, ","), func(t *testing.T) {
				lc, err := ldap.DialURL(transportURL(srv, transport), ldap.DialWithTLSConfig(testTLS(srv)))
				if err != nil {
					t.Fatal(err)
				}
				defer lc.Close()
				if transport == "starttls" {
					if err := lc.StartTLS(testTLS(srv)); err != nil {
						t.Fatal(err)
					}
				}
				if err := lc.Bind(srv.ServiceDN, srv.ServicePassword); err != nil {
					t.Fatal(err)
				}
				req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=inetOrgPerson)", attrs, nil)
				want, err := lc.SearchWithPaging(req, 7)
				if err != nil {
					t.Fatal(err)
				}

				got, err := searchAll(dialTest(t, srv, transport), base, "(objectClass=inetOrgPerson)", attrs, 7)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 43 || len(want.Entries) != 43 {
					t.Errorf("got %d entries, go-ldap %d; want 43", len(got), len(want.Entries))
				}
				if d := cmp.Diff(got, want.Entries, cmpShort); d != "" {
					t.Errorf("entries differ from go-ldap's (-got +go-ldap):\n%.3000s", d)
				}
				var photo, locked, memberOf int
				for _, e := range got {
					if a := values(e, "jpegPhoto"); a != nil && len(a.ByteValues) == 2 && len(a.ByteValues[0]) >= 10 {
						photo++
					}
					if values(e, "pwdAccountLockedTime") != nil {
						locked++
					}
					if a := values(e, "memberOf"); a != nil && len(a.Values) > 1 {
						memberOf++
					}
				}
				if photo != 3 || locked != 1 || memberOf == 0 {
					t.Errorf("%d entries with photos, %d locked, %d in several groups: want 3, 1 and some: the directory is not what the test means", photo, locked, memberOf)
				}
			})
		}
	}
	if n := readers(); n != 0 {
		t.Errorf("%d readers running after the searches", n)
	}
}

func TestConnErrors(t *testing.T) {
	srv := wireDir(t)
	ctx := t.Context()
	t.Run("wrong password", func(t *testing.T) {
		c, err := dialConn(ctx, srv.URL, nil, time.Second, 5*time.Second, false)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.bind(srv.ServiceDN, "wrong")
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("got %v, want result code 49", err)
		}
	})
	t.Run("empty password", func(t *testing.T) {
		c, err := dialConn(ctx, srv.URL, nil, time.Second, 5*time.Second, false)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.bind(srv.ServiceDN, ""); !ldap.IsErrorWithCode(err, ldap.ErrorEmptyPassword) {
			t.Errorf("got %v, want the client's refusal of an unauthenticated bind", err)
		}
	})
	t.Run("no such base", func(t *testing.T) {
		_, err := searchAll(dialTest(t, srv, "ldap"), "ou=nowhere,"+srv.Suffix, "(objectClass=*)", nil, 7)
		var le *ldap.Error
		if !errors.As(err, &le) || le.ResultCode != ldap.LDAPResultNoSuchObject || le.MatchedDN != srv.Suffix || !strings.HasPrefix(err.Error(), "page 1: ") {
			t.Errorf("got %v, want noSuchObject (32) on page 1 matching %s", err, srv.Suffix)
		}
	})
	t.Run("bad filter", func(t *testing.T) {
		_, err := searchAll(dialTest(t, srv, "ldap"), srv.Suffix, "(cn=x", nil, 7)
		if !ldap.IsErrorWithCode(err, ldap.ErrorFilterCompile) {
			t.Errorf("got %v, want a filter error", err)
		}
	})
	t.Run("search after a failed search", func(t *testing.T) {
		c := dialTest(t, srv, "ldap")
		if _, err := searchAll(c, "ou=nowhere,"+srv.Suffix, "(objectClass=*)", nil, 7); err == nil {
			t.Fatal("no error")
		}
		got, err := searchAll(c, "ou=people,"+srv.Suffix, "(objectClass=inetOrgPerson)", []string{"uid"}, 7)
		if err != nil || len(got) != 43 {
			t.Errorf("got %d entries, %v; want 43", len(got), err)
		}
	})
	for _, transport := range []string{"ldaps", "starttls"} {
		t.Run(transport+" unknown CA", func(t *testing.T) {
			_, err := dialConn(ctx, transportURL(srv, transport), &tls.Config{ServerName: "127.0.0.1"}, time.Second, 5*time.Second, transport == "starttls")
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) || !final(err) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Errorf("got %v, want an unknown authority, final", err)
			}
		})
	}
	t.Run("source: wrong password", func(t *testing.T) {
		_, err := read(t, serviceConfig(srv, func(c *Config) { c.StartTLS = true; c.CAFile = srv.CAFile; c.BindPassword = "wrong" }))
		want := fmt.Sprintf("%s: bind as %s: invalid credentials (check bind_dn and the password): credentials refused", srv.URL, srv.ServiceDN)
		if err == nil || err.Error() != want || !errors.Is(err, errCredentials) {
			t.Errorf("got %v, want %s", err, want)
		}
	})
	t.Run("source: starttls unknown CA is final", func(t *testing.T) {
		_, err := read(t, serviceConfig(srv, func(c *Config) {
			c.URL = ""
			c.URLs = []string{srv.URL, "ldap://127.0.0.1:1/"}
			c.StartTLS = true
		}))
		if err == nil || !strings.Contains(err.Error(), "starttls: ") || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "127.0.0.1:1/") {
			t.Errorf("err %v, want a certificate error and no try of the next server", err)
		}
	})
}

// proxy forwards connections to a server, reading the server's side message by
// message: it records what the server said, and can cut the connection after some
// messages and bytes of the next, or stop forwarding there and hold it open.
type proxy struct {
	url string
	// cutAfter messages (the bind response is the first) and extra bytes of the
	// next, the server's side stops: closed, or held with hold. Negative: never.
	cutAfter, extra int
	hold            bool
	stopped         chan struct{} // closed at the cut

	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	msgs [][]byte
	open []net.Conn
}

func startProxy(t *testing.T, target string, cutAfter, extra int, hold bool) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{url: "ldap://" + ln.Addr().String() + "/", cutAfter: cutAfter, extra: extra, hold: hold, stopped: make(chan struct{}), ln: ln}
	addr := strings.TrimSuffix(strings.TrimPrefix(target, "ldap://"), "/")
	p.wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.open = append(p.open, client, server)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(server, client); server.Close() })
			p.wg.Go(func() { p.forward(client, server) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) forward(client, server net.Conn) {
	r := bufio.NewReader(server)
	for n := 0; ; n++ {
		m, err := readMessage(r)
		if err != nil {
			client.Close()
			return
		}
		if n == p.cutAfter {
			client.Write(m[:min(p.extra, len(m))])
			close(p.stopped)
			if !p.hold {
				client.Close()
				server.Close()
			}
			return
		}
		p.mu.Lock()
		p.msgs = append(p.msgs, m)
		p.mu.Unlock()
		if _, err := client.Write(m); err != nil {
			return
		}
	}
}

// A connection cut in the middle of a read fails it, wherever the cut falls: inside
// a message, between two, between two pages.
func TestReadCut(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(60)})
	// Messages: the bind response, then for each page of 7, 7 entries and a done;
	// the ninth page has 4 entries (messages 65-68) and its done (69).
	for _, tt := range []struct {
		name            string
		cutAfter, extra int
		page            string
	}{
		{"inside the first entry's header", 1, 1, "page 1: "},
		{"inside an entry", 4, 30, "page 1: "},
		{"between two entries", 4, 0, "page 1: "},
		{"before a page's done", 8, 0, "page 1: "},
		{"inside a page's done", 8, 5, "page 1: "},
		{"between two pages", 9, 0, "page 2: "},
		{"inside the eighth page's entries", 60, 0, "page 8: "},
		{"between the last two pages", 65, 0, "page 9: "},
		{"before the last page's done", 69, 0, "page 9: "},
		{"inside the last page's done", 69, 9, "page 9: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, srv.URL, tt.cutAfter, tt.extra, false)
			ids, err := read(t, serviceConfig(srv, func(c *Config) { c.URL = p.url }))
			if err == nil || ids != nil {
				t.Fatalf("read %d identities, err %v; want an error and nothing", len(ids), err)
			}
			if !strings.Contains(err.Error(), tt.page) || strings.Contains(err.Error(), "read stopped") {
				t.Errorf("err %v, want the failure on %q", err, tt.page)
			}
			if n := readers(); n != 0 {
				t.Errorf("%d readers running after the read", n)
			}
		})
	}
	t.Run("no cut", func(t *testing.T) {
		p := startProxy(t, srv.URL, -1, 0, false)
		ids, err := read(t, serviceConfig(srv, func(c *Config) { c.URL = p.url }))
		if err != nil || len(ids) != 60 {
			t.Fatalf("read %d identities, err %v; want 60", len(ids), err)
		}
		p.mu.Lock() // the proxy's goroutine wrote it; the socket between is no sync for the race detector
		n := len(p.msgs)
		p.mu.Unlock()
		if n != 1+60+9 {
			t.Errorf("the proxy saw %d messages, want 70: the cut points above are off", n)
		}
	})
}

// A ctx cancelled while the server is silent in the middle of a page ends the read
// at once, as "read stopped", and its reader with it.
func TestCancelMidRead(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(60)})
	p := startProxy(t, srv.URL, 20, 10, true)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-p.stopped
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	src, err := New("dir", serviceConfig(srv, func(c *Config) { c.URL = p.url }), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ids, err := src.Read(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "read stopped") || ids != nil || time.Since(start) > 5*time.Second {
		t.Errorf("read %d, err %v after %v; want read stopped, promptly", len(ids), err, time.Since(start))
	}
	if n := readers(); n != 0 {
		t.Errorf("%d readers running after the read", n)
	}
}

// The per-operation timeout ends a page the server does not finish.
func TestReadTimeout(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(60)})
	p := startProxy(t, srv.URL, 20, 0, true)
	start := time.Now()
	ids, err := read(t, serviceConfig(srv, func(c *Config) { c.URL = p.url; c.Timeout = 300 * time.Millisecond }))
	if !errors.Is(err, os.ErrDeadlineExceeded) || ids != nil || !strings.Contains(err.Error(), "page 3: ") || time.Since(start) > 5*time.Second {
		t.Errorf("read %d, err %v after %v; want a timeout on page 3", len(ids), err, time.Since(start))
	}
}

// TestRecordSeeds writes real slapd responses as FuzzDecodeMessage's seed corpus,
// with -record-seeds.
func TestRecordSeeds(t *testing.T) {
	if !*recordSeeds {
		t.Skip("with -record-seeds only")
	}
	srv := wireDir(t)
	p := startProxy(t, srv.URL, -1, 0, false)
	c, err := dialConn(t.Context(), p.url, nil, time.Second, 5*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.bind(srv.ServiceDN, srv.ServicePassword); err != nil {
		t.Fatal(err)
	}
	if _, err := searchAll(c, "ou=people,"+srv.Suffix, "(uid=bin1)", []string{"*", "+"}, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := searchAll(c, "ou=people,"+srv.Suffix, "(objectClass=inetOrgPerson)", []string{"uid", "memberOf", "pwdAccountLockedTime"}, 3); err != nil {
		t.Fatal(err)
	}
	searchAll(c, "ou=nowhere,"+srv.Suffix, "(objectClass=*)", nil, 7)
	c.bind(srv.ServiceDN, "wrong")
	c.Close()
	sc, err := dialConn(t.Context(), srv.URL, testTLS(srv), time.Second, 5*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "")
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "1.3.6.1.4.1.1466.20037", ""))
	sc.send(op)
	starttls, err := readMessage(sc.r)
	if err != nil {
		t.Fatal(err)
	}
	sc.kill()
	p.mu.Lock()
	msgs := p.msgs
	p.mu.Unlock()

	// A continuation reference, from TestReferrals' directory.
	ref := fmt.Sprintf("dn: ou=remote,ou=people,%s\nobjectClass: referral\nobjectClass: extensibleObject\nou: remote\nref: ldap://ldap.other.example.org/ou=people,dc=other,dc=org\n", ldaptest.DefaultSuffix)
	rsrv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(1), LDIF: []byte(ref)})
	rp := startProxy(t, rsrv.URL, -1, 0, false)
	rc, err := dialConn(t.Context(), rp.url, nil, time.Second, 5*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.bind(rsrv.ServiceDN, rsrv.ServicePassword); err != nil {
		t.Fatal(err)
	}
	if _, err := searchAll(rc, "ou=people,"+rsrv.Suffix, "(objectClass=*)", []string{"uid"}, 7); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	rp.mu.Lock()
	var reference []byte
	for _, m := range rp.msgs {
		if d, err := decodeMessage(m); err == nil && d.op == tagSearchReference {
			reference = m
		}
	}
	rp.mu.Unlock()
	if reference == nil {
		t.Fatal("no continuation reference")
	}

	// The bind, the entry with photos, its done, three person entries, a done with a
	// cookie, the last done, noSuchObject, the refused bind, StartTLS's answer, a
	// continuation reference.
	n := len(msgs)
	writeSeeds(t, "slapd", [][]byte{msgs[0], msgs[1], msgs[2], msgs[3], msgs[4], msgs[5], msgs[6], msgs[n-3], msgs[n-2], msgs[n-1], starttls, reference})
}

// An identity keeps none of its entry's message: people in 1,500 groups each (90 KB
// of memberOf values) leave identities of a few hundred bytes.
func TestIdentitiesKeepNoMessage(t *testing.T) {
	people := ldaptest.People(40)
	groups := make([]string, 1500)
	for i := range groups {
		groups[i] = fmt.Sprintf("research-group-%04d", i)
	}
	for i := range people {
		people[i].Groups = groups
	}
	srv := ldaptest.Start(t, ldaptest.Options{People: people, Overlays: []string{ldaptest.OverlayMemberOf}})
	src, err := New("dir", serviceConfig(srv, func(c *Config) { c.Groups.MemberOf = "memberOf" }), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	ids, err := src.Read(t.Context())
	if err != nil || len(ids) != 40 || len(ids[0].Groups) != 1500 {
		t.Fatalf("read %d identities, err %v", len(ids), err)
	}
	kept := int64(heap()) - int64(before)
	runtime.KeepAlive(ids)
	// The messages are 40 × ~90 KB; the identities, their group names shared, ~40 ×
	// (1,500 × 16 bytes of slice and ~300 bytes of fields).
	t.Logf("%d KB kept", kept>>10)
	if kept > 1500<<10 {
		t.Errorf("%d KB kept after the read, want under 1,500: the identities keep their messages", kept>>10)
	}
}

// Over many batches, each cut from an arena that search hands back and the reader
// reuses, every entry is still go-ldap's, page after page.
func TestConnArenasMatchGoLDAP(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.Options{People: ldaptest.People(3000), Overlays: []string{ldaptest.OverlayMemberOf}})
	base := "ou=people," + srv.Suffix
	lc, err := ldap.DialURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	if err := lc.Bind(srv.ServiceDN, srv.ServicePassword); err != nil {
		t.Fatal(err)
	}
	attrs := []string{"*", "+"}
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=inetOrgPerson)", attrs, nil)
	want, err := lc.SearchWithPaging(req, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, pageSize := range []int{1000, 50} {
		got, err := searchAll(dialTest(t, srv, "ldap"), base, "(objectClass=inetOrgPerson)", attrs, pageSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3000 || len(want.Entries) != 3000 {
			t.Fatalf("pages of %d: got %d entries, go-ldap %d; want 3000", pageSize, len(got), len(want.Entries))
		}
		if d := cmp.Diff(got, want.Entries, cmpShort); d != "" {
			t.Errorf("pages of %d: entries differ from go-ldap's (-got +go-ldap):\n%.3000s", pageSize, d)
		}
	}
}
