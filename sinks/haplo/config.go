package haplo

import (
	"fmt"
	"regexp"

	"github.com/idsync/idsync/internal/httpapi"
)

// Config is a haplo sink's section of the configuration.
type Config struct {
	// URL is the application's own URL, https://app.example.org.
	URL string `yaml:"url"`
	// UserAPIKey is a key for the user API v0 service user (path /api/v0-user/).
	UserAPIKey     string `yaml:"user_api_key"`
	UserAPIKeyFile string `yaml:"user_api_key_file"`
	// ImportAPIKey is a key for the push-data REST API named ImportName.
	ImportAPIKey     string `yaml:"import_api_key"`
	ImportAPIKeyFile string `yaml:"import_api_key_file"`
	ImportName       string `yaml:"import_name"`
	// IDTag is the user tag that holds the identity's id, so that a lost snapshot can
	// be rebuilt and a repeated create adopts its own account. Default idsync_id.
	IDTag string `yaml:"id_tag"`
	// AdoptByUsername lets a create that meets an existing account with the same
	// username tag and no id tag take it over. Default true.
	AdoptByUsername *bool `yaml:"adopt_by_username"`
	// ProfileType and PastProfileType are the type API codes of current and past
	// people's profiles. Defaults std:type:person and std:type:person:past.
	ProfileType     string `yaml:"profile_type"`
	PastProfileType string `yaml:"past_profile_type"`
	// Groups maps the sources' group names to Haplo group API codes. The codes are
	// idsync's managed groups; an account's other direct groups are kept.
	Groups map[string]string `yaml:"groups"`
	// Attributes maps identity attribute names to push-data record fields, which the
	// control file reads.
	Attributes map[string]string `yaml:"attributes"`
	// ProfileCodes makes profile creation safe to repeat. Each profile record carries
	// a behaviour code derived from the identity's id (see profileCode), which the
	// shipped control file writes to the profile's std:attribute:configured-behaviour
	// and looks up with haplo:code-to-ref before it makes a new profile. A push
	// repeated after a lost answer, or by the run after a crash, then finds the
	// profile the first one made instead of making a second; so such pushes are also
	// retried like any other request. Haplo's default person type lacks that
	// attribute: the application must add it to std:type:person (its requirements
	// schema), and Haplo must run the control file idsync ships. idsync checks both
	// with a probe record before its first push, and stops the sink if either is
	// missing. idsync then owns that attribute on its profiles. Default false.
	ProfileCodes bool `yaml:"profile_codes"`
	// Concurrency, timeout, retries, rate limit and plain http.
	httpapi.Settings `yaml:",inline"`
}

var (
	recordField = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	apiName     = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	groupCode   = regexp.MustCompile(`^([a-z0-9_-]+:[a-z0-9:_-]+|group:[0-9]+)$`)
	typeCode    = regexp.MustCompile(`^[a-zA-Z0-9_-]+:[a-zA-Z0-9:_-]+$`)
)

// reservedFields are the record fields idsync fills itself.
var reservedFields = map[string]bool{"ref": true, "first": true, "last": true, "email": true, "type": true, "code": true, "touch": true}

// Validate returns every problem, each prefixed with path (sinks[0].haplo). Secrets
// are checked by New, which reads them.
func (c *Config) Validate(path string) []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{path, key}, a...)...))
	}
	if u, err := httpapi.ParseURL(c.URL, c.AllowInsecureHTTP); err != nil {
		bad("url", "%v", err)
	} else if u.Path != "" && u.Path != "/" {
		bad("url", "%q: give the application's root URL, without a path", c.URL)
	}
	if c.UserAPIKey == "" && c.UserAPIKeyFile == "" {
		bad("user_api_key", "required (or user_api_key_file)")
	}
	if c.ImportAPIKey == "" && c.ImportAPIKeyFile == "" {
		bad("import_api_key", "required (or import_api_key_file)")
	}
	if c.ImportName == "" {
		bad("import_name", "required: the name of the push-data REST API")
	} else if !apiName.MatchString(c.ImportName) {
		bad("import_name", "%q: letters, digits, - and _ only", c.ImportName)
	}
	if c.IDTag != "" && (c.IDTag == "username" || !recordField.MatchString(c.IDTag)) {
		bad("id_tag", "%q: a lowercase tag name other than username", c.IDTag)
	}
	for key, v := range map[string]string{"profile_type": c.ProfileType, "past_profile_type": c.PastProfileType} {
		if v != "" && !typeCode.MatchString(v) {
			bad(key, "%q is not a type API code such as std:type:person", v)
		}
	}
	if c.ProfileType != "" && c.ProfileType == c.PastProfileType {
		bad("past_profile_type", "must differ from profile_type, or leavers' profiles are never marked past")
	}
	for name, code := range c.Groups {
		if !groupCode.MatchString(code) {
			bad("groups."+name, "%q is not a group API code such as haplo:group:staff", code)
		}
		if code == "std:group:everyone" {
			bad("groups."+name, "std:group:everyone is implicit and cannot be managed")
		}
	}
	for name, field := range c.Attributes {
		if !recordField.MatchString(field) || reservedFields[field] {
			bad("attributes."+name, "%q: a lowercase record field other than %s", field, "ref, first, last, email, type, code, touch")
		}
	}
	errs = append(errs, c.Settings.Validate(path)...)
	return errs
}

func (c *Config) setDefaults() {
	if c.IDTag == "" {
		c.IDTag = "idsync_id"
	}
	if c.AdoptByUsername == nil {
		t := true
		c.AdoptByUsername = &t
	}
	if c.ProfileType == "" {
		c.ProfileType = "std:type:person"
	}
	if c.PastProfileType == "" {
		c.PastProfileType = "std:type:person:past"
	}
	c.Settings.SetDefaults()
}
