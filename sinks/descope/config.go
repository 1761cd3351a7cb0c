package descope

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
)

// Config is a descope sink's section of the configuration.
type Config struct {
	// URL is the Management API's base URL. When it is not set it is derived from the
	// project ID as Descope's SDKs do: https://api.descope.com, or
	// https://api.<region>.descope.com where region is the project ID's characters 1
	// to 4 when the ID has at least 32 characters. Set it for a custom domain.
	URL string `yaml:"url"`
	// ProjectID and ManagementKey make the credentials: "Bearer <project>:<key>".
	ProjectID         string `yaml:"project_id"`
	ManagementKey     string `yaml:"management_key"`
	ManagementKeyFile string `yaml:"management_key_file"`
	// LoginID is the identity field that becomes the user's loginId: "email" (the
	// default), "username" or "id" (the identity's anchor). The loginId is data, not
	// the key: idsync keeps Descope's userId, and changes the loginId when the field
	// changes.
	LoginID string `yaml:"login_id"`
	// Roles maps the sources' group names to project role names. The roles named here
	// are idsync's: an account's other roles are kept.
	Roles map[string]string `yaml:"roles"`
	// Tenants maps the sources' group names to tenant memberships, with the roles the
	// group gives in the tenant. The tenants named here are idsync's.
	Tenants map[string]Tenant `yaml:"tenants"`
	// CustomAttributes maps identity attribute names to Descope custom attribute keys,
	// which must exist in the project (text attributes; several values are sent as a
	// list, for multi-select ones). The keys named here are idsync's.
	CustomAttributes map[string]string `yaml:"custom_attributes"`
	// IDAttribute, when set, is a custom attribute (text, created in the project)
	// where idsync writes the identity's id: a create that meets an account holding
	// another id refuses to adopt it. Without it an existing account with the loginId
	// is adopted.
	IDAttribute string `yaml:"id_attribute"`
	// VerifiedEmail marks the emails idsync writes as verified. Default false.
	VerifiedEmail bool `yaml:"verified_email"`
	// Invite makes Descope invite each new user (status "invited"). Default false.
	// The README's onboarding: native sets it.
	Invite bool `yaml:"invite"`
	// InviteURL is the base of the invitation's link (Descope's inviteUrl), and
	// SendMail whether Descope emails it (default true), with invite.
	InviteURL string `yaml:"invite_url"`
	SendMail  *bool  `yaml:"send_mail"`
	// BatchCreate gathers concurrent creates into one create/batch request of up to
	// BatchSize users, waiting at most BatchWait for more to arrive. Defaults true, 50
	// and 20ms. batch_size 1 sends every create alone.
	BatchCreate *bool         `yaml:"batch_create"`
	BatchSize   int           `yaml:"batch_size"`
	BatchWait   time.Duration `yaml:"batch_wait"`
	// CreateRateLimit caps create and create/batch requests per second, apart from
	// rate_limit, which caps every request. Descope allows 100 creates per 60 s and
	// 500 user-management requests per 60 s, per project: the defaults, 1.5/s with
	// bursts of 5 for creates and 8/s with bursts of 8 in all, stay under both (at
	// most 95 and 488 in any 60 s).
	CreateRateLimit float64 `yaml:"create_rate_limit"`
	// Concurrency (default twice batch_size with batch create, else 8), timeout,
	// retries, rate limit and plain http.
	httpapi.Settings `yaml:",inline"`
}

// Tenant is a tenant membership a group gives.
type Tenant struct {
	TenantID string   `yaml:"tenant_id"`
	Roles    []string `yaml:"roles"`
}

// Defaults and bounds.
const (
	defaultRateLimit       = 8.0 // requests per second: 488 in 60 s at most, with the burst
	defaultBurst           = 8
	defaultCreateRateLimit = 1.5 // creates per second: 95 in 60 s at most, with the burst
	createBurst            = 5
	defaultBatchSize       = 50
	maxBatchSize           = 100 // Descope's own cap is not documented
	defaultBatchWait       = 20 * time.Millisecond
	maxBatchWait           = time.Second
)

