// Package ldap implements a sync.Source over LDAP directories (OpenLDAP, Active
// Directory): every search paged, the whole read or an error, entries mapped to
// identities, groups from memberOf or a group search. go-ldap provides the entries'
// type, DNs, filters, controls and errors; the connection and its BER reader are
// this package's own (wire.go, message.go), for speed.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

// Source reads people from one directory.
type Source struct {
	// expect is how many identities the last full read gave (see Expect).
	expect atomic.Int64

	name     string
	cfg      Config
	password secret.Secret
	tls      *tls.Config
	log      *slog.Logger
	now      func() time.Time
	// overlap is how far before the newest modifyTimestamp, beyond the read's own
	// duration, the next delta starts (see delta.go).
	overlap time.Duration
	// memberRange, when positive, asks a group search for its first range of member
	// values (member;range=0-<memberRange-1>) rather than for them all: Samba has no
	// MaxValRange and sends ranges only when asked, so tests set it to read large
	// groups in ranges as a Windows DC sends them.
	memberRange int
}

var _ dsync.DeltaSource = (*Source)(nil)

// New builds a source, reading the password and CA files. It does not dial.
func New(name string, cfg Config, log *slog.Logger) (*Source, error) {
	if errs := cfg.Validate("ldap"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.setDefaults()
	s := &Source{name: name, cfg: cfg, log: log, now: time.Now, overlap: time.Minute}
	if !cfg.Anonymous {
		pw, err := secret.Load("bind_password", cfg.BindPassword, cfg.BindPasswordFile)
		if err != nil {
			return nil, err
		}
		s.password = pw
	}
	s.tls = &tls.Config{ServerName: cfg.ServerName, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", cfg.CAFile)
		}
		s.tls.RootCAs = pool
	}
	if cfg.InsecureSkipVerify {
		log.Warn("insecure_skip_verify is set: the directory's certificate is not checked")
	}
	if cfg.Incremental && cfg.Groups.MemberOf != "" {
		log.Info("incremental reads see a change of group membership when the person's own entry changes; one made only to the group (the memberof overlay, Active Directory's memberOf) waits for the next full read", "full_every", cfg.FullEvery)
	}
	return s, nil
}

// Read connects, binds, and runs every search to its last page. Any error (a page,
// a size or time limit, an unfollowed referral, a dropped connection, ctx) fails the
// whole read: a partial list must never look like people who left.
func (s *Source) Read(ctx context.Context) ([]dsync.Identity, error) {
	r, err := s.read(ctx, "", func(string) string { return "" })
	return r.ids, err
}

// Expect takes the number of identities the last full read gave, so that the next
// one can hold them in one slice from the start: growing a slice of 100,000 identities
// copies them many times over, and gathering them in blocks (see chunks) copies them
// once at the end, 0.16 s of a 1.3 s read on the benchmark machine, write barriers and
// page faults included.
func (s *Source) Expect(n int) { s.expect.Store(int64(n)) }

// readResult is what one read found.
type readResult struct {
	ids    []dsync.Identity
	server string // the URL read from, redacted
	// newest is the latest modifyTimestamp among the entries read, when asked for.
	newest time.Time
	// usn is the DC's highestCommittedUSN when the read began, when incremental_by is
	// uSNChanged; server then names the DC (see dcIdentity).
	usn int64
}

