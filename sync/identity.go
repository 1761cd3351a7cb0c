// Package sync is idsync's engine: the Identity a source reads, the pure Diff that
// turns a snapshot and the sources' truth into a Plan, the guards that hold suspicious
// plans, and the Engine that applies a plan to a sink and records every step.
//
// It imports none of idsync's sources, sinks or stores: they import it for its types,
// and the interfaces they satisfy (Source, Sink, Store) are declared here, by their
// consumer.
package sync

import (
	"net/mail"
	"slices"
	"strings"
	"unicode"
)

// Identity is one person as the sources describe them.
//
// ID is the anchor: it never changes for a person (LDAP entryUUID, AD objectGUID, an
// HR employee number). Usernames and emails change; they are data, not keys.
type Identity struct {
	ID          string     `json:"id"`
	Username    string     `json:"username,omitempty"`
	Email       string     `json:"email,omitempty"`
	FirstName   string     `json:"first_name,omitempty"`
	LastName    string     `json:"last_name,omitempty"`
	DisplayName string     `json:"display_name,omitempty"`
	Active      bool       `json:"active"`
	Groups      []string   `json:"groups,omitempty"`
	Attributes  Attributes `json:"attributes,omitempty"`

	// Source names the configured source the identity came from, and Origin where in
	// it: "people.csv:12" or a DN. Both are for reports; neither is compared or stored.
	Source string `json:"-"`
	Origin string `json:"-"`

	// Problems, when not empty, mark the identity as present but invalid. Every sink
	// leaves it exactly as it is: present-but-broken is never treated as gone.
	Problems []string `json:"-"`
}

// Valid reports whether the identity has no problems.
func (id *Identity) Valid() bool { return len(id.Problems) == 0 }

// Where names the identity's source and origin for a report: "staff (people.csv:12)".
func (id *Identity) Where() string {
	switch {
	case id.Source == "":
		return id.Origin
	case id.Origin == "":
		return id.Source
	}
	return id.Source + " (" + id.Origin + ")"
}

// FieldSet is a set of an identity's data fields: the fields a record kind holds, or
// the fields an update changes. Each Field constant is a set of one.
type FieldSet uint16

const (
	FieldUsername FieldSet = 1 << iota
	FieldEmail
	FieldFirstName
	FieldLastName
	FieldDisplayName
	FieldGroups
	FieldAttributes
)

// AllFields holds every data field. Active is state, not data: enable and disable
// operations carry it.
const AllFields = FieldUsername | FieldEmail | FieldFirstName | FieldLastName |
	FieldDisplayName | FieldGroups | FieldAttributes

var fieldNames = []struct {
	f    FieldSet
	name string
}{
	{FieldUsername, "username"},
	{FieldEmail, "email"},
	{FieldFirstName, "first_name"},
	{FieldLastName, "last_name"},
	{FieldDisplayName, "display_name"},
	{FieldGroups, "groups"},
	{FieldAttributes, "attributes"},
}

// Has reports whether any field of f is in the set.
func (s FieldSet) Has(f FieldSet) bool { return s&f != 0 }

// Names lists the set's fields by their config names, in a fixed order.
func (s FieldSet) Names() []string {
	var names []string
	for _, fn := range fieldNames {
		if s.Has(fn.f) {
			names = append(names, fn.name)
		}
	}
	return names
}

func (s FieldSet) String() string { return strings.Join(s.Names(), ",") }

// Changed returns the fields in set whose values differ between a and b.
func Changed(a, b *Identity, set FieldSet) FieldSet {
	var c FieldSet
	diff := func(f FieldSet, differ bool) {
		if set.Has(f) && differ {
			c |= f
		}
	}
	diff(FieldUsername, a.Username != b.Username)
	diff(FieldEmail, a.Email != b.Email)
	diff(FieldFirstName, a.FirstName != b.FirstName)
	diff(FieldLastName, a.LastName != b.LastName)
	diff(FieldDisplayName, a.DisplayName != b.DisplayName)
	diff(FieldGroups, !slices.Equal(a.Groups, b.Groups))
	diff(FieldAttributes, !a.Attributes.Equal(b.Attributes))
	return c
}

// Clone returns a copy of id that shares nothing writable with it: its lists and
// attributes are copied.
func (id *Identity) Clone() *Identity {
	c := *id
	c.Groups = slices.Clone(id.Groups)
	c.Problems = slices.Clone(id.Problems)
	c.Attributes = id.Attributes.Clone()
	return &c
}

// Project returns a copy of id that keeps only the fields in set, plus ID and Active.
// It is what a record kind holds of an identity, and so what the snapshot stores.
func Project(id Identity, set FieldSet) Identity {
	p := Identity{ID: id.ID, Active: id.Active}
	if set.Has(FieldUsername) {
		p.Username = id.Username
	}
	if set.Has(FieldEmail) {
		p.Email = id.Email
	}
	if set.Has(FieldFirstName) {
		p.FirstName = id.FirstName
	}
	if set.Has(FieldLastName) {
		p.LastName = id.LastName
	}
	if set.Has(FieldDisplayName) {
		p.DisplayName = id.DisplayName
	}
	if set.Has(FieldGroups) {
		p.Groups = slices.Clone(id.Groups)
	}
	if set.Has(FieldAttributes) && len(id.Attributes) > 0 {
		p.Attributes = id.Attributes.Clone()
	}
	return p
}

// Normalize puts an identity in the canonical form that Diff compares: groups sorted
// and without duplicates, attributes in order of their names, each once, empty ones
// dropped. Sources call it on what they read, so that a reordered group list is not a
// change.
func Normalize(id *Identity) {
	if len(id.Groups) > 0 {
		slices.Sort(id.Groups)
		id.Groups = slices.Compact(id.Groups)
	} else {
		id.Groups = nil
	}
	id.Attributes = slices.DeleteFunc(id.Attributes, func(a Attribute) bool { return len(a.Values) == 0 }).Ordered()
	if len(id.Attributes) == 0 {
		id.Attributes = nil
	}
}

// simpleEmail reports whether s is an address that net/mail certainly takes as it is:
// a dot-atom of ASCII atext, one @, and dot-separated labels of letters, digits and
// hyphens. Most addresses are, and parsing them took a tenth of a CSV read; ValidEmail
// parses only the others. TestSimpleEmail holds it to the parser.
func simpleEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	alnum := func(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' }
	atext := func(c byte) bool { return alnum(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 }
	label := func(c byte) bool { return alnum(c) || c == '-' }
	return dotAtom(s[:at], atext) && dotAtom(s[at+1:], label)
}

// dotAtom reports whether s is runs of characters ok takes, joined by single dots.
func dotAtom(s string, ok func(byte) bool) bool {
	dot := true // at the start, or just after a dot
	for i := range len(s) {
		switch c := s[i]; {
		case c == '.' && !dot:
			dot = true
		case c != '.' && ok(c):
			dot = false
		default:
			return false
		}
	}
	return !dot
}

// ValidEmail reports whether s is a bare email address: what net/mail parses, with
// nothing around it, one @ and a domain without spaces. Sources use it, so that every
// source means the same by an invalid email.
func ValidEmail(s string) bool {
	if len(s) > MaxEmailBytes {
		return false
	}
	if simpleEmail(s) {
		return true
	}
	if CheckText(s, MaxEmailBytes) != "" {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || strings.Count(s, "@") != 1 {
		return false
	}
	domain := s[strings.IndexByte(s, '@')+1:]
	return domain != "" && !strings.ContainsFunc(domain, unicode.IsSpace)
}
