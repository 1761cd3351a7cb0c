package domo

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/idsync/idsync/internal/httpapi"
)

// Config is a domo sink's section of the configuration.
type Config struct {
	// URL is the API's base URL. Default https://api.domo.com.
	URL string `yaml:"url"`
	// ClientID and ClientSecret are an OAuth client's credentials (developer.domo.com),
	// granted the scope user.
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// SendInvite makes Domo email each new user an invitation. Default false.
	SendInvite bool `yaml:"send_invite"`
	// Role is the role of new users, and with Roles the role of a person none of whose
	// groups Roles maps. Admin, Privileged, Participant, or a custom role's numeric
	// id. Default Participant.
	Role string `yaml:"role"`
	// Roles gives the members of a source group a role, and makes the role idsync's
	// to manage: it is set on every create, adoption and change of groups. The first
	// entry whose group a person is in decides; list the most privileged first.
	Roles []RoleMapping `yaml:"roles"`
	// Attributes maps identity attributes to the Domo user's optional fields: title,
	// phone, location, timezone, locale, employeeNumber, alternateEmail. The first
	// value of an attribute is sent.
	Attributes map[string]string `yaml:"attributes"`
	// DisableAction is what disable_user does, Domo having no disabled state: none
	// (the default), role or delete. See the package comment.
	DisableAction string `yaml:"disable_action"`
	// DisabledRole is the role a disabled person gets with disable_action: role; best
	// a custom role without rights, by its numeric id. It must differ from every role
	// an active person can get, or a disabled account could not be told apart.
	DisabledRole string `yaml:"disabled_role"`
	// Concurrency, timeout, retries, rate limit and plain http. rate_limit defaults to
	// 40 requests a second.
	httpapi.Settings `yaml:",inline"`
}

// RoleMapping is one entry of Config.Roles.
type RoleMapping struct {
	Group string `yaml:"group"`
	Role  string `yaml:"role"`
}

const (
	defaultURL  = "https://api.domo.com"
	defaultRole = "Participant"
	// defaultRateLimit keeps under the 3,000 requests a minute (50 a second) a third
	// party reports as Domo's limit for a whole instance, with room for the instance's
	// other clients. Domo documents no limit.
	defaultRateLimit = 40

	disableNone   = "none"
	disableRole   = "role"
	disableDelete = "delete"
)

// optionalFields are the Domo user fields an attribute may fill.
var optionalFields = []string{"title", "phone", "location", "timezone", "locale", "employeeNumber", "alternateEmail"}

// role is a Domo role: one of the standard roles by name, or a custom role by id.
type role struct {
	name string
	id   int64
}

func (r role) String() string {
	if r.id != 0 {
		return "roleId " + strconv.FormatInt(r.id, 10)
	}
	return r.name
}

// parseRole reads a role from the configuration: Admin, Privileged or Participant
// (spelt exactly so: the API matches them exactly), or a custom role's numeric id.
func parseRole(s string) (role, error) {
	switch s {
	case "Admin", "Privileged", "Participant":
		return role{name: s}, nil
	}
	if id, err := strconv.ParseInt(s, 10, 64); err == nil && id > 0 {
		return role{id: id}, nil
	}
	for _, std := range []string{"Admin", "Privileged", "Participant"} {
		if strings.EqualFold(s, std) {
			return role{}, fmt.Errorf("%q: write %s, as Domo matches role names exactly", s, std)
		}
	}
	return role{}, fmt.Errorf("%q: Admin, Privileged, Participant, or a custom role's numeric id", s)
}

// Validate returns every problem, each prefixed with path (sinks[0].domo). The secret
// is read by New.
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
	if strings.TrimSpace(c.ClientID) == "" {
		bad("client_id", "required: the OAuth client's id")
	}
	switch {
	case c.ClientSecret != "" && c.ClientSecretFile != "":
		bad("client_secret", "client_secret and client_secret_file: set one, not both")
	case c.ClientSecret == "" && c.ClientSecretFile == "":
		bad("client_secret", "required (or client_secret_file)")
	}
	roles := map[role]string{} // the roles an active person can get, and the key that gives each
	if c.Role != "" {
		if r, err := parseRole(c.Role); err != nil {
			bad("role", "%v", err)
		} else {
			roles[r] = "role"
		}
	} else {
		roles[role{name: defaultRole}] = "role"
	}
	groups := map[string]int{}
	for i, m := range c.Roles {
		key := fmt.Sprintf("roles[%d]", i)
		if strings.TrimSpace(m.Group) == "" {
			bad(key+".group", "required: a source group name")
		} else if j, dup := groups[m.Group]; dup {
			bad(key+".group", "%q is already roles[%d]: a later entry for a group never applies", m.Group, j)
		} else {
			groups[m.Group] = i
		}
		if r, err := parseRole(m.Role); m.Role == "" {
			bad(key+".role", "required")
		} else if err != nil {
			bad(key+".role", "%v", err)
		} else {
			roles[r] = key + ".role"
		}
	}
	fields := map[string]string{}
	for attr, field := range c.Attributes {
		switch {
		case !slices.Contains(optionalFields, field):
			bad("attributes."+attr, "%q: one of %s", field, strings.Join(optionalFields, ", "))
		case fields[field] != "":
			bad("attributes."+attr, "%s is already filled by attributes.%s", field, fields[field])
		default:
			fields[field] = attr
		}
	}
	switch c.DisableAction {
	case "", disableNone, disableDelete:
		if c.DisabledRole != "" {
			bad("disabled_role", "only with disable_action: role")
		}
	case disableRole:
		if c.DisabledRole == "" {
			bad("disabled_role", "required with disable_action: role: the role a disabled person gets")
		} else if r, err := parseRole(c.DisabledRole); err != nil {
			bad("disabled_role", "%v", err)
		} else if key, ok := roles[r]; ok {
			bad("disabled_role", "%s is also given by %s: a disabled person could not be told from an active one", r, key)
		}
	default:
		bad("disable_action", "%q: none, role or delete", c.DisableAction)
	}
	// rate_limit has a default here: burst alone is allowed.
	settings := c.Settings
	if settings.RateLimit == 0 {
		settings.RateLimit = defaultRateLimit
	}
	errs = append(errs, settings.Validate(path)...)
	return errs
}

func (c *Config) setDefaults() {
	if c.URL == "" {
		c.URL = defaultURL
	}
	if c.Role == "" {
		c.Role = defaultRole
	}
	if c.DisableAction == "" {
		c.DisableAction = disableNone
	}
	if c.RateLimit == 0 {
		c.RateLimit = defaultRateLimit
	}
	c.Settings.SetDefaults()
}
