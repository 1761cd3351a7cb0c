package ldap

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Config is an LDAP source's section of the configuration.
type Config struct {
	// URL, or URLs tried in turn: ldap:// or ldaps://.
	URL  string   `yaml:"url"`
	URLs []string `yaml:"urls"`
	// StartTLS upgrades an ldap:// connection before binding.
	StartTLS bool `yaml:"start_tls"`
	// CAFile is a PEM file of the CAs to trust; the system's pool when empty.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name to verify the server's certificate for; the URL's host
	// when empty.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns certificate verification off. Logged as a warning.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// DialTimeout bounds the connection (default 10s); Timeout each operation,
	// each page of a search included (default 60s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	Timeout     time.Duration `yaml:"timeout"`
	// BindDN and its password; Anonymous must be set to read without binding.
	BindDN           string `yaml:"bind_dn"`
	BindPassword     string `yaml:"bind_password"`
	BindPasswordFile string `yaml:"bind_password_file"`
	Anonymous        bool   `yaml:"anonymous"`
	// PageSize is the paged-results page size (default 500). Every search is paged.
	PageSize int `yaml:"page_size"`
	// Searches find the people: at least one.
	Searches []Search `yaml:"searches"`
	// Attributes maps identity fields to LDAP attributes.
	Attributes Attributes `yaml:"attributes"`
	// ProfileAttributes maps profile attribute names to LDAP attributes; every value
	// of a multi-valued attribute is kept.
	ProfileAttributes map[string]string `yaml:"profile_attributes"`
	// Groups says where group membership comes from.
	Groups Groups `yaml:"groups"`
	// Active says how an entry's active state is read.
	Active Active `yaml:"active"`
	// Incremental reads, after a first full one, only the entries whose
	// modifyTimestamp is past the last read's; a full read still comes every
	// FullEvery (default 24h), since only a full read shows who left. See delta.go.
	Incremental bool          `yaml:"incremental"`
	FullEvery   time.Duration `yaml:"full_every"`
	// IncrementalBy is what a delta is read by: modifyTimestamp (the default) or
	// uSNChanged, Active Directory's update sequence number: exact where a timestamp
	// needs an overlap, but a counter of one DC's own, so the mark names the DC
	// (dsServiceName and invocationId) and a read from another DC is a full one.
	IncrementalBy string `yaml:"incremental_by"`
	// Referrals is what to do with search continuation references (an Active
	// Directory searched from the domain root returns them for its other
	// partitions): "fail" (the default: the read is not complete) or "skip".
	Referrals string `yaml:"referrals"`
}

// Search is one search for people.
type Search struct {
	BaseDN string `yaml:"base_dn"`
	Filter string `yaml:"filter"` // default (objectClass=person)
	Scope  string `yaml:"scope"`  // base, one or sub (default)
}

// Attributes maps identity fields to attribute names. The defaults are OpenLDAP's
// inetOrgPerson: entryUUID, uid, mail, givenName, sn, cn. An id attribute named
// objectGUID is read as Active Directory's binary GUID.
type Attributes struct {
	ID          string `yaml:"id"`
	Username    string `yaml:"username"`
	Email       string `yaml:"email"`
	FirstName   string `yaml:"first_name"`
	LastName    string `yaml:"last_name"`
	DisplayName string `yaml:"display_name"`
}

// Groups says where membership comes from: an attribute of the person (memberOf),
// or a search for groups, or neither.
type Groups struct {
	// MemberOf is the person's attribute that lists group DNs, e.g. memberOf.
	MemberOf string `yaml:"member_of"`
	// Search finds groups and reads their members.
	Search *GroupSearch `yaml:"search"`
	// Name is how a group is named to the sinks: "cn" (default: the value of the
	// DN's first RDN) or "dn" (the whole DN, lowercased).
	Name string `yaml:"name"`
}