// read reads the people whose entries match the searches' filters and, when since
// gives one for the server connected to, that filter too.
func (s *Source) read(ctx context.Context, stamp string, since func(server string) string) (readResult, error) {
	var r readResult
	conn, server, err := s.connect(ctx)
	if err != nil {
		return r, err
	}
	r.server = server
	defer conn.Close()
	// The connection's calls take no context: closing the connection ends them.
	stop := context.AfterFunc(ctx, conn.kill)
	defer stop()
	wrap := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: read stopped: %w", server, ctx.Err())
		}
		return fmt.Errorf("%s: %w", server, err)
	}
	if s.cfg.Incremental && s.cfg.IncrementalBy == usnAttribute {
		if r.server, r.usn, err = s.dcIdentity(conn); err != nil {
			return readResult{}, wrap(err)
		}
	}

	m := newMapper(&s.cfg, s.name)
	attrs := m.attributes()
	if stamp != "" {
		attrs = append(attrs, stamp)
	}
	extra := since(r.server)
	// Overlapping searches can return an entry twice; one search returns each entry
	// once, and needs no index of 100,000 lowercased DNs.
	var seen map[string]bool
	if len(s.cfg.Searches) > 1 {
		seen = make(map[string]bool)
	}
	var d detacher
	var got chunks
	if n := s.expect.Load(); n > 0 && extra == "" { // a delta reads a few
		got.cur = make([]dsync.Identity, 0, n+n/16+16)
	}
	for _, sr := range s.cfg.Searches {
		filter := sr.Filter
		if extra != "" {
			filter = "(&" + sr.Filter + extra + ")"
		}
		err := s.search(conn, sr.BaseDN, filter, sr.Scope, attrs, func(e *ldap.Entry) {
			if seen != nil {
				dn := strings.ToLower(e.DN)
				if seen[dn] { // overlapping searches: the same entry once
					return
				}
				seen[dn] = true
			}
			id := got.next()
			m.fill(id, e)
			d.detach(id)
			if stamp != "" {
				if t, err := parseTime(first(e, stamp)); err == nil && t.After(r.newest) {
					r.newest = t
				}
			}
		})
		if err != nil {
			return readResult{}, wrap(fmt.Errorf("search %s %s: %w", sr.BaseDN, filter, err))
		}
	}
	r.ids = got.all()
	if g := s.cfg.Groups.Search; g != nil {
		members := newMembership(s.cfg.Groups.Name, g.MemberAttribute)
		var err error
		if g.Nested {
			err = s.nestedMembers(conn, g, members)
		} else {
			err = s.groupMembers(conn, g, members)
		}
		if err != nil {
			return readResult{}, wrap(err)
		}
		members.assign(r.ids)
	}
	for i := range r.ids {
		dsync.Normalize(&r.ids[i])
	}
	s.log.Debug("read", "server", server, "entries", len(r.ids), "filter", extra)
	return r, nil
}

// chunks gathers identities in blocks, and copies them into one slice once, at the
// end: appending 100,000 identities to one slice would copy them some twenty times as
// it grows, a fifth of a no-op run's read in CPU time. Its first block may be given a
// capacity (see Expect): when the identities fit, all returns it without a copy.
type chunks struct {
	full [][]dsync.Identity
	cur  []dsync.Identity
}

const chunkSize = 4096

// next returns a new identity's place, its zero value.
func (c *chunks) next() *dsync.Identity {
	if len(c.cur) == cap(c.cur) {
		if c.cur != nil {
			c.full = append(c.full, c.cur)
		}
		c.cur = make([]dsync.Identity, 0, chunkSize)
	}
	c.cur = c.cur[:len(c.cur)+1]
	return &c.cur[len(c.cur)-1]
}

// all returns every identity in the order given, in one slice: a small read keeps no
// block of 4,096 places (768 KB).
func (c *chunks) all() []dsync.Identity {
	if len(c.full) == 0 && len(c.cur) > chunkSize/2 && len(c.cur) >= cap(c.cur)/2 {
		return c.cur // the expected size, or near enough
	}
	out := make([]dsync.Identity, 0, len(c.full)*chunkSize+len(c.cur))
	for _, b := range c.full {
		out = append(out, b...)
	}
	return append(out, c.cur...)
}

// detacher copies the strings an identity keeps out of its entry. They are
// substrings of the entry's whole message (see message.go), and would keep it alive,
// memberOf values and photos included, as long as the identity.
type detacher struct {
	fields []*string // scratch, reused
}

// detach gives the identity's own strings (its groups' names are the mapper's, one
// per group) one new backing string.
func (d *detacher) detach(id *dsync.Identity) {
	d.fields = append(d.fields[:0], &id.ID, &id.Username, &id.Email, &id.FirstName, &id.LastName, &id.DisplayName, &id.Origin)
	for _, a := range id.Attributes {
		for i := range a.Values {
			d.fields = append(d.fields, &a.Values[i])
		}
	}
	for i := range id.Problems {
		d.fields = append(d.fields, &id.Problems[i])
	}
	n := 0
	for _, f := range d.fields {
		n += len(*f)
	}
	var b strings.Builder
	b.Grow(n)
	for _, f := range d.fields {
		b.WriteString(*f)
	}
	all, off := b.String(), 0
	for _, f := range d.fields {
		*f, off = all[off:off+len(*f)], off+len(*f)
	}
	clear(d.fields)
}

