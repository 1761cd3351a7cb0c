package scim

import (
	"fmt"

	"github.com/idsync/idsync/internal/httpapi"
)

// Config is a scim sink's section of the configuration.
type Config struct {
	// URL is the SCIM base URL, the one /Users is under: https://app.example.org/scim/v2.
	URL string `yaml:"url"`
	// Token is a bearer token; or Username and Password for HTTP basic auth.
	Token        string `yaml:"token"`
	TokenFile    string `yaml:"token_file"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// UserName is what becomes the SCIM userName: "username" (default) or "email".
	UserName string `yaml:"user_name"`
	// Enterprise maps identity attributes to the enterprise extension's fields
	// (employeeNumber, costCenter, organization, division, department).
	Enterprise map[string]string `yaml:"enterprise"`
	// Groups maps the sources' group names to SCIM group displayNames: idsync creates
	// those groups and keeps their members; other groups are not touched.
	Groups map[string]string `yaml:"groups"`
	// Concurrency, timeout, retries, rate limit and plain http.
	httpapi.Settings `yaml:",inline"`
}

var enterpriseFields = map[string]bool{"employeeNumber": true, "costCenter": true, "organization": true, "division": true, "department": true}

// Validate returns every problem, each prefixed with path (sinks[0].scim).
func (c *Config) Validate(path string) []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{path, key}, a...)...))
	}
	if _, err := httpapi.ParseURL(c.URL, c.AllowInsecureHTTP); err != nil {
		bad("url", "%v", err)
	}
	bearer := c.Token != "" || c.TokenFile != ""
	basic := c.Username != "" || c.Password != "" || c.PasswordFile != ""
	switch {
	case bearer && basic:
		bad("token", "a token or a username and password, not both")
	case !bearer && !basic:
		bad("token", "required (or token_file, or username and password)")
	case basic && c.Username == "":
		bad("username", "required with a password")
	}
	switch c.UserName {
	case "", "username", "email":
	default:
		bad("user_name", "%q: username or email", c.UserName)
	}
	for attr, field := range c.Enterprise {
		if !enterpriseFields[field] {
			bad("enterprise."+attr, "%q: one of employeeNumber, costCenter, organization, division, department", field)
		}
	}
	for name, group := range c.Groups {
		if group == "" {
			bad("groups."+name, "a group displayName is required")
		}
	}
	errs = append(errs, c.Settings.Validate(path)...)
	return errs
}

func (c *Config) setDefaults() {
	if c.UserName == "" {
		c.UserName = "username"
	}
	c.Settings.SetDefaults()
}
