package mailer

import (
	"context"
	"errors"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idsync/idsync/internal/maildevtest"
)

func message() Message {
	return Message{
		To:      mail.Address{Name: "Zoë Ångström", Address: "zoe@example.org"},
		Subject: "Welcome to Haplo, Zoë",
		Text:    "Hello Zoë,\n\nset your password: https://app.example.org/do/authentication/welcome/42/abcdef0123456789abcdef0123456789\n\nThe link works for 12 days. " + strings.Repeat("A long line. ", 12) + "\n",
		HTML:    `<p>Hello Zoë,</p><p><a href="https://app.example.org/do/authentication/welcome/42/abcdef0123456789abcdef0123456789">Set your password</a> = within 12 days.</p>`,
	}
}

func checkReceived(t *testing.T, got maildevtest.Email, want Message, from string) {
	t.Helper()
	if len(got.To) != 1 || got.To[0].Address != want.To.Address || got.To[0].Name != want.To.Name {
		t.Errorf("To %v, want %v", got.To, want.To)
	}
	if len(got.From) != 1 || got.From[0].String() != from {
		t.Errorf("From %v, want %s", got.From, from)
	}
	if got.Subject != want.Subject {
		t.Errorf("Subject %q, want %q", got.Subject, want.Subject)
	}
	// Lines end in CRLF on the wire, as RFC 5322 has them.
	if text := strings.ReplaceAll(got.Text, "\r\n", "\n"); strings.TrimSpace(text) != strings.TrimSpace(want.Text) {
		t.Errorf("text part:\n%q\nwant\n%q", got.Text, want.Text)
	}
	if strings.TrimSpace(got.HTML) != strings.TrimSpace(want.HTML) {
		t.Errorf("html part:\n%q\nwant\n%q", got.HTML, want.HTML)
	}
}

// sendOne sends message() with cfg and checks srv received it whole, from from.
func sendOne(t *testing.T, cfg Config, srv *maildevtest.Server, from string) (*Mailer, []maildevtest.Email) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	msg := message()
	if err := m.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	got := srv.Emails(t)
	if len(got) != 1 {
		t.Fatalf("%d emails received, want 1", len(got))
	}
	checkReceived(t, got[0], msg, from)
	return m, got
}

// TestSendMailDev: plain SMTP to a relay on loopback, and implicit TLS with AUTH, to
// MailDev; the message arrives whole, both parts, non-ASCII names and subject intact.
func TestSendMailDev(t *testing.T) {
	for _, tt := range []struct {
		name string
		opt  maildevtest.Options
		cfg  func(s *maildevtest.Server) Config
	}{{
		name: "none, to loopback",
		cfg: func(s *maildevtest.Server) Config {
			return Config{Host: s.Host, Port: s.Port, TLS: "none", From: "idsync <noreply@example.org>"}
		},
	}, {
		name: "implicit TLS and AUTH",
		opt:  maildevtest.Options{ImplicitTLS: true, User: "idsync", Password: "s3cret"},
		cfg: func(s *maildevtest.Server) Config {
			return Config{Host: s.Host, Port: s.Port, TLS: "implicit", CAFile: s.CAFile, Username: "idsync", Password: "s3cret",
				From: "idsync <noreply@example.org>"}
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := maildevtest.Start(t, tt.opt)
			_, got := sendOne(t, tt.cfg(srv), srv, `"idsync" <noreply@example.org>`)
			if got[0].EnvelopeFrom != "noreply@example.org" || len(got[0].EnvelopeTo) != 1 || got[0].EnvelopeTo[0] != "zoe@example.org" {
				t.Errorf("envelope from %q to %v", got[0].EnvelopeFrom, got[0].EnvelopeTo)
			}
		})
	}
}

// TestSendSTARTTLS: STARTTLS then AUTH, to nodemailer's smtp-server, which refuses AUTH
// before TLS; and the errors of a wrong password, an untrusted certificate, and a
// server that is down, none holding the message.
func TestSendSTARTTLS(t *testing.T) {
	srv := maildevtest.StartSTARTTLS(t, "idsync", "s3cret")
	cfg := Config{Host: srv.Host, Port: srv.Port, CAFile: srv.CAFile, Username: "idsync", Password: "s3cret", From: "noreply@example.org"}
	m, got := sendOne(t, cfg, srv, "<noreply@example.org>")
	msg := message()
	if got[0].Headers["mime-version"] != "1.0" || got[0].Headers["message-id"] == "" || got[0].Headers["date"] == "" {
		t.Errorf("headers %v", got[0].Headers)
	}

	secretLink := "abcdef0123456789abcdef0123456789"
	wrong := cfg
	wrong.Password = "nope"
	mw, _ := New(wrong)
	err := mw.Send(t.Context(), msg)
	if err == nil || !strings.Contains(err.Error(), "AUTH as idsync") || strings.Contains(err.Error(), secretLink) {
		t.Errorf("wrong password: %v", err)
	}

	untrusted := cfg
	untrusted.CAFile = writeOtherCA(t)
	mu, _ := New(untrusted)
	err = mu.Send(t.Context(), msg)
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}

	srv.Stop()
	err = m.Send(context.Background(), msg)
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("server down: %v", err)
	}
	if len(srv.Emails(t)) != 1 {
		t.Error("a failed send delivered something")
	}
}

// TestStartTLSRequired: a server without STARTTLS gets nothing when tls is starttls.
func TestStartTLSRequired(t *testing.T) {
	srv := maildevtest.Start(t, maildevtest.Options{})
	m, err := New(Config{Host: srv.Host, Port: srv.Port, From: "noreply@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(t.Context(), message())
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("got %v", err)
	}
	if n := len(srv.Emails(t)); n != 0 {
		t.Errorf("%d emails sent in clear text", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "smtp.host: required"},
		{Config{Host: "mail.example.org", From: "x@example.org", TLS: "none"}, "only to a relay on this machine"},
		{Config{Host: "127.0.0.1", From: "x@example.org", TLS: "none", Username: "u", Password: "p"}, "authentication needs TLS"},
		{Config{Host: "mail.example.org", From: "not an address"}, "smtp.from"},
		{Config{Host: "mail.example.org", From: "x@example.org", TLS: "ssl"}, `"ssl": starttls, implicit or none`},
		{Config{Host: "mail.example.org", From: "x@example.org", Username: "u"}, "smtp.password: required with username"},
	} {
		err := errors.Join(tt.cfg.Validate("smtp")...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if errs := (&Config{Host: "mail.example.org", From: "idsync <x@example.org>"}).Validate("smtp"); len(errs) > 0 {
		t.Errorf("a good config: %v", errs)
	}
}

// writeOtherCA writes a CA that signed nothing the servers use.
func writeOtherCA(t *testing.T) string {
	other := maildevtest.StartSTARTTLS(t, "x", "y") // its certificate is another self-signed one
	p := filepath.Join(t.TempDir(), "other.pem")
	b, err := os.ReadFile(other.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, b, 0o600)
	return p
}
