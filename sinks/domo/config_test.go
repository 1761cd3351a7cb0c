package domo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func validConfig() Config {
	return Config{ClientID: "id", ClientSecret: "secret"}
}

func TestConfigRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no client id", func(c *Config) { c.ClientID = " " }, "domo.client_id: required"},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, "domo.client_secret: required (or client_secret_file)"},
		{"two secrets", func(c *Config) { c.ClientSecretFile = "/run/secret" }, "domo.client_secret: client_secret and client_secret_file: set one, not both"},
		{"bad url", func(c *Config) { c.URL = "api.domo.com" }, "domo.url: "},
		{"plain http", func(c *Config) { c.URL = "http://api.domo.com" }, "domo.url: "},
		{"role in another case", func(c *Config) { c.Role = "admin" }, `domo.role: "admin": write Admin`},
		{"unknown role", func(c *Config) { c.Role = "Editor" }, `domo.role: "Editor": Admin, Privileged, Participant, or a custom role's numeric id`},
		{"roles without group", func(c *Config) { c.Roles = []RoleMapping{{Role: "Admin"}} }, "domo.roles[0].group: required"},
		{"roles without role", func(c *Config) { c.Roles = []RoleMapping{{Group: "g"}} }, "domo.roles[0].role: required"},
		{"roles bad role", func(c *Config) { c.Roles = []RoleMapping{{Group: "g", Role: "-3"}} }, "domo.roles[0].role: "},
		{"roles group twice", func(c *Config) {
			c.Roles = []RoleMapping{{Group: "g", Role: "Admin"}, {Group: "g", Role: "Privileged"}}
		}, `domo.roles[1].group: "g" is already roles[0]`},
		{"unknown field", func(c *Config) { c.Attributes = map[string]string{"dept": "department"} }, `domo.attributes.dept: "department": one of title, phone`},
		{"field twice", func(c *Config) { c.Attributes = map[string]string{"a": "title", "b": "title"} }, "is already filled by attributes."},
		{"unknown action", func(c *Config) { c.DisableAction = "block" }, `domo.disable_action: "block": none, role or delete`},
		{"role without disabled_role", func(c *Config) { c.DisableAction = "role" }, "domo.disabled_role: required with disable_action: role"},
		{"disabled_role without role", func(c *Config) { c.DisabledRole = "9" }, "domo.disabled_role: only with disable_action: role"},
		{"disabled_role is the default", func(c *Config) { c.DisableAction, c.DisabledRole = "role", "Participant" }, "domo.disabled_role: Participant is also given by role"},
		{"disabled_role is mapped", func(c *Config) {
			c.DisableAction, c.DisabledRole = "role", "12"
			c.Roles = []RoleMapping{{Group: "g", Role: "12"}}
		}, "domo.disabled_role: roleId 12 is also given by roles[0].role"},
		{"bad settings", func(c *Config) { c.Concurrency = 1000 }, "domo.concurrency: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			err := errors.Join(c.Validate("domo")...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
			if _, nerr := New(c, nil, nil, nil); nerr == nil {
				t.Error("New took the config")
			}
		})
	}
}

func TestConfigAcceptsAndDefaults(t *testing.T) {
	c := validConfig()
	c.Burst = 10 // with the default rate limit
	if errs := c.Validate("domo"); len(errs) > 0 {
		t.Fatalf("got %v", errs)
	}
	c.setDefaults()
	if c.URL != "https://api.domo.com" || c.Role != "Participant" || c.DisableAction != "none" || c.RateLimit != 40 || c.Concurrency != 8 {
		t.Errorf("got %+v, want the defaults", c)
	}
}

// The configuration as cmd/idsync reads it: unknown keys are errors, and a custom
// role's id may be written as a number.
func TestConfigYAML(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "domo-secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `
url: https://api.domo.com
client_id: abc
client_secret_file: ` + secretFile + `
send_invite: true
role: Participant
roles:
  - {group: domo-admins, role: Admin}
  - {group: analysts, role: 31}
attributes: {job_title: title, staff_no: employeeNumber}
disable_action: role
disabled_role: 77
concurrency: 4
rate_limit: 20
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	s, err := New(c, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.secret.Reveal() != "s3cret" || s.disabledRole != (role{id: 77}) || len(s.roles) != 2 || s.roles[1].role != (role{id: 31}) || s.Concurrency() != 4 {
		t.Errorf("got %+v", s)
	}
	if got := s.api.Limit.Limit(); got != 20 {
		t.Errorf("got rate limit %v, want 20", got)
	}

	var bad Config
	dec = yaml.NewDecoder(strings.NewReader("client_id: a\nclient_secret: b\nroles: [{group: g, role: Admin, priority: 1}]\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&bad); err == nil || !strings.Contains(err.Error(), "priority") {
		t.Errorf("got %v, want the unknown key refused", err)
	}

	c.ClientSecretFile = filepath.Join(dir, "missing")
	if _, err := New(c, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "client_secret_file") {
		t.Errorf("got %v, want the missing file named", err)
	}
}
