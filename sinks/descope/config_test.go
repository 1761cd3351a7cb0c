package descope

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/idsync/idsync/internal/httpapi"
)

func TestValidate(t *testing.T) {
	valid := func() Config { return Config{ProjectID: "P2abc", ManagementKey: "key"} }
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"no project", func(c *Config) { c.ProjectID = "" }, "descope.project_id: required"},
		{"colon in project", func(c *Config) { c.ProjectID = "P2:x" }, "descope.project_id: \"P2:x\""},
		{"no key", func(c *Config) { c.ManagementKey = "" }, "descope.management_key: required (or management_key_file)"},
		{"both keys", func(c *Config) { c.ManagementKeyFile = "/k" }, "descope.management_key: set management_key or management_key_file, not both"},
		{"bad url", func(c *Config) { c.URL = "ftp://x" }, "descope.url: "},
		{"plain http", func(c *Config) { c.URL = "http://descope.example.org" }, "descope.url: "},
		{"plain http on loopback", func(c *Config) { c.URL = "http://127.0.0.1:9" }, ""},
		{"login_id", func(c *Config) { c.LoginID = "phone" }, "descope.login_id: \"phone\": email, username or id"},
		{"empty role", func(c *Config) { c.Roles = map[string]string{"staff": " "} }, "descope.roles.staff: a role name is required"},
		{"tenant without id", func(c *Config) { c.Tenants = map[string]Tenant{"eng": {Roles: []string{"dev"}}} }, "descope.tenants.eng.tenant_id: required"},
		{"tenant empty role", func(c *Config) { c.Tenants = map[string]Tenant{"eng": {TenantID: "T1", Roles: []string{""}}} }, "descope.tenants.eng.roles[0]: a role name is required"},
		{"empty attribute key", func(c *Config) { c.CustomAttributes = map[string]string{"dept": ""} }, "descope.custom_attributes.dept: a custom attribute key is required"},
		{"attribute key twice", func(c *Config) { c.CustomAttributes = map[string]string{"a": "k", "b": "k"} }, "descope.custom_attributes.b: \"k\" is also the key of a"},
		{"attribute is id_attribute", func(c *Config) { c.IDAttribute = "idsyncId"; c.CustomAttributes = map[string]string{"a": "idsyncId"} }, "descope.custom_attributes.a: \"idsyncId\" is id_attribute"},
		{"batch_size", func(c *Config) { c.BatchSize = 101 }, "descope.batch_size: 101: between 1 and 100"},
		{"batch_wait", func(c *Config) { c.BatchWait = 2 * time.Second }, "descope.batch_wait: 2s: between 0 and 1s"},
		{"create_rate_limit", func(c *Config) { c.CreateRateLimit = -1 }, "descope.create_rate_limit: must be positive"},
		{"settings", func(c *Config) { c.Concurrency = 1000 }, "descope.concurrency: 1000: between 1 and 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			err := errors.Join(c.Validate("descope")...)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	// Every problem at once.
	c := Config{LoginID: "x", BatchSize: -1}
	if n := len(c.Validate("descope")); n != 4 {
		t.Errorf("got %d problems, want 4: %v", n, c.Validate("descope"))
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
project_id: P2abc
management_key_file: /run/secrets/descope
login_id: username
roles: {staff: Staff}
tenants:
  eng: {tenant_id: T1, roles: [dev]}
custom_attributes: {department: dept}
id_attribute: idsyncId
verified_email: true
invite: true
batch_create: true
batch_size: 25
batch_wait: 50ms
create_rate_limit: 1.2
rate_limit: 5
burst: 2
concurrency: 30
`
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if errs := c.Validate("descope"); len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.BatchWait != 50*time.Millisecond || c.BatchSize != 25 || c.Tenants["eng"].TenantID != "T1" || c.RateLimit != 5 ||
		c.Concurrency != 30 || !c.Invite || c.ManagementKeyFile != "/run/secrets/descope" || c.CreateRateLimit != 1.2 {
		t.Errorf("got %+v", c)
	}
	c.setDefaults()
	if c.Concurrency != 30 || c.RateLimit != 5 || c.Burst != 2 {
		t.Errorf("the defaults overrode what was set: %+v", c.Settings)
	}
}

// The base URL, when not set, is derived from the project ID as the SDKs do.
func TestBaseURL(t *testing.T) {
	tests := []struct{ url, project, want string }{
		{"", "P2abc", "https://api.descope.com"},
		{"", "P2aB3dEfGhIjKlMnOpQrStUvWxYz0123", "https://api.2aB3.descope.com"},     // 32 characters
		{"", "P2aB3dEfGhIjKlMnOpQrStUvWxYz012", "https://api.descope.com"},           // 31
		{"", "Puse1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "https://api.use1.descope.com"}, // longer
		{"https://auth.example.org/", "P2aB3dEfGhIjKlMnOpQrStUvWxYz0123", "https://auth.example.org"},
	}
	for _, tt := range tests {
		c := Config{URL: tt.url, ProjectID: tt.project}
		if got := c.baseURL(); got != tt.want {
			t.Errorf("baseURL(%q, %q) = %q, want %q", tt.url, tt.project, got, tt.want)
		}
	}
	s, err := New(Config{ProjectID: "P2aB3dEfGhIjKlMnOpQrStUvWxYz0123", ManagementKey: "k"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.api.Base != "https://api.2aB3.descope.com" {
		t.Errorf("the sink's base is %q", s.api.Base)
	}
}

func TestManagementKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("secret-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	retries := 0
	s, err := New(Config{ProjectID: "P1", ManagementKeyFile: path, Settings: httpapi.Settings{MaxRetries: &retries}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := newRequest()
	s.auth(req)
	if got := req.Header.Get("Authorization"); got != "Bearer P1:secret-key" {
		t.Errorf("got %q", got)
	}
	_, err = New(Config{ProjectID: "P1", ManagementKeyFile: filepath.Join(t.TempDir(), "missing")}, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "management_key_file") {
		t.Errorf("got %v, want an error naming management_key_file", err)
	}
}

func newRequest() (*http.Request, error) { return http.NewRequest(http.MethodGet, "https://x", nil) }
