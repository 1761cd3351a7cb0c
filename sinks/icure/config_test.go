package icure

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idsync/idsync/internal/httpapi"
)

func validConfig() Config {
	return Config{URL: "https://api.icure.cloud", Username: "idsync", Password: "pw-0123"}
}

func TestConfigValidate(t *testing.T) {
	if errs := (&Config{URL: "http://127.0.0.1:16043", Auth: "token", Username: "u", PasswordFile: "pw", Login: "username",
		IDNamespace: "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", PatientIDAttribute: "patient"}).Validate("sinks[0].icure"); len(errs) > 0 {
		t.Errorf("a valid config: %v", errs)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // the start of one of the errors
	}{
		{"no url", func(c *Config) { c.URL = "" }, "sinks[0].icure.url: required"},
		{"not a url", func(c *Config) { c.URL = "api.icure.cloud" }, "sinks[0].icure.url: "},
		{"plain http", func(c *Config) { c.URL = "http://icure.example.org" }, "sinks[0].icure.url: "},
		{"api path", func(c *Config) { c.URL = "https://api.icure.cloud/rest/v2/user" }, "sinks[0].icure.url: "},
		{"auth", func(c *Config) { c.Auth = "oauth" }, `sinks[0].icure.auth: "oauth": basic or token`},
		{"username", func(c *Config) { c.Username = "" }, "sinks[0].icure.username: required"},
		{"no password", func(c *Config) { c.Password = "" }, "sinks[0].icure.password: required"},
		{"two passwords", func(c *Config) { c.PasswordFile = "pw" }, "sinks[0].icure.password: password and password_file"},
		{"login", func(c *Config) { c.Login = "phone" }, `sinks[0].icure.login: "phone": email or username`},
		{"namespace", func(c *Config) { c.IDNamespace = "idsync" }, `sinks[0].icure.id_namespace: "idsync": not a UUID`},
		{"two links", func(c *Config) { c.PatientIDAttribute, c.HealthcarePartyIDAttribute = "p", "h" }, "sinks[0].icure.healthcare_party_id_attribute: set patient_id_attribute or"},
		{"attribute spaces", func(c *Config) { c.PatientIDAttribute = " p" }, "sinks[0].icure.patient_id_attribute: "},
		{"settings", func(c *Config) { c.Concurrency = -1 }, "sinks[0].icure.concurrency: "},
	} {
		c := validConfig()
		tc.edit(&c)
		errs := c.Validate("sinks[0].icure")
		found := false
		for _, err := range errs {
			found = found || strings.HasPrefix(err.Error(), tc.want)
		}
		if !found {
			t.Errorf("%s: errors %v, want one starting %q", tc.name, errs, tc.want)
		}
	}
	// Every problem at once.
	if errs := (&Config{Auth: "x", Login: "y"}).Validate("icure"); len(errs) != 5 {
		t.Errorf("%d errors %v, want 5: url, auth, username, password, login", len(errs), errs)
	}
}

func TestNewReadsPasswordFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "icure.password")
	os.WriteFile(file, []byte("from-the-file\n"), 0o600)
	c := validConfig()
	c.Password, c.PasswordFile = "", file
	s, err := New(c, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if s.auth.password.Reveal() != "from-the-file" || s.cfg.Auth != "basic" || s.cfg.Login != "email" || s.Concurrency() != 8 {
		t.Errorf("sink config %+v, want the file's password and the defaults", s.cfg)
	}
	c.PasswordFile = filepath.Join(dir, "missing")
	if _, err := New(c, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("missing password file: %v, want an error naming password_file", err)
	}
	c = validConfig()
	c.Settings = httpapi.Settings{MaxRetries: new(int)}
	c.Auth = "bad"
	if _, err := New(c, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "icure.auth") || strings.Contains(err.Error(), c.Password) {
		t.Errorf("New with a bad config: %v, want the problem named and no password", err)
	}
}
