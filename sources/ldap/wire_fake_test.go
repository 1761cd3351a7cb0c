package ldap

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// fakeServer serves one connection with serve, which reads requests with next (a
// search's message ID and paging cookie) and writes responses with send.
func fakeServer(t *testing.T, serve func(next func() (int64, []byte), send func(...[]byte))) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		next := func() (int64, []byte) {
			p, err := ber.ReadPacket(r)
			if err != nil || len(p.Children) < 2 || p.Children[1].Tag != ldap.ApplicationSearchRequest {
				return -1, nil // the client gave up, or unbinds
			}
			var cookie []byte
			if len(p.Children) > 2 {
				for _, child := range p.Children[2].Children {
					if pc, err := ldap.DecodeControl(child); err == nil {
						if pg, ok := pc.(*ldap.ControlPaging); ok {
							cookie = pg.Cookie
						}
					}
				}
			}
			return p.Children[0].Value.(int64), cookie
		}
		send := func(msgs ...[]byte) {
			for _, m := range msgs {
				c.Write(m)
			}
		}
		serve(next, send)
	})
	return "ldap://" + ln.Addr().String() + "/"
}

// What a server may send that slapd will not on request: each fails the search, or
// for the first two, ends it as the source expects.
func TestConnFakeServer(t *testing.T) {
	entry := func(id int64, uid string) []byte {
		return encMessage(id, encEntry("uid="+uid+",dc=org", &ldap.EntryAttribute{Name: "uid", ByteValues: [][]byte{[]byte(uid)}}), nil)
	}
	done := func(id int64, code uint16, diag string, cookie []byte) []byte {
		var ctrls []byte
		if cookie != nil {
			ctrls = encControls(pagingControl(cookie))
		}
		return encMessage(id, encResult(tagSearchDone, code, "", diag), ctrls)
	}
	for _, tt := range []struct {
		name    string
		serve   func(next func() (int64, []byte), send func(...[]byte))
		entries int    // when no error
		err     string // in the error, when one is wanted
		code    uint16 // the error's result code, when one is wanted
	}{
		{name: "two pages", entries: 3, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), entry(id, "b"), done(id, 0, "", []byte("c1")))
			if id, cookie := next(); string(cookie) == "c1" {
				send(entry(id, "c"), done(id, 0, "", []byte{}))
			}
		}},
		{name: "a server that ignores paging", entries: 2, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), entry(id, "b"), done(id, 0, "", nil))
		}},
		{name: "size limit", err: "page 1: LDAP Result Code 4", code: ldap.LDAPResultSizeLimitExceeded, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), entry(id, "b"), done(id, ldap.LDAPResultSizeLimitExceeded, "", nil))
		}},
		{name: "time limit on page 2", err: "page 2: LDAP Result Code 3", code: ldap.LDAPResultTimeLimitExceeded, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), done(id, 0, "", []byte("c1")))
			id, _ = next()
			send(entry(id, "b"), done(id, ldap.LDAPResultTimeLimitExceeded, "", nil))
		}},
		{name: "the paged-results control dropped", err: "page 2: the server dropped the paged-results control", serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), done(id, 0, "", []byte("c1")))
			id, _ = next()
			send(entry(id, "b"), done(id, 0, "", nil))
		}},
		{name: "a notice of disconnection", err: "page 1: LDAP Result Code 52", code: ldap.LDAPResultUnavailable, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), encMessage(0, encResult(tagExtendedResponse, ldap.LDAPResultUnavailable, "", "shutting down"), nil))
		}},
		{name: "another message ID", err: "a response to message 2, want 1", code: ldap.ErrorUnexpectedResponse, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), entry(id+1, "b"), done(id, 0, "", nil))
		}},
		{name: "an intermediate response", err: "unexpected protocol operation 0x79", code: ldap.ErrorUnexpectedResponse, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), encMessage(id, tlv(0x79), nil), done(id, 0, "", nil))
		}},
		{name: "a bind response", err: "response 0x61 to a search", code: ldap.ErrorUnexpectedResponse, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), encMessage(id, encResult(tagBindResponse, 0, "", ""), nil), done(id, 0, "", nil))
		}},
		{name: "bytes after a message", err: "malformed", code: ldap.ErrorUnexpectedResponse, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(tlv(tagSequence, entry(id, "a")[2:], []byte{0x04, 0x00}), done(id, 0, "", nil))
		}},
		{name: "an indefinite length", err: "indefinite length", code: ldap.ErrorUnexpectedResponse, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			e := entry(id, "a")
			send(append([]byte{0x30, 0x80}, append(e[2:], 0, 0)...), done(id, 0, "", nil))
		}},
		{name: "a truncated message", err: "unexpected EOF", code: ldap.ErrorNetwork, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), entry(id, "b")[:9])
		}},
		{name: "closed between pages", err: "page 2: LDAP Result Code 200 \"Network Error\": the server closed the connection", code: ldap.ErrorNetwork, serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), done(id, 0, "", []byte("c1")))
			next()
		}},
		{name: "a reference, refused", err: "page 2: refused ldap://other/dc=org ldap://more/dc=org", serve: func(next func() (int64, []byte), send func(...[]byte)) {
			id, _ := next()
			send(entry(id, "a"), done(id, 0, "", []byte("c1")))
			id, _ = next()
			send(encMessage(id, encReference("ldap://other/dc=org"), nil), entry(id, "b"), encMessage(id, encReference("ldap://more/dc=org"), nil), done(id, 0, "", []byte("c2")))
			// The search ends on the refusal: this page is never read.
			id, _ = next()
			send(entry(id, "c"), done(id, 0, "", []byte{}))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := fakeServer(t, tt.serve)
			c, err := dialConn(t.Context(), url, nil, time.Second, 5*time.Second, false)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got []string
			req := &searchRequest{base: "dc=org", scope: ldap.ScopeWholeSubtree, filter: "(uid=*)", pageSize: 2}
			err = c.search(req, func(e *ldap.Entry) { got = append(got, e.DN) }, func(page int, refs []string) error {
				return fmt.Errorf("page %d: refused %s", page, strings.Join(refs, " "))
			})
			switch {
			case tt.err == "" && (err != nil || len(got) != tt.entries):
				t.Errorf("got %d entries, %v; want %d", len(got), err, tt.entries)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("got %v, want %q", err, tt.err)
			case tt.code != 0 && !ldap.IsErrorWithCode(err, tt.code):
				t.Errorf("got %v, want result code %d", err, tt.code)
			}
			if n := readers(); n != 0 {
				t.Errorf("%d readers running after the search", n)
			}
		})
	}
}