// Validate returns every problem, each prefixed with path (sinks[0].descope). The
// management key is read by New.
func (c *Config) Validate(path string) []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{path, key}, a...)...))
	}
	if c.URL != "" {
		if _, err := httpapi.ParseURL(c.URL, c.AllowInsecureHTTP); err != nil {
			bad("url", "%v", err)
		}
	}
	switch {
	case c.ProjectID == "":
		bad("project_id", "required")
	case strings.ContainsAny(c.ProjectID, ": \t\r\n/"):
		bad("project_id", "%q: a Descope project ID has no colon, slash or space", c.ProjectID)
	}
	switch {
	case c.ManagementKey == "" && c.ManagementKeyFile == "":
		bad("management_key", "required (or management_key_file)")
	case c.ManagementKey != "" && c.ManagementKeyFile != "":
		bad("management_key", "set management_key or management_key_file, not both")
	}
	switch c.LoginID {
	case "", "email", "username", "id":
	default:
		bad("login_id", "%q: email, username or id", c.LoginID)
	}
	for _, group := range slices.Sorted(maps.Keys(c.Roles)) {
		if strings.TrimSpace(c.Roles[group]) == "" {
			bad("roles."+group, "a role name is required")
		}
	}
	for _, group := range slices.Sorted(maps.Keys(c.Tenants)) {
		t := c.Tenants[group]
		if strings.TrimSpace(t.TenantID) == "" {
			bad("tenants."+group+".tenant_id", "required")
		}
		for i, r := range t.Roles {
			if strings.TrimSpace(r) == "" {
				bad(fmt.Sprintf("tenants.%s.roles[%d]", group, i), "a role name is required")
			}
		}
	}
	seen := map[string]string{}
	for _, attr := range slices.Sorted(maps.Keys(c.CustomAttributes)) {
		key := c.CustomAttributes[attr]
		switch {
		case seen[key] != "" && key != "":
			bad("custom_attributes."+attr, "%q is also the key of %s", key, seen[key])
		case strings.TrimSpace(key) == "":
			bad("custom_attributes."+attr, "a custom attribute key is required")
		case key == c.IDAttribute:
			bad("custom_attributes."+attr, "%q is id_attribute, which idsync fills with the identity's id", key)
		}
		seen[key] = attr
	}
	if c.IDAttribute != "" && strings.TrimSpace(c.IDAttribute) != c.IDAttribute {
		bad("id_attribute", "%q: no leading or trailing spaces", c.IDAttribute)
	}
	if c.BatchSize < 0 || c.BatchSize > maxBatchSize {
		bad("batch_size", "%d: between 1 and %d", c.BatchSize, maxBatchSize)
	}
	if c.BatchWait < 0 || c.BatchWait > maxBatchWait {
		bad("batch_wait", "%v: between 0 and %v", c.BatchWait, maxBatchWait)
	}
	if c.CreateRateLimit < 0 {
		bad("create_rate_limit", "must be positive (creates per second), or 0 for the default %v", defaultCreateRateLimit)
	}
	errs = append(errs, c.Settings.Validate(path)...)
	return errs
}

func (c *Config) setDefaults() {
	if c.LoginID == "" {
		c.LoginID = "email"
	}
	if c.BatchCreate == nil {
		on := true
		c.BatchCreate = &on
	}
	if c.BatchSize == 0 {
		c.BatchSize = defaultBatchSize
	}
	if !*c.BatchCreate {
		c.BatchSize = 1
	}
	if c.BatchWait == 0 {
		c.BatchWait = defaultBatchWait
	}
	if c.CreateRateLimit == 0 {
		c.CreateRateLimit = defaultCreateRateLimit
	}
	if c.RateLimit == 0 {
		c.RateLimit, c.Burst = defaultRateLimit, defaultBurst
	}
	if c.Concurrency == 0 && c.BatchSize > 1 {
		// A batch fills only with as many creates in flight as it holds: twice that
		// lets the next batch fill while one is sent. Beyond the creates, the extra
		// workers wait on the rate limit, which costs a goroutine each.
		c.Concurrency = min(2*c.BatchSize, 256)
	}
	c.Settings.SetDefaults()
}

// baseURL is the configured URL, or the one Descope's SDKs derive from the project ID.
func (c *Config) baseURL() string {
	if c.URL != "" {
		return strings.TrimSuffix(c.URL, "/")
	}
	if len(c.ProjectID) >= 32 {
		return "https://api." + c.ProjectID[1:5] + ".descope.com"
	}
	return "https://api.descope.com"
}
