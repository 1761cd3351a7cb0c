package ldap

import (
	"encoding/binary"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	dsync "github.com/idsync/idsync/sync"
)

// mapper turns entries into identities.
type mapper struct {
	cfg    *Config
	source string
	now    time.Time
	names  map[string]string // group DN -> group name, parsed once
	// profile lists the profile attributes' names in order, sorted once rather than
	// for every entry.
	profile []string
}

func newMapper(cfg *Config, source string) *mapper {
	return &mapper{cfg: cfg, source: source, now: time.Now(), names: make(map[string]string),
		profile: slices.Sorted(maps.Keys(cfg.ProfileAttributes))}
}

// attributes lists every attribute the mapping reads: searches ask for them by name.
func (m *mapper) attributes() []string {
	a := m.cfg.Attributes
	attrs := []string{a.ID, a.Username, a.Email, a.FirstName, a.LastName, a.DisplayName}
	for _, name := range slices.Sorted(maps.Keys(m.cfg.ProfileAttributes)) {
		attrs = append(attrs, m.cfg.ProfileAttributes[name])
	}
	if m.cfg.Groups.MemberOf != "" {
		attrs = append(attrs, m.cfg.Groups.MemberOf)
	}
	switch m.cfg.Active.From {
	case "ad":
		attrs = append(attrs, "userAccountControl", "accountExpires")
	case "ppolicy":
		attrs = append(attrs, "pwdAccountLockedTime")
	case "attribute":
		attrs = append(attrs, m.cfg.Active.Attribute)
	}
	slices.Sort(attrs)
	return slices.CompactFunc(attrs, strings.EqualFold)
}

// values returns an attribute's values, the name compared case-insensitively as LDAP
// does.
func values(e *ldap.Entry, name string) *ldap.EntryAttribute {
	for _, a := range e.Attributes {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

func first(e *ldap.Entry, name string) string {
	if a := values(e, name); a != nil && len(a.Values) > 0 {
		return strings.TrimSpace(a.Values[0])
	}
	return ""
}

// fill maps one entry into *id, which must be the zero Identity: a read fills its
// slice's places directly, rather than copying each identity in. An entry without a
// readable id comes back with an empty ID (the read then disables nobody for absence);
// one with a bad field comes back with Problems (that person is held). Problems name
// the DN.
func (m *mapper) fill(id *dsync.Identity, e *ldap.Entry) {
	a := m.cfg.Attributes
	id.Source, id.Origin = m.source, e.DN
	problem := func(format string, args ...any) {
		id.Problems = append(id.Problems, e.DN+": "+fmt.Sprintf(format, args...))
	}
	id.ID = m.anchor(e, problem)
	id.Username = first(e, a.Username)
	id.Email = first(e, a.Email)
	switch {
	case id.Email == "":
		problem("no %s", a.Email)
	case !dsync.ValidEmail(id.Email):
		problem("%s: invalid email %q", a.Email, id.Email)
	}
	id.FirstName = first(e, a.FirstName)
	id.LastName = first(e, a.LastName)
	id.DisplayName = first(e, a.DisplayName)
	for _, name := range m.profile {
		attr := m.cfg.ProfileAttributes[name]
		v := values(e, attr)
		if v == nil || len(v.Values) == 0 {
			continue
		}
		if id.Attributes == nil {
			id.Attributes = make(dsync.Attributes, 0, len(m.profile)) // m.profile is sorted
		}
		vals := slices.Clone(v.Values)
		for i, val := range vals {
			if p := dsync.CheckMultiline(val, dsync.MaxAttrRunes); p != "" {
				problem("%s: %s", attr, p)
				vals[i] = printable(val)
			}
		}
		id.Attributes = append(id.Attributes, dsync.Attribute{Name: name, Values: vals})
	}
	if attr := m.cfg.Groups.MemberOf; attr != "" {
		if v := values(e, attr); v != nil {
			for _, dn := range v.Values {
				g := m.groupName(dn)
				if p := dsync.CheckText(g, dsync.MaxTextRunes); p != "" {
					problem("%s: group %s", attr, p)
					continue
				}
				if g != "" {
					id.Groups = append(id.Groups, g)
				}
			}
		}
	}
	id.Active = m.active(e, problem)
	fields := []struct {
		attr string
		v    *string
		max  int
	}{
		{a.Username, &id.Username, dsync.MaxTextRunes}, {a.Email, &id.Email, dsync.MaxEmailBytes},
		{a.FirstName, &id.FirstName, dsync.MaxTextRunes}, {a.LastName, &id.LastName, dsync.MaxTextRunes},
		{a.DisplayName, &id.DisplayName, dsync.MaxTextRunes},
	}
	for _, f := range fields {
		if p := dsync.CheckText(*f.v, f.max); p != "" {
			problem("%s: %s", f.attr, p)
			*f.v = printable(*f.v)
		}
	}
}

// printable shortens and mends a rejected value, so that what is kept of it (for the
// report) is valid UTF-8 of a sane length.
func printable(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// anchor reads the id: one value, non-empty; objectGUID is AD's 16-byte binary GUID,
// written as its canonical string.
func (m *mapper) anchor(e *ldap.Entry, problem func(string, ...any)) string {
	attr := m.cfg.Attributes.ID
	v := values(e, attr)
	switch {
	case v == nil || len(v.ByteValues) == 0:
		problem("no %s", attr)
		return ""
	case len(v.ByteValues) > 1:
		problem("%s has %d values", attr, len(v.ByteValues))
		return ""
	}
	raw := v.ByteValues[0]
	if strings.EqualFold(attr, "objectGUID") {
		if len(raw) != 16 {
			problem("objectGUID is %d bytes, not 16", len(raw))
			return ""
		}
		return guidString(raw)
	}
	s := strings.TrimSpace(v.Values[0]) // the same bytes as raw, already a string
	if p := dsync.CheckID(s); p != "" {
		problem("%s: %s", attr, p)
		return ""
	}
	return s
}

// guidString writes an AD objectGUID as Microsoft does: the first three fields are
// little-endian, the last two big-endian.
func guidString(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]),
		b[8:10], b[10:16])
}

