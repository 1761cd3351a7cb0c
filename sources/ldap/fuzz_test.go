package ldap

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// fuzzConfigs are the mappings FuzzMapping runs every entry through.
var fuzzConfigs = []struct {
	name string
	edit func(*Config)
}{
	{"default", nil},
	{"active ad", func(c *Config) { c.Active.From = "ad" }},
	{"active ppolicy", func(c *Config) { c.Active.From = "ppolicy" }},
	{"active attribute", func(c *Config) {
		c.Active = Active{From: "attribute", Attribute: "employeeStatus", True: []string{"Active", "yes"}, False: []string{"Left"}}
	}},
	{"objectGUID", func(c *Config) { c.Attributes.ID = "objectGUID"; c.Active.From = "ad" }},
	{"memberOf cn", func(c *Config) { c.Groups.MemberOf = "memberOf" }},
	{"memberOf dn", func(c *Config) { c.Groups.MemberOf = "memberOf"; c.Groups.Name = "dn" }},
	{"AD", func(c *Config) {
		c.Attributes = Attributes{ID: "objectGUID", Username: "sAMAccountName", Email: "mail", DisplayName: "displayName"}
		c.Groups = Groups{MemberOf: "memberOf", Name: "dn"}
		c.Active.From = "ad"
	}},
}

var guidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// fuzzEntry builds an entry from fuzzed parts. attrs holds one "name:value" a line;
// a name repeated with the same spelling adds a value, with another spelling adds a
// second attribute (a server should not send one, but the mapper must cope). guid,
// uac and expires are added as objectGUID, userAccountControl and accountExpires
// when shape's bits say so; other bits flip their names' case.
func fuzzEntry(shape uint8, dn, attrs string, guid []byte, uac, expires string) *ldap.Entry {
	e := &ldap.Entry{DN: dn}
	add := func(name string, v []byte) {
		for _, a := range e.Attributes {
			if a.Name == name {
				a.Values = append(a.Values, string(v))
				a.ByteValues = append(a.ByteValues, v)
				return
			}
		}
		e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: name, Values: []string{string(v)}, ByteValues: [][]byte{v}})
	}
	for line := range strings.SplitSeq(attrs, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		add(name, []byte(value))
	}
	spell := func(name string, bit uint8) string {
		if shape&bit != 0 {
			return strings.ToUpper(name)
		}
		return name
	}
	if shape&0x01 != 0 {
		add(spell("objectGUID", 0x02), guid)
	}
	if shape&0x04 != 0 || uac != "" {
		add(spell("userAccountControl", 0x08), []byte(uac))
	}
	if shape&0x10 != 0 || expires != "" {
		add(spell("accountExpires", 0x20), []byte(expires))
	}
	return e
}

// FuzzMapping maps arbitrary entries under every kind of configuration and checks
// what the engine relies on: the mapper never panics; an identity has an id or
// problems (an entry without an anchor is always reported); every problem starts
// with the DN; every value handed to the sinks is valid UTF-8; an objectGUID id is in
// its canonical form.
func FuzzMapping(f *testing.F) {
	guid := []byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	full := strings.Join([]string{
		"entryUUID:2f1c0a4e-7b1d-103f-9a2b-5f7c3e8d9a10", "uid:ann", "mail:ann@example.org", "givenName:Ann", "sn:Lee",
		"cn:Ann Lee", "telephoneNumber:+44 20 7946 0001", "telephoneNumber:+44 20 7946 0002",
		"memberOf:cn=Staff,ou=groups,dc=example,dc=org", "memberOf:CN=Admins, OU=Groups,DC=example,DC=org",
		"employeeStatus:Active", "pwdAccountLockedTime:000001010000Z", "sAMAccountName:ann", "displayName:Ann Lee",
	}, "\n")
	for _, s := range []struct {
		shape        uint8
		dn, attrs    string
		guid         []byte
		uac, expires string
	}{
		{0, "uid=ann,ou=people,dc=example,dc=org", full, nil, "", ""},
		{0x01, "CN=Lee\\, Ann,OU=Staff,DC=example,DC=org", full, guid, "512", "9223372036854775807"},
		{0x03, "CN=Lee\\, Ann,OU=Staff,DC=example,DC=org", full, guid, "514", "0"},
		{0x01, "cn=x", "MAIL:x@example.org\nENTRYUUID:1\nGivenName:Zoë", guid[:15], "", ""},
		{0x15, "", "", []byte{}, "", ""},
		{0x15, "uid=ann", "uid:ann\nmail:ann@", nil, "-1", "134116992000000000"},
		{0x05, "uid=ann", "entryUUID:a\nentryUUID:b\nmail:ann@example.org", nil, "0x2", "never"},
		{0, "uid=\\c3\\a9", "entryUUID:\xff\nmail:\xe9@example.org\ncn:Jos\xe9\nmemberOf:cn=\\ff,dc=x\nmemberOf:#04024869", nil, "", ""},
		{0, "uid=x", "entryUUID:  \nmail: a@example.org \nemployeeStatus:LEFT\nmemberOf:not a dn\nmemberOf:", nil, "", ""},
		{0, "uid=ann", "entryUUID:1\nmail:a@example.org\ntelephoneNumber:\xff\xfe", nil, "", ""},
	} {
		f.Add(s.shape, s.dn, s.attrs, s.guid, s.uac, s.expires)
	}
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	cfgs := make([]*Config, len(fuzzConfigs))
	for i, c := range fuzzConfigs {
		cfgs[i] = testConfig(c.edit)
	}
	f.Fuzz(func(t *testing.T, shape uint8, dn, attrs string, guid []byte, uac, expires string) {
		e := fuzzEntry(shape, dn, attrs, guid, uac, expires)
		var knownBugs []string
		for i, cfg := range cfgs {
			m := newMapper(cfg, "dir")
			m.now = now
			id := m.identity(e)
			where := fuzzConfigs[i].name
			if id.ID == "" && len(id.Problems) == 0 {
				t.Errorf("%s: no id and no problems: an entry without an anchor must be reported", where)
			}
			for _, p := range id.Problems {
				if !strings.HasPrefix(p, dn+": ") {
					t.Errorf("%s: problem %q does not start with the DN %q and \": \"", where, p, dn)
				}
				if utf8.ValidString(dn) && !utf8.ValidString(p) {
					t.Errorf("%s: problem %q is not valid UTF-8", where, p)
				}
			}
			if id.Origin != dn || id.Source != "dir" {
				t.Errorf("%s: origin %q source %q, want the DN and dir", where, id.Origin, id.Source)
			}
			for name, v := range map[string]string{"id": id.ID, "username": id.Username, "email": id.Email,
				"first_name": id.FirstName, "last_name": id.LastName, "display_name": id.DisplayName} {
				if !utf8.ValidString(v) {
					t.Errorf("%s: %s %q is not valid UTF-8", where, name, v)
				}
			}
			for _, g := range id.Groups {
				if !utf8.ValidString(g) {
					knownBugs = append(knownBugs, where+": group "+strquote(g))
				}
			}
			for _, a := range id.Attributes {
				for _, v := range a.Values {
					if !utf8.ValidString(v) {
						knownBugs = append(knownBugs, where+": attribute "+a.Name+" "+strquote(v))
					}
				}
			}
			if strings.EqualFold(cfg.Attributes.ID, "objectGUID") && id.ID != "" && !guidPattern.MatchString(id.ID) {
				t.Errorf("%s: objectGUID id %q is not in the canonical form", where, id.ID)
			}
			if id.ID != "" && id.ID != strings.TrimSpace(id.ID) {
				t.Errorf("%s: id %q has spaces around it", where, id.ID)
			}
		}
		if len(knownBugs) > 0 && !t.Failed() {
			t.Error("groups or profile attributes that are not UTF-8: " + strings.Join(knownBugs, "; "))
		}
	})
}