// connect tries each URL in turn and binds. A certificate or credentials problem is
// final: the next server would say the same.
func (s *Source) connect(ctx context.Context) (*conn, string, error) {
	var errs []error
	for _, u := range s.cfg.URLs {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		conn, err := s.dial(ctx, u)
		if err == nil {
			stop := context.AfterFunc(ctx, conn.kill)
			err = s.bind(conn)
			stop()
			if err == nil {
				return conn, redact(u), nil
			}
			conn.Close()
		}
		err = fmt.Errorf("%s: %w", redact(u), err)
		if final(err) {
			return nil, "", err
		}
		s.log.Warn("directory server unavailable, trying the next", "server", redact(u), "err", err)
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

func (s *Source) dial(ctx context.Context, u string) (*conn, error) {
	tc := s.tls.Clone()
	if tc.ServerName == "" {
		if p, err := url.Parse(u); err == nil {
			tc.ServerName = p.Hostname()
		}
	}
	return dialConn(ctx, u, tc, s.cfg.DialTimeout, s.cfg.Timeout, s.cfg.StartTLS)
}

func (s *Source) bind(conn *conn) error {
	if s.cfg.Anonymous {
		return nil
	}
	err := conn.bind(s.cfg.BindDN, s.password.Reveal())
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return fmt.Errorf("bind as %s: invalid credentials (check bind_dn and the password)%s: %w", s.cfg.BindDN, adReason(err), errCredentials)
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultStrongAuthRequired) {
		// Active Directory (and Samba) refuse a simple bind on a connection that is
		// not encrypted, as a DC hardened against LDAP relay does.
		return fmt.Errorf("bind as %s: the server requires an encrypted connection for a simple bind: use an ldaps:// URL, or start_tls: true: %w", s.cfg.BindDN, err)
	}
	if err != nil {
		return fmt.Errorf("bind as %s: %w", s.cfg.BindDN, err)
	}
	return nil
}

var errCredentials = errors.New("credentials refused")

// final reports whether an error would be the same on every server.
func final(err error) bool {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	return errors.Is(err, errCredentials) || errors.As(err, &unknownCA) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}

// adReason turns Active Directory's data code in a bind error into words.
func adReason(err error) string {
	codes := map[string]string{
		"525": "user not found", "52e": "wrong password", "530": "not permitted to log on at this time",
		"531": "not permitted to log on at this workstation", "532": "password expired",
		"533": "account disabled", "701": "account expired", "773": "password must be reset",
		"775": "account locked out",
	}
	msg := err.Error()
	if i := strings.Index(msg, "data "); i >= 0 && len(msg) >= i+8 {
		if why, ok := codes[msg[i+5:i+8]]; ok {
			return " (Active Directory: " + why + ")"
		}
	}
	return ""
}

// redact drops any userinfo from a URL for messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	p.User = nil
	return p.String()
}

// search runs one paged search, calling fn for every entry of every page. It fails on
// any error and, unless referrals are to be skipped, on continuation references.
//
// The connection's reader decodes the next page while fn maps this one (see
// conn.search).
func (s *Source) search(conn *conn, base, filter, scope string, attrs []string, fn func(*ldap.Entry)) error {
	req := &searchRequest{base: base, scope: scopes[scope], filter: filter, attrs: attrs, pageSize: uint32(s.cfg.PageSize)}
	return conn.search(req, fn, func(page int, refs []string) error {
		if s.cfg.Referrals != "skip" {
			return fmt.Errorf("page %d: the server referred to %s, which idsync does not follow (set referrals: skip if those are other partitions)", page, strings.Join(refs, ", "))
		}
		s.log.Debug("skipped continuation references", "base", base, "referrals", refs)
		return nil
	})
}
