// Package ldap implements a sync.Source over LDAP directories (OpenLDAP, Active
// Directory) with go-ldap: every search paged, the whole read or an error, entries
// mapped to identities, groups from memberOf or a group search.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/idsync/idsync/internal/secret"
	dsync "github.com/idsync/idsync/sync"
)

// Source reads people from one directory.
type Source struct {
	name     string
	cfg      Config
	password secret.Secret
	tls      *tls.Config
	log      *slog.Logger
	now      func() time.Time
	// overlap is how far before the newest modifyTimestamp, beyond the read's own
	// duration, the next delta starts (see delta.go).
	overlap time.Duration
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

// readResult is what one read found.
type readResult struct {
	ids    []dsync.Identity
	server string // the URL read from, redacted
	// newest is the latest modifyTimestamp among the entries read, when asked for.
	newest time.Time
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
	// go-ldap's calls take no context: closing the connection ends them.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	wrap := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: read stopped: %w", server, ctx.Err())
		}
		return fmt.Errorf("%s: %w", server, err)
	}

	m := newMapper(&s.cfg, s.name)
	attrs := m.attributes()
	if stamp != "" {
		attrs = append(attrs, stamp)
	}
	extra := since(server)
	seen := make(map[string]bool)
	for _, sr := range s.cfg.Searches {
		filter := sr.Filter
		if extra != "" {
			filter = "(&" + sr.Filter + extra + ")"
		}
		err := s.search(conn, sr.BaseDN, filter, sr.Scope, attrs, func(e *ldap.Entry) {
			dn := strings.ToLower(e.DN)
			if seen[dn] { // overlapping searches: the same entry once
				return
			}
			seen[dn] = true
			r.ids = append(r.ids, m.identity(e))
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
	if g := s.cfg.Groups.Search; g != nil {
		members := newMembership(s.cfg.Groups.Name, g.MemberAttribute)
		err := s.search(conn, g.BaseDN, g.Filter, g.Scope, []string{g.MemberAttribute}, members.add)
		if err != nil {
			return readResult{}, wrap(fmt.Errorf("group search %s %s: %w", g.BaseDN, g.Filter, err))
		}
		members.assign(r.ids)
	}
	for i := range r.ids {
		dsync.Normalize(&r.ids[i])
	}
	s.log.Debug("read", "server", server, "entries", len(r.ids), "filter", extra)
	return r, nil
}

// connect tries each URL in turn and binds. A certificate or credentials problem is
// final: the next server would say the same.
func (s *Source) connect(ctx context.Context) (*ldap.Conn, string, error) {
	var errs []error
	for _, u := range s.cfg.URLs {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		conn, err := s.dial(u)
		if err == nil {
			err = s.bind(conn)
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

func (s *Source) dial(u string) (*ldap.Conn, error) {
	tc := s.tls.Clone()
	if tc.ServerName == "" {
		if p, err := url.Parse(u); err == nil {
			tc.ServerName = p.Hostname()
		}
	}
	d := &net.Dialer{Timeout: s.cfg.DialTimeout}
	conn, err := ldap.DialURL(u, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	conn.SetTimeout(s.cfg.Timeout)
	if s.cfg.StartTLS {
		if err := conn.StartTLS(tc); err != nil {
			conn.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	return conn, nil
}

func (s *Source) bind(conn *ldap.Conn) error {
	if s.cfg.Anonymous {
		return nil
	}
	err := conn.Bind(s.cfg.BindDN, s.password.Reveal())
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return fmt.Errorf("bind as %s: invalid credentials (check bind_dn and the password)%s: %w", s.cfg.BindDN, adReason(err), errCredentials)
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
// The next page is asked for as soon as a page ends, before fn sees its entries: the
// connection's reader decodes the next page (go-ldap's BER decoding, most of a read's
// time) while fn maps this one.
func (s *Source) search(conn *ldap.Conn, base, filter, scope string, attrs []string, fn func(*ldap.Entry)) error {
	paging := ldap.NewControlPaging(uint32(s.cfg.PageSize))
	req := ldap.NewSearchRequest(base, scopes[scope], ldap.NeverDerefAliases, 0, 0, false, filter, attrs, []ldap.Control{paging})
	type answer struct {
		res *ldap.SearchResult
		err error
	}
	fetch := func() <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			res, err := conn.Search(req)
			ch <- answer{res, err}
		}()
		return ch
	}
	next := fetch()
	for page := 1; ; page++ {
		a := <-next
		if a.err != nil {
			return fmt.Errorf("page %d: %w", page, a.err)
		}
		res := a.res
		if len(res.Referrals) > 0 {
			if s.cfg.Referrals != "skip" {
				return fmt.Errorf("page %d: the server referred to %s, which idsync does not follow (set referrals: skip if those are other partitions)", page, strings.Join(res.Referrals, ", "))
			}
			s.log.Debug("skipped continuation references", "base", base, "referrals", res.Referrals)
		}
		ctrl, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		last := false
		switch {
		case !ok && page == 1:
			// A server that ignores paging returned everything in one answer, or hit
			// its size limit, which Search reports as an error.
			last = true
		case !ok:
			return fmt.Errorf("page %d: the server dropped the paged-results control", page)
		case len(ctrl.Cookie) == 0:
			last = true
		default:
			paging.SetCookie(ctrl.Cookie)
			next = fetch()
		}
		for _, e := range res.Entries {
			fn(e)
		}
		if last {
			return nil
		}
	}
}
