package ldap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// conn is one connection to a directory server, for one read: dial (ldap:// or
// ldaps://), StartTLS, a simple bind, paged searches, unbind. Requests are encoded
// with asn1-ber and go-ldap's filter and control encoders; responses are read by
// readMessage and decodeMessage. Every error is an *ldap.Error, with the server's
// result code when the server gave one.
//
// Only one request is outstanding at a time: a search's next page is asked for when
// the last one's SearchResultDone arrives.
type conn struct {
	raw     net.Conn // the TCP connection
	c       net.Conn // raw, or TLS over it
	r       *bufio.Reader
	timeout time.Duration // for each operation, each page of a search included
	lastID  int64         // the message ID of the last request sent
}

// dialConn connects to an ldap:// or ldaps:// URL within dialTimeout (the TLS
// handshake included) and, when startTLS, upgrades the connection with StartTLS.
// Its errors say which of the two failed: "connect: ..." or "starttls: ...".
func dialConn(ctx context.Context, u string, tc *tls.Config, dialTimeout, timeout time.Duration, startTLS bool) (*conn, error) {
	c, err := connectURL(ctx, u, tc, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	c.timeout = timeout
	if startTLS {
		if err := c.startTLS(tc); err != nil {
			c.raw.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	return c, nil
}

func connectURL(ctx context.Context, u string, tc *tls.Config, dialTimeout time.Duration) (*conn, error) {
	p, err := url.Parse(u)
	if err != nil {
		return nil, ldap.NewError(ldap.ErrorNetwork, err)
	}
	port := p.Port()
	switch {
	case port != "":
	case p.Scheme == "ldap":
		port = ldap.DefaultLdapPort
	case p.Scheme == "ldaps":
		port = ldap.DefaultLdapsPort
	default:
		return nil, ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("unknown scheme %q", p.Scheme))
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.Hostname(), port))
	if err != nil {
		return nil, ldap.NewError(ldap.ErrorNetwork, err)
	}
	c := &conn{raw: raw, c: raw}
	if p.Scheme == "ldaps" {
		t := tls.Client(buffered(raw), tc)
		if err := t.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, ldap.NewError(ldap.ErrorNetwork, err)
		}
		c.c = t
	}
	if c.c == raw {
		c.r = bufio.NewReaderSize(socketReader(raw), 64<<10)
	} else {
		c.r = bufio.NewReaderSize(c.c, 64<<10)
	}
	return c, nil
}

// bufferedConn is a connection read through a buffer: TLS under it reads a record
// header, then the record, each with a read of its own, and an entry of a few hundred
// bytes is a record of its own. Without the buffer, reading 100,000 entries took
// some 15,000 read calls, each a wait in the poller when the socket was empty.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func buffered(c net.Conn) net.Conn {
	return bufferedConn{c, bufio.NewReaderSize(socketReader(c), 64<<10)}
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// startTLS asks for StartTLS (RFC 4511 4.14) and makes the TLS handshake.
func (c *conn) startTLS(tc *tls.Config) error {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Start TLS")
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "1.3.6.1.4.1.1466.20037", "TLS Extended Command"))
	m, err := c.roundTrip(op, tagExtendedResponse)
	if err != nil {
		return err
	}
	if err := m.result.err(); err != nil {
		return err
	}
	if c.r.Buffered() > 0 {
		return ldap.NewError(ldap.ErrorUnexpectedResponse, errors.New("the server sent more after agreeing to StartTLS"))
	}
	t := tls.Client(buffered(c.raw), tc)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := t.HandshakeContext(ctx); err != nil {
		return ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("TLS handshake failed: %w", err))
	}
	c.c = t
	c.r.Reset(t)
	return nil
}

// bind makes a simple bind. An empty password is refused here: the server would
// take it for an unauthenticated bind and say yes (RFC 4513 5.1.2).
func (c *conn) bind(dn, password string) error {
	if password == "" {
		return ldap.NewError(ldap.ErrorEmptyPassword, errors.New("ldap: empty password not allowed by the client"))
	}
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindRequest, nil, "Bind Request")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "Version"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "User Name"))
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, password, "Password"))
	m, err := c.roundTrip(op, tagBindResponse)
	if err != nil {
		return err
	}
	return m.result.err()
}