// strquote quotes s for a message, cut to 80 bytes.
func strquote(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q...", s[:80])
	}
	return fmt.Sprintf("%q", s)
}

// FuzzCanonicalDN checks the DN helpers the group mapping uses: canonicalDN and
// groupName never panic, groupName with name: dn is canonicalDN, and canonicalDN is
// idempotent on its own non-empty output (otherwise a DN compared twice, or a group
// named by its DN, would not match itself).
func FuzzCanonicalDN(f *testing.F) {
	for _, dn := range []string{
		"cn=Staff,ou=groups,dc=example,dc=org",
		"CN=Admins, OU=Groups,DC=example,DC=org",
		"cn=a+sn=b,dc=x",
		"cn=Lee\\, Ann,ou=people,dc=x",
		"cn=\\#hash,dc=x",
		"cn=trailing\\ ,dc=x",
		"cn=#04024869,dc=x",
		"cn=\\c3\\a9,dc=x",
		"cn=ÉTÉ;dc=x",
		"",
		" ",
		"not a dn",
		"=",
		"cn=",
	} {
		f.Add(dn)
	}
	f.Fuzz(func(t *testing.T, dn string) {
		c := canonicalDN(dn)
		if g := groupName(dn, "dn"); g != c {
			t.Errorf("groupName(%q, dn) = %q, want canonicalDN's %q", dn, g, c)
		}
		groupName(dn, "cn")
		if c == "" {
			return
		}
		if again := canonicalDN(c); again != c {
			t.Errorf("canonicalDN is not idempotent: canonicalDN(%q) = %q, canonicalDN of that = %q", dn, c, again)
		}
	})
}

// TestCanonicalDNMatchesDNEquality: two DNs have the same canonical form exactly when
// they are the same DN (RFC 4517 distinguishedNameMatch, case-insensitively). Group
// membership by member DN relies on it.
func TestCanonicalDNMatchesDNEquality(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{`cn=Lee\,ou=x,dc=y`, "cn=Lee,ou=x,dc=y"},
		{"cn=a+sn=b,dc=x", "sn=b+cn=a,dc=x"},
		{"CN=Admins, OU=Groups,DC=example,DC=org", "cn=admins,ou=groups,dc=example,dc=org"},
		{`cn=a\2cb,dc=x`, `cn=a\,b,dc=x`},
		{"cn=Ann,dc=x", "cn=Anne,dc=x"},
	} {
		da, errA := ldap.ParseDN(tt.a)
		db, errB := ldap.ParseDN(tt.b)
		if errA != nil || errB != nil {
			t.Fatalf("%q, %q: %v, %v", tt.a, tt.b, errA, errB)
		}
		same := da.EqualFold(db)
		if got := canonicalDN(tt.a) == canonicalDN(tt.b); got != same {
			t.Errorf("%q and %q: canonical forms %q and %q, equal %v; the DNs are equal: %v",
				tt.a, tt.b, canonicalDN(tt.a), canonicalDN(tt.b), got, same)
		}
	}
}