// ACCOUNTDISABLE in userAccountControl.
const adAccountDisable = 0x2

// adNever marks an accountExpires that never expires (0 means the same).
const adNever = 0x7FFFFFFFFFFFFFFF

// active reads the entry's active state as configured. An unreadable value is a
// problem (the person is held), never a guess.
func (m *mapper) active(e *ldap.Entry, problem func(string, ...any)) bool {
	switch m.cfg.Active.From {
	case "ad":
		uac := first(e, "userAccountControl")
		flags, err := strconv.ParseInt(uac, 10, 64)
		if err != nil {
			problem("userAccountControl %q is not a number", uac)
			return false
		}
		if flags&adAccountDisable != 0 {
			return false
		}
		if exp := first(e, "accountExpires"); exp != "" {
			n, err := strconv.ParseInt(exp, 10, 64)
			if err != nil {
				problem("accountExpires %q is not a number", exp)
				return false
			}
			if n != 0 && n != adNever && adTime(n).Before(m.now) {
				return false
			}
		}
		return true
	case "ppolicy":
		return values(e, "pwdAccountLockedTime") == nil
	case "attribute":
		v := first(e, m.cfg.Active.Attribute)
		if slices.ContainsFunc(m.cfg.Active.True, func(t string) bool { return strings.EqualFold(t, v) }) {
			return true
		}
		if slices.ContainsFunc(m.cfg.Active.False, func(f string) bool { return strings.EqualFold(f, v) }) {
			return false
		}
		problem("%s: unknown active value %q (true: %s; false: %s)", m.cfg.Active.Attribute, v,
			strings.Join(m.cfg.Active.True, ", "), strings.Join(m.cfg.Active.False, ", "))
		return false
	}
	return true
}

// adTime converts AD's 100-nanosecond intervals since 1601-01-01 UTC.
func adTime(n int64) time.Time {
	const epochDiff = 11644473600 // seconds from 1601 to 1970
	return time.Unix(n/1e7-epochDiff, (n%1e7)*100).UTC()
}

// groupName names a group for the sinks: the value of its DN's first RDN, or the
// whole DN lowercased.
func (m *mapper) groupName(dn string) string {
	if n, ok := m.names[dn]; ok {
		return n
	}
	n := groupName(dn, m.cfg.Groups.Name)
	m.names[dn] = n
	return n
}

func groupName(dn, how string) string {
	if how == "dn" {
		return canonicalDN(dn)
	}
	parsed, err := ldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 || len(parsed.RDNs[0].Attributes) == 0 {
		return ""
	}
	return parsed.RDNs[0].Attributes[0].Value
}

// canonicalDN is a DN in one spelling, for comparing: attribute types and values
// lowercased, the parts of a multi-valued RDN sorted, RFC 4514's special characters
// escaped, no spaces around separators. "" when it does not parse.
func canonicalDN(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for i, rdn := range parsed.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		parts := make([]string, len(rdn.Attributes))
		for j, a := range rdn.Attributes {
			if !attrType.MatchString(a.Type) {
				return "" // not an attribute type: no DN a directory would hold
			}
			parts[j] = strings.ToLower(a.Type) + "=" + escapeDNValue(strings.ToLower(a.Value))
		}
		slices.Sort(parts)
		b.WriteString(strings.Join(parts, "+"))
	}
	return b.String()
}

// attrType is an attribute type: a descriptor or a numeric OID (RFC 4512).
var attrType = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)*)$`)

// escapeDNValue escapes an attribute value as RFC 4514 says, leaving UTF-8 as it is.
func escapeDNValue(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case strings.ContainsRune(`,+"\<>;=`, r),
			i == 0 && (r == ' ' || r == '#'),
			i == len(v)-1 && r == ' ':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == 0:
			b.WriteString(`\00`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