// kill closes the TCP connection at once, ending any read or write in progress: for
// a ctx that ends, or a search given up.
func (c *conn) kill() {
	c.raw.Close()
}

// Close unbinds (the server is not waited for) and closes the connection.
func (c *conn) Close() error {
	c.lastID++
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, c.lastID, "MessageID"))
	env.AppendChild(ber.Encode(ber.ClassApplication, ber.TypePrimitive, ldap.ApplicationUnbindRequest, nil, "Unbind Request"))
	c.c.SetWriteDeadline(time.Now().Add(time.Second))
	c.c.Write(env.Bytes())
	return c.c.Close()
}

// send sends a request with the next message ID, and gives the server the timeout
// from now to answer it.
func (c *conn) send(op *ber.Packet, controls ...ldap.Control) error {
	c.lastID++
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, c.lastID, "MessageID"))
	env.AppendChild(op)
	if len(controls) > 0 {
		cp := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
		for _, ctrl := range controls {
			cp.AppendChild(ctrl.Encode())
		}
		env.AppendChild(cp)
	}
	deadline := time.Now().Add(c.timeout)
	c.c.SetWriteDeadline(deadline)
	if _, err := c.c.Write(env.Bytes()); err != nil {
		return ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("send: %w", err))
	}
	c.c.SetReadDeadline(deadline)
	return nil
}

// receive reads the next message, which must answer the last request.
func (c *conn) receive() (*message, error) { return c.receiveIn(nil) }

// receiveIn is receive cutting an entry's slices from ar (see entryArena).
func (c *conn) receiveIn(ar *entryArena) (*message, error) {
	b, err := readMessage(c.r)
	switch {
	case errors.Is(err, errMalformed):
		return nil, ldap.NewError(ldap.ErrorUnexpectedResponse, err)
	case err == io.EOF:
		return nil, ldap.NewError(ldap.ErrorNetwork, errors.New("the server closed the connection"))
	case err != nil:
		return nil, ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("receive: %w", err))
	}
	m, err := decodeMessageIn(b, ar)
	if err != nil {
		return nil, ldap.NewError(ldap.ErrorUnexpectedResponse, err)
	}
	if m.id == 0 && m.op == tagExtendedResponse {
		// A Notice of Disconnection (RFC 4511 4.4.1): the server is closing.
		code := m.result.code
		if code == ldap.LDAPResultSuccess {
			code = ldap.ErrorNetwork
		}
		return nil, &ldap.Error{ResultCode: code, Err: fmt.Errorf("the server disconnected: %s", m.result.diagnostic)}
	}
	if m.id != c.lastID {
		return nil, ldap.NewError(ldap.ErrorUnexpectedResponse, fmt.Errorf("a response to message %d, want %d", m.id, c.lastID))
	}
	return m, nil
}

// roundTrip sends a request and reads its one response, which must be a want.
func (c *conn) roundTrip(op *ber.Packet, want byte) (*message, error) {
	if err := c.send(op); err != nil {
		return nil, err
	}
	m, err := c.receive()
	if err != nil {
		return nil, err
	}
	if m.op != want {
		return nil, ldap.NewError(ldap.ErrorUnexpectedResponse, fmt.Errorf("response 0x%02x, want 0x%02x", m.op, want))
	}
	return m, nil
}

// searchRequest is one paged search.
type searchRequest struct {
	base     string
	scope    int
	filter   string
	attrs    []string
	pageSize uint32
}

// sendSearch sends the request for one page.
func (c *conn) sendSearch(req *searchRequest, paging *ldap.ControlPaging) error {
	filter, err := ldap.CompileFilter(req.filter)
	if err != nil {
		return err
	}
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "Search Request")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, req.base, "Base DN"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, uint64(req.scope), "Scope"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, uint64(ldap.NeverDerefAliases), "Deref Aliases"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, uint64(0), "Size Limit"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, uint64(0), "Time Limit"))
	op.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "Types Only"))
	op.AppendChild(filter)
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes")
	for _, a := range req.attrs {
		attrs.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "Attribute"))
	}
	op.AppendChild(attrs)
	return c.send(op, paging)
}

