package ldap

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	dsync "github.com/idsync/idsync/sync"
)

// identity is fill into a new identity.
func (m *mapper) identity(e *ldap.Entry) dsync.Identity {
	var id dsync.Identity
	m.fill(&id, e)
	return id
}

func entry(dn string, attrs map[string][]string) *ldap.Entry {
	e := &ldap.Entry{DN: dn}
	for _, name := range sortedKeysOf(attrs) {
		a := &ldap.EntryAttribute{Name: name, Values: attrs[name]}
		for _, v := range attrs[name] {
			a.ByteValues = append(a.ByteValues, []byte(v))
		}
		e.Attributes = append(e.Attributes, a)
	}
	return e
}

func sortedKeysOf(m map[string][]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func testConfig(edit func(*Config)) *Config {
	c := &Config{URL: "ldap://127.0.0.1", BindDN: "cn=x", BindPassword: "p",
		Searches:          []Search{{BaseDN: "ou=people,dc=example,dc=org"}},
		ProfileAttributes: map[string]string{"phone": "telephoneNumber"},
	}
	if edit != nil {
		edit(c)
	}
	c.setDefaults()
	return c
}

func TestGUIDString(t *testing.T) {
	raw := []byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	if got, want := guidString(raw), "12345678-1234-5678-1234-56789abcdef0"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestADTime(t *testing.T) {
	// 2026-01-01T00:00:00Z in AD's 100 ns intervals since 1601.
	if got, want := adTime(134116992000000000), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestIdentityMapping(t *testing.T) {
	dn := "uid=ann,ou=people,dc=example,dc=org"
	base := map[string][]string{
		"entryUUID": {"a1b2"}, "uid": {"ann"}, "mail": {"ann@example.org"}, "givenName": {"Ann"}, "sn": {"Lee"},
		"cn": {"Ann Lee"}, "telephoneNumber": {"+1 555", "+1 556"},
		"memberOf": {"cn=Staff,ou=groups,dc=example,dc=org", "CN=Admins, OU=Groups,DC=example,DC=org"},
	}
	with := func(edit func(map[string][]string)) map[string][]string {
		m := map[string][]string{}
		for k, v := range base {
			m[k] = v
		}
		edit(m)
		return m
	}
	tests := []struct {
		name       string
		cfg        func(*Config)
		attrs      map[string][]string
		wantID     string
		wantActive bool
		problem    string
		groups     []string
	}{
		{"complete", func(c *Config) { c.Groups.MemberOf = "memberOf" }, base, "a1b2", true, "", []string{"Admins", "Staff"}},
		{"group names as DNs", func(c *Config) { c.Groups.MemberOf = "memberOf"; c.Groups.Name = "dn" }, base, "a1b2", true, "",
			[]string{"cn=admins,ou=groups,dc=example,dc=org", "cn=staff,ou=groups,dc=example,dc=org"}},
		{"no id", nil, with(func(m map[string][]string) { delete(m, "entryUUID") }), "", true, "no entryUUID", nil},
		{"two ids", nil, with(func(m map[string][]string) { m["entryUUID"] = []string{"a", "b"} }), "", true, "2 values", nil},
		{"no mail", nil, with(func(m map[string][]string) { delete(m, "mail") }), "a1b2", true, dn + ": no mail", nil},
		{"bad mail", nil, with(func(m map[string][]string) { m["mail"] = []string{"ann@"} }), "a1b2", true, "invalid email", nil},
		{"attribute names any case", nil, with(func(m map[string][]string) { m["MAIL"] = m["mail"]; delete(m, "mail") }), "a1b2", true, "", nil},
		{"ppolicy locked", func(c *Config) { c.Active.From = "ppolicy" },
			with(func(m map[string][]string) { m["pwdAccountLockedTime"] = []string{"000001010000Z"} }), "a1b2", false, "", nil},
		{"ppolicy open", func(c *Config) { c.Active.From = "ppolicy" }, base, "a1b2", true, "", nil},
		{"ad disabled", func(c *Config) { c.Active.From = "ad" },
			with(func(m map[string][]string) { m["userAccountControl"] = []string{"514"} }), "a1b2", false, "", nil},
		{"ad enabled, never expires", func(c *Config) { c.Active.From = "ad" },
			with(func(m map[string][]string) {
				m["userAccountControl"] = []string{"512"}
				m["accountExpires"] = []string{"9223372036854775807"}
			}), "a1b2", true, "", nil},
		{"ad expired", func(c *Config) { c.Active.From = "ad" },
			with(func(m map[string][]string) {
				m["userAccountControl"] = []string{"512"}
				m["accountExpires"] = []string{"134116992000000000"}
			}), "a1b2", false, "", nil},
		{"ad unreadable", func(c *Config) { c.Active.From = "ad" }, base, "a1b2", false, "userAccountControl", nil},
		{"attribute value", func(c *Config) {
			c.Active = Active{From: "attribute", Attribute: "employeeStatus", True: []string{"Active"}, False: []string{"Left"}}
		}, with(func(m map[string][]string) { m["employeeStatus"] = []string{"left"} }), "a1b2", false, "", nil},
		{"attribute unknown value", func(c *Config) {
			c.Active = Active{From: "attribute", Attribute: "employeeStatus", True: []string{"Active"}, False: []string{"Left"}}
		}, with(func(m map[string][]string) { m["employeeStatus"] = []string{"maybe"} }), "a1b2", false, `unknown active value "maybe"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMapper(testConfig(tt.cfg), "dir")
			m.now = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
			id := m.identity(entry(dn, tt.attrs))
			if id.ID != tt.wantID || id.Active != tt.wantActive {
				t.Errorf("id %q active %v, want %q %v (problems %q)", id.ID, id.Active, tt.wantID, tt.wantActive, id.Problems)
			}
			got := strings.Join(id.Problems, "; ")
			if tt.problem == "" && got != "" || !strings.Contains(got, tt.problem) {
				t.Errorf("problems %q, want %q", got, tt.problem)
			}
			if tt.problem != "" && !strings.HasPrefix(got, dn+": ") {
				t.Errorf("problem %q does not start with the DN", got)
			}
			slices.Sort(id.Groups)
			if !slices.Equal(id.Groups, tt.groups) {
				t.Errorf("groups %q, want %q", id.Groups, tt.groups)
			}
			if tt.problem == "" && !slices.Equal(id.Attributes.Get("phone"), []string{"+1 555", "+1 556"}) {
				t.Errorf("phone %q, want both values", id.Attributes.Get("phone"))
			}
		})
	}
}

func TestMembership(t *testing.T) {
	m := newMembership("cn", "uniqueMember")
	m.add(entry("cn=staff,ou=groups,dc=x", map[string][]string{"uniqueMember": {"UID=ann, ou=People,dc=x#'0101'B", "uid=bob,ou=people,dc=x"}}))
	m.add(entry("cn=admins,ou=groups,dc=x", map[string][]string{"uniqueMember": {"uid=ann,ou=people,dc=x"}}))
	ids := []struct{ dn, want string }{{"uid=ann,ou=people,dc=x", "admins,staff"}, {"uid=bob,ou=people,dc=x", "staff"}, {"uid=cy,ou=people,dc=x", ""}}
	for _, tt := range ids {
		got := newMapper(testConfig(nil), "dir").identity(entry(tt.dn, map[string][]string{"entryUUID": {"1"}, "mail": {"a@b.org"}}))
		list := []dsync.Identity{got}
		m.assign(list)
		slices.Sort(list[0].Groups)
		if g := strings.Join(list[0].Groups, ","); g != tt.want {
			t.Errorf("%s: groups %q, want %q", tt.dn, g, tt.want)
		}
	}
	uids := newMembership("cn", "memberUid")
	uids.add(entry("cn=dev,ou=groups,dc=x", map[string][]string{"memberUid": {"Ann"}}))
	list := []dsync.Identity{{Username: "ann"}, {Username: "bob"}}
	uids.assign(list)
	if !slices.Equal(list[0].Groups, []string{"dev"}) || len(list[1].Groups) != 0 {
		t.Errorf("memberUid groups %q %q, want [dev] []", list[0].Groups, list[1].Groups)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"good", func(*Config) {}, ""},
		{"no url", func(c *Config) { c.URL = "" }, "ldap.url: required"},
		{"http url", func(c *Config) { c.URL = "http://x" }, "scheme must be ldap"},
		{"ldaps with starttls", func(c *Config) { c.URL = "ldaps://x"; c.StartTLS = true }, "start_tls is for ldap://"},
		{"anonymous by default refused", func(c *Config) { c.BindDN, c.BindPassword = "", "" }, "bind_dn: required"},
		{"anonymous explicitly", func(c *Config) { c.BindDN, c.BindPassword, c.Anonymous = "", "", true }, ""},
		{"bad filter", func(c *Config) { c.Searches[0].Filter = "(uid=" }, "searches[0].filter"},
		{"bad base", func(c *Config) { c.Searches[0].BaseDN = "not a dn" }, "searches[0].base_dn"},
		{"bad scope", func(c *Config) { c.Searches[0].Scope = "deep" }, "searches[0].scope"},
		{"no searches", func(c *Config) { c.Searches = nil }, "at least one search"},
		{"groups both ways", func(c *Config) { c.Groups = Groups{MemberOf: "memberOf", Search: &GroupSearch{BaseDN: "ou=g,dc=x"}} }, "not both"},
		{"bad member attribute", func(c *Config) { c.Groups.Search = &GroupSearch{BaseDN: "ou=g,dc=x", MemberAttribute: "owner"} }, "member_attribute"},
		{"active attribute without values", func(c *Config) { c.Active = Active{From: "attribute", Attribute: "x"} }, "list the values"},
		{"bad referrals", func(c *Config) { c.Referrals = "follow" }, "fail or skip"},
		{"incremental", func(c *Config) { c.Incremental, c.FullEvery = true, time.Hour }, ""},
		{"full_every alone", func(c *Config) { c.FullEvery = time.Hour }, "full_every: is for incremental: true"},
		{"incremental by USN", func(c *Config) { c.Incremental, c.IncrementalBy = true, "uSNChanged" }, ""},
		{"incremental_by alone", func(c *Config) { c.IncrementalBy = "uSNChanged" }, "incremental_by: is for incremental: true"},
		{"bad incremental_by", func(c *Config) { c.Incremental, c.IncrementalBy = true, "whenChanged" }, `incremental_by: "whenChanged": modifyTimestamp or uSNChanged`},
		{"nested groups", func(c *Config) { c.Groups.Search = &GroupSearch{BaseDN: "ou=g,dc=x", Nested: true} }, ""},
		{"nested groups by memberUid", func(c *Config) {
			c.Groups.Search = &GroupSearch{BaseDN: "ou=g,dc=x", Nested: true, MemberAttribute: "memberUid"}
		}, "groups.search.nested: resolves Active Directory's member values"},
		{"incremental with a group search", func(c *Config) {
			c.Incremental, c.Groups.Search = true, &GroupSearch{BaseDN: "ou=g,dc=x"}
		}, "ldap.incremental: groups from a group search cannot be read incrementally"},
	}
	for _, tt := range tests {
		c := Config{URL: "ldap://127.0.0.1:389", BindDN: "cn=idsync,dc=x", BindPassword: "p", Searches: []Search{{BaseDN: "ou=people,dc=x"}}}
		tt.edit(&c)
		var msgs []string
		for _, e := range c.Validate("sources[0].ldap") {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "\n")
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
