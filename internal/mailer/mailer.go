// Package mailer sends idsync's onboarding emails over SMTP: STARTTLS, implicit TLS or
// (to a relay on the same machine) neither; PLAIN authentication; a text and an HTML
// part. It is the standard library's net/smtp and mime packages and nothing more: the
// messages are few, and a library would buy nothing they lack.
package mailer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/idsync/idsync/internal/secret"
)

// Config is the smtp section of the configuration.
type Config struct {
	Host string `yaml:"host"`
	// Port defaults to 587 for starttls, 465 for implicit, 25 for none.
	Port int `yaml:"port"`
	// TLS is starttls (the default: refused if the server does not offer it),
	// implicit (TLS from the first byte, "SMTPS"), or none, which only a server on
	// this machine's loopback may use.
	TLS string `yaml:"tls"`
	// Username and a password (inline, ${VAR} or a file) turn on AUTH PLAIN, only ever
	// sent over TLS.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// From is the sender: "idsync <noreply@example.org>".
	From string `yaml:"from"`
	// CAFile adds a CA to trust for the server's certificate; ServerName overrides
	// the name checked (default Host).
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
	// Timeout bounds one message's whole exchange; default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// HeloName is the name sent in EHLO; default the machine's host name.
	HeloName string `yaml:"helo_name"`
}

// Validate returns every problem, each with its key under path.
func (c *Config) Validate(path string) []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{path, key}, a...)...))
	}
	if c.Host == "" {
		bad("host", "required")
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("port", "%d is no port", c.Port)
	}
	switch c.TLS {
	case "", "starttls", "implicit":
	case "none":
		if ip := net.ParseIP(c.Host); c.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			bad("tls", "none sends people's links in clear text: only to a relay on this machine (localhost, 127.0.0.1, ::1)")
		}
		if c.Username != "" {
			bad("username", "authentication needs TLS (tls: starttls or implicit)")
		}
	default:
		bad("tls", "%q: starttls, implicit or none", c.TLS)
	}
	if c.From == "" {
		bad("from", "required")
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		bad("from", "%q: %v", c.From, err)
	}
	if c.Username != "" && c.Password == "" && c.PasswordFile == "" {
		bad("password", "required with username (or password_file)")
	}
	if c.Username == "" && (c.Password != "" || c.PasswordFile != "") {
		bad("username", "required with a password")
	}
	if c.Timeout < 0 {
		bad("timeout", "must be positive")
	}
	return errs
}

// Message is one email to one person.
type Message struct {
	To      mail.Address
	Subject string
	// Text and HTML are the two parts; both are sent (multipart/alternative).
	Text, HTML string
}

// Mailer sends Messages. It holds no connection between sends.
type Mailer struct {
	cfg      Config
	from     *mail.Address
	password secret.Secret
	tls      *tls.Config
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
}

// New builds a Mailer: it reads the password and CA files, and dials nothing.
func New(cfg Config) (*Mailer, error) {
	if errs := cfg.Validate("smtp"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.TLS == "" {
		cfg.TLS = "starttls"
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{"starttls": 587, "implicit": 465, "none": 25}[cfg.TLS]
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.HeloName == "" {
		cfg.HeloName, _ = os.Hostname()
		if cfg.HeloName == "" {
			cfg.HeloName = "localhost"
		}
	}
	from, _ := mail.ParseAddress(cfg.From) // validated
	m := &Mailer{cfg: cfg, from: from, dial: (&net.Dialer{}).DialContext}
	if cfg.Username != "" {
		pw, err := secret.Load("smtp.password", cfg.Password, cfg.PasswordFile)
		if err != nil {
			return nil, err
		}
		m.password = pw
	}
	m.tls = &tls.Config{ServerName: cmpOr(cfg.ServerName, cfg.Host), MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("smtp.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("smtp.ca_file: %s holds no PEM certificate", cfg.CAFile)
		}
		m.tls.RootCAs = pool
	}
	return m, nil
}

// Send delivers msg: connect, EHLO, TLS as configured, AUTH, one message, QUIT. Its
// errors say which step failed; they never hold the message's text, which may be a
// credential (a welcome link).
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port))
	conn, err := m.dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp %s: connect: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if m.cfg.TLS == "implicit" {
		tc := tls.Client(conn, m.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("smtp %s: TLS: %w", addr, err)
		}
		conn = tc
	}
	err = m.exchange(conn, msg)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	return nil
}

func (m *Mailer) exchange(conn net.Conn, msg Message) error {
	c, err := smtp.NewClient(conn, m.cfg.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(m.cfg.HeloName); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if m.cfg.TLS == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server does not offer STARTTLS, and tls is starttls: nothing sent (tls: implicit if it speaks TLS from the start)")
		}
		if err := c.StartTLS(m.tls); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if m.cfg.Username != "" {
		// net/smtp's PlainAuth itself refuses a connection without TLS.
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.password.Reveal(), m.cfg.Host)); err != nil {
			return fmt.Errorf("AUTH as %s: %w", m.cfg.Username, err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(msg.To.Address); err != nil {
		return fmt.Errorf("RCPT TO <%s>: %w", msg.To.Address, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	body, err := m.compose(msg)
	if err != nil {
		w.Close()
		return err
	}
	if _, err := w.Write(body); err != nil {
		w.Close()
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("the message was refused: %w", err)
	}
	return c.Quit()
}

// compose writes msg as an RFC 5322 message: headers encoded as RFC 2047 says where
// they are not ASCII, a multipart/alternative body with the text part first, both
// quoted-printable.
func (m *Mailer) compose(msg Message) ([]byte, error) {
	var b bytes.Buffer
	id := make([]byte, 16)
	rand.Read(id)
	domain := m.from.Address[strings.LastIndexByte(m.from.Address, '@')+1:]
	hdr := []struct{ k, v string }{
		{"From", m.from.String()},
		{"To", msg.To.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", msg.Subject)},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"Message-ID", "<" + hex.EncodeToString(id) + "@" + domain + ">"},
		{"MIME-Version", "1.0"},
		{"Auto-Submitted", "auto-generated"},
	}
	for _, h := range hdr {
		if strings.ContainsAny(h.v, "\r\n") {
			return nil, fmt.Errorf("header %s holds a line break", h.k)
		}
		fmt.Fprintf(&b, "%s: %s\r\n", h.k, h.v)
	}
	mw := multipart.NewWriter(&b)
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", mw.Boundary())
	for _, part := range []struct{ ctype, body string }{{"text/plain; charset=utf-8", msg.Text}, {"text/html; charset=utf-8", msg.HTML}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {part.ctype}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(pw)
		if _, err := qp.Write([]byte(part.body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