// batch is what a search's reader hands to the caller: decoded entries; at a page's
// end, that page's continuation references; or the error that ended the search.
type batch struct {
	page    int
	entries []*ldap.Entry
	refs    []string
	err     error
	// arena holds the entries' slices; search hands it back to the reader once fn
	// has seen them.
	arena *entryArena
}

// batchSize is how many entries a batch holds at most: large enough that the
// channel costs nothing per entry, small enough that mapping starts early.
const batchSize = 128

// search runs a paged search to its last page, calling fn for every entry and refs
// for every page that held continuation references; an error from refs ends the
// search. Any error fails the whole search: fn may have seen some entries by then,
// which the caller must drop. fn must not keep an entry or its slices (their strings
// it may): they are reused for later entries once fn has returned.
//
// A goroutine reads and decodes while fn maps: it asks for the next page as soon as
// a page's SearchResultDone arrives, and hands entries over in batches. It ends on
// the last page or the first error; search returns only after it has.
func (c *conn) search(req *searchRequest, fn func(*ldap.Entry), refs func(page int, refs []string) error) error {
	ch := make(chan batch, 8)
	free := make(chan *entryArena, cap(ch)+2)
	go c.readPages(req, ch, free)
	var err error
	for b := range ch {
		switch {
		case err != nil: // drain: the reader ends on the closed connection
		case b.err != nil:
			err = b.err
		default:
			for _, e := range b.entries {
				fn(e)
			}
			if len(b.refs) > 0 {
				if err = refs(b.page, b.refs); err != nil {
					c.kill()
				}
			}
		}
		if b.arena != nil {
			select {
			case free <- b.arena:
			default:
			}
		}
	}
	return err
}

// takeArena returns an arena search has handed back, or a new one.
func takeArena(free <-chan *entryArena) *entryArena {
	select {
	case a := <-free:
		a.reset()
		return a
	default:
		return new(entryArena)
	}
}

// readPages reads a paged search's pages into ch, and closes it. Each batch's entries
// are cut from an arena of their own, taken from free when search has handed one back.
func (c *conn) readPages(req *searchRequest, ch chan<- batch, free <-chan *entryArena) {
	defer close(ch)
	page := 1
	fail := func(err error) { ch <- batch{err: fmt.Errorf("page %d: %w", page, err)} }
	paging := ldap.NewControlPaging(req.pageSize)
	if err := c.sendSearch(req, paging); err != nil {
		fail(err)
		return
	}
	var entries []*ldap.Entry
	var refs []string
	ar := takeArena(free)
	for {
		m, err := c.receiveIn(ar)
		if err != nil {
			fail(err)
			return
		}
		switch m.op {
		case tagSearchEntry:
			if entries == nil {
				entries = make([]*ldap.Entry, 0, batchSize)
			}
			entries = append(entries, m.entry)
			if len(entries) == batchSize {
				ch <- batch{page: page, entries: entries, arena: ar}
				entries, ar = nil, takeArena(free)
			}
			continue
		case tagSearchReference:
			refs = append(refs, m.refs...)
			continue
		case tagSearchDone:
		default:
			fail(ldap.NewError(ldap.ErrorUnexpectedResponse, fmt.Errorf("response 0x%02x to a search", m.op)))
			return
		}
		if err := m.result.err(); err != nil {
			fail(err)
			return
		}
		ctrls, err := decodeControls(m.controls)
		if err != nil {
			fail(ldap.NewError(ldap.ErrorUnexpectedResponse, err))
			return
		}
		ctrl, ok := ldap.FindControl(ctrls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		last := false
		switch {
		case !ok && page == 1:
			// A server that ignores paging returned everything in one answer, or
			// hit its size limit, an error above.
			last = true
		case !ok:
			fail(errors.New("the server dropped the paged-results control"))
			return
		case len(ctrl.Cookie) == 0:
			last = true
		default:
			// The next page's request goes out before this page is handed over.
			paging.SetCookie(ctrl.Cookie)
			if err := c.sendSearch(req, paging); err != nil {
				page++
				fail(err)
				return
			}
		}
		ch <- batch{page: page, entries: entries, refs: refs, arena: ar}
		if last {
			return
		}
		entries, refs, ar = nil, nil, takeArena(free)
		page++
	}
}