// GroupSearch finds groups and their members.
type GroupSearch struct {
	BaseDN string `yaml:"base_dn"`
	Filter string `yaml:"filter"` // default (|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))
	Scope  string `yaml:"scope"`
	// MemberAttribute is member (default), uniqueMember (DNs) or memberUid (usernames).
	// Active Directory gives a large group's member values in ranges
	// (member;range=0-1499); they are read whole.
	MemberAttribute string `yaml:"member_attribute"`
	// Nested (Active Directory only) counts the members of the groups a group holds,
	// to any depth: instead of reading each group's member values, idsync searches the
	// people (each of searches, its filter and) (memberOf:1.2.840.113556.1.4.1941:=<group
	// DN>), LDAP_MATCHING_RULE_IN_CHAIN, which the DC resolves. One search per group
	// found: keep the group filter to the groups the sinks use.
	Nested bool `yaml:"nested"`
}

// Active says how to tell an active person from one who left.
type Active struct {
	// From is "" (everyone found is active), "ad" (userAccountControl's
	// ACCOUNTDISABLE bit, and accountExpires), "ppolicy" (pwdAccountLockedTime
	// present means locked) or "attribute" (Attribute's value, in True or False).
	From      string   `yaml:"from"`
	Attribute string   `yaml:"attribute"`
	True      []string `yaml:"true"`
	False     []string `yaml:"false"`
}

