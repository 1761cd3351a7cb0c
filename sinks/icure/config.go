package icure

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
)

// Config is an icure sink's section of the configuration.
type Config struct {
	// URL is the iCure base URL, the one /rest/v2 is under: https://api.icure.cloud, or
	// http://127.0.0.1:16043 for a kraken-lite on the same host.
	URL string `yaml:"url"`
	// Auth is how idsync authenticates: "basic" (default) sends Username and Password
	// with every request; "token" logs in once (POST /rest/v2/auth/login) and sends the
	// JWT it gets as a bearer token, refreshing it when it expires.
	Auth string `yaml:"auth"`
	// Username and Password are the iCure user idsync acts as (an administrator of the
	// group the users are in). Password may also be an iCure authentication token.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Login is what becomes an account's iCure login: "email" (default) or
	// "username". When that field is empty, the other one is used.
	Login string `yaml:"login"`
	// IDNamespace is the UUID under which account ids are derived from identity ids
	// (see userID). The default suits one idsync per iCure group; two idsync instances
	// that write to the same group with overlapping identity ids need different ones.
	// Changing it after accounts exist makes idsync refuse to adopt them (ErrConflict).
	IDNamespace string `yaml:"id_namespace"`
	// PatientIDAttribute or HealthcarePartyIDAttribute (at most one) names the identity
	// attribute whose first value becomes the account's patientId or
	// healthcarePartyId: the iCure data owner the user acts as.
	PatientIDAttribute         string `yaml:"patient_id_attribute"`
	HealthcarePartyIDAttribute string `yaml:"healthcare_party_id_attribute"`
	// InviteLink is the link a new user's welcome email carries (onboarding: email):
	// {token} and {user_id} are replaced by a temporary token idsync asks iCure for
	// and the user's id, as the application's login page expects them.
	InviteLink string `yaml:"invite_link"`
	// InviteValidity is how long that token works; default 48h, as iCure's SDK's
	// createAndInviteUser.
	InviteValidity time.Duration `yaml:"invite_validity"`
	// InviteAdopted also invites the people whose existing accounts idsync adopts
	// (onboarding's invite_adopted sets it).
	InviteAdopted bool `yaml:"-"`
	// Concurrency, timeout, retries, rate limit and plain http. No rate limit is
	// documented for iCure: none is set by default, and 429s are honoured.
	httpapi.Settings `yaml:",inline"`
}

// Validate returns every problem, each prefixed with path (sinks[0].icure). The
// password is checked by New, which reads it.
func (c *Config) Validate(path string) []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{path, key}, a...)...))
	}
	if u, err := httpapi.ParseURL(c.URL, c.AllowInsecureHTTP); err != nil {
		bad("url", "%v", err)
	} else if strings.Contains(u.Path, "/rest/") || u.RawQuery != "" || u.Fragment != "" {
		bad("url", "%q: give the base URL that /rest/v2 is under, without a query", c.URL)
	}
	switch c.Auth {
	case "", "basic", "token":
	default:
		bad("auth", "%q: basic or token", c.Auth)
	}
	if c.Username == "" {
		bad("username", "required: the iCure user idsync acts as")
	}
	if c.Password == "" && c.PasswordFile == "" {
		bad("password", "required (or password_file)")
	} else if c.Password != "" && c.PasswordFile != "" {
		bad("password", "password and password_file: set one, not both")
	}
	switch c.Login {
	case "", "email", "username":
	default:
		bad("login", "%q: email or username", c.Login)
	}
	if c.IDNamespace != "" {
		if _, err := parseUUID(c.IDNamespace); err != nil {
			bad("id_namespace", "%q: %v", c.IDNamespace, err)
		}
	}
	if c.PatientIDAttribute != "" && c.HealthcarePartyIDAttribute != "" {
		bad("healthcare_party_id_attribute", "set patient_id_attribute or healthcare_party_id_attribute, not both: an iCure user acts as one data owner")
	}
	for _, a := range [...]struct{ key, v string }{{"patient_id_attribute", c.PatientIDAttribute}, {"healthcare_party_id_attribute", c.HealthcarePartyIDAttribute}} {
		if a.v != "" && strings.TrimSpace(a.v) != a.v {
			bad(a.key, "%q: an attribute name without spaces around it", a.v)
		}
	}
	if c.InviteLink != "" {
		if u, err := url.Parse(c.InviteLink); err != nil || u.Scheme != "https" && u.Scheme != "http" || !strings.Contains(c.InviteLink, "{token}") {
			bad("invite_link", "%q: an http(s) URL with {token} in it", c.InviteLink)
		}
	}
	if c.InviteValidity < 0 {
		bad("invite_validity", "must be positive")
	}
	errs = append(errs, c.Settings.Validate(path)...)
	return errs
}

func (c *Config) setDefaults() {
	if c.InviteValidity == 0 {
		c.InviteValidity = 48 * time.Hour
	}
	if c.Auth == "" {
		c.Auth = "basic"
	}
	if c.Login == "" {
		c.Login = "email"
	}
	if c.IDNamespace == "" {
		c.IDNamespace = defaultNamespace
	}
	c.Settings.SetDefaults()
}