func (c *Config) setDefaults() {
	if c.URL != "" && len(c.URLs) == 0 {
		c.URLs = []string{c.URL}
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.PageSize == 0 {
		c.PageSize = 500
	}
	for i := range c.Searches {
		s := &c.Searches[i]
		s.Filter = cmpOr(s.Filter, "(objectClass=person)")
		s.Scope = cmpOr(s.Scope, "sub")
	}
	a := &c.Attributes
	a.ID = cmpOr(a.ID, "entryUUID")
	a.Username = cmpOr(a.Username, "uid")
	a.Email = cmpOr(a.Email, "mail")
	a.FirstName = cmpOr(a.FirstName, "givenName")
	a.LastName = cmpOr(a.LastName, "sn")
	a.DisplayName = cmpOr(a.DisplayName, "cn")
	if g := c.Groups.Search; g != nil {
		g.Filter = cmpOr(g.Filter, "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))")
		g.Scope = cmpOr(g.Scope, "sub")
		g.MemberAttribute = cmpOr(g.MemberAttribute, "member")
	}
	c.Groups.Name = cmpOr(c.Groups.Name, "cn")
	c.Referrals = cmpOr(c.Referrals, "fail")
	if c.FullEvery == 0 {
		c.FullEvery = 24 * time.Hour
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var scopes = map[string]int{"base": ldap.ScopeBaseObject, "one": ldap.ScopeSingleLevel, "sub": ldap.ScopeWholeSubtree}

// Validate returns every problem, each prefixed with path (sources[0].ldap). It
// compiles the filters and parses the DNs; it reads no file and dials nothing.
func (c *Config) Validate(path string) []error {
	d := *c
	d.Searches = slices.Clone(c.Searches)
	if c.Groups.Search != nil {
		gs := *c.Groups.Search
		d.Groups.Search = &gs
	}
	d.setDefaults()
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{path, key}, a...)...))
	}
	switch {
	case c.URL != "" && len(c.URLs) > 0:
		bad("urls", "set url or urls, not both")
	case len(d.URLs) == 0:
		bad("url", "required")
	}
	for i, u := range d.URLs {
		key := "url"
		if len(c.URLs) > 0 {
			key = fmt.Sprintf("urls[%d]", i)
		}
		p, err := url.Parse(u)
		switch {
		case err != nil || p.Host == "":
			bad(key, "%q is not an ldap:// or ldaps:// URL", u)
		case p.Scheme != "ldap" && p.Scheme != "ldaps":
			bad(key, "%q: the scheme must be ldap or ldaps", u)
		case p.Scheme == "ldaps" && c.StartTLS:
			bad(key, "%q: start_tls is for ldap:// URLs; ldaps:// is TLS already", u)
		case p.Path != "" && p.Path != "/":
			bad(key, "%q: give the server only; the base DN goes in searches", u)
		}
	}
	switch {
	case c.Anonymous && (c.BindDN != "" || c.BindPassword != "" || c.BindPasswordFile != ""):
		bad("anonymous", "an anonymous bind takes no bind_dn or password")
	case !c.Anonymous && c.BindDN == "":
		bad("bind_dn", "required (or anonymous: true to read without binding)")
	case !c.Anonymous && c.BindPassword == "" && c.BindPasswordFile == "":
		bad("bind_password", "required (or bind_password_file)")
	case c.BindDN != "":
		if _, err := ldap.ParseDN(c.BindDN); err != nil {
			bad("bind_dn", "%q: %v", c.BindDN, err)
		}
	}
	switch {
	case c.FullEvery < 0:
		bad("full_every", "must be positive")
	case c.FullEvery > 0 && !c.Incremental:
		bad("full_every", "is for incremental: true")
	case c.IncrementalBy != "" && !c.Incremental:
		bad("incremental_by", "is for incremental: true")
	case c.IncrementalBy != "" && c.IncrementalBy != stampAttribute && c.IncrementalBy != usnAttribute:
		bad("incremental_by", "%q: %s or %s", c.IncrementalBy, stampAttribute, usnAttribute)
	case c.Incremental && c.Groups.Search != nil:
		bad("incremental", "groups from a group search cannot be read incrementally: a person taken out of a group is not a change to the person's entry (use groups.member_of, or full reads)")
	}
	if c.PageSize < 0 || c.PageSize > 100000 {
		bad("page_size", "%d: between 1 and 100000", c.PageSize)
	}
	if c.DialTimeout < 0 || c.Timeout < 0 {
		bad("timeout", "must be positive")
	}
	if len(c.Searches) == 0 {
		bad("searches", "at least one search is required")
	}
	for i, s := range d.Searches {
		errs = append(errs, checkSearch(fmt.Sprintf("%s.searches[%d]", path, i), s.BaseDN, s.Filter, s.Scope)...)
	}
	if g := d.Groups.Search; g != nil {
		errs = append(errs, checkSearch(path+".groups.search", g.BaseDN, g.Filter, g.Scope)...)
		switch strings.ToLower(g.MemberAttribute) {
		case "member", "uniquemember", "memberuid":
		default:
			bad("groups.search.member_attribute", "%q: member, uniqueMember or memberUid", g.MemberAttribute)
		}
		if g.Nested && !strings.EqualFold(g.MemberAttribute, "member") {
			bad("groups.search.nested", "resolves Active Directory's member values (memberOf in chain), not %s", g.MemberAttribute)
		}
	}
	if c.Groups.MemberOf != "" && c.Groups.Search != nil {
		bad("groups", "member_of or search, not both")
	}
	if d.Groups.Name != "cn" && d.Groups.Name != "dn" {
		bad("groups.name", "%q: cn or dn", c.Groups.Name)
	}
	switch c.Active.From {
	case "", "ad", "ppolicy":
		if c.Active.Attribute != "" || len(c.Active.True) > 0 || len(c.Active.False) > 0 {
			bad("active", "attribute, true and false go with from: attribute")
		}
	case "attribute":
		if c.Active.Attribute == "" {
			bad("active.attribute", "required with from: attribute")
		}
		if len(c.Active.True) == 0 || len(c.Active.False) == 0 {
			bad("active", "list the values that mean active (true) and inactive (false)")
		}
		for _, t := range c.Active.True {
			if slices.ContainsFunc(c.Active.False, func(f string) bool { return strings.EqualFold(f, t) }) {
				bad("active", "%q is listed in both true and false", t)
			}
		}
	default:
		bad("active.from", "%q: ad, ppolicy or attribute", c.Active.From)
	}
	if d.Referrals != "fail" && d.Referrals != "skip" {
		bad("referrals", "%q: fail or skip", c.Referrals)
	}
	for name, attr := range c.ProfileAttributes {
		if attr == "" {
			bad("profile_attributes."+name, "required")
		}
	}
	return errs
}

func checkSearch(path, base, filter, scope string) []error {
	var errs []error
	if base == "" {
		errs = append(errs, fmt.Errorf("%s.base_dn: required", path))
	} else if _, err := ldap.ParseDN(base); err != nil {
		errs = append(errs, fmt.Errorf("%s.base_dn: %q: %v", path, base, err))
	}
	if _, err := ldap.CompileFilter(filter); err != nil {
		errs = append(errs, fmt.Errorf("%s.filter: %q: %v", path, filter, err))
	}
	if _, ok := scopes[scope]; !ok {
		errs = append(errs, fmt.Errorf("%s.scope: %q: base, one or sub", path, scope))
	}
	return errs
}
