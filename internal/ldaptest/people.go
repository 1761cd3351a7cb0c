package ldaptest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Person is an inetOrgPerson under ou=people. Empty fields are left out of the entry.
type Person struct {
	UID, GivenName, SN, CN, Mail, Title, Phone string

	// Locked sets pwdAccountLockedTime to 000001010000Z, OpenLDAP's "locked by an
	// administrator until unlocked"; it needs the ppolicy overlay.
	Locked bool

	// Groups are the cn values of the groupOfNames entries under ou=groups that list this
	// person as a member.
	Groups []string
}

var (
	givenNames = []string{"Zoë", "José", "Åsa", "Łukasz", "Chloé", "Søren", "Ana", "Jürgen", "Mary", "Oliver", "Siobhán", "Björn", "Amélie", "Ravi", "Mei", "Nnamdi"}
	surnames   = []string{"Müller", "García", "Nørgaard", "Smith", "Kowalski", "Dvořák", "O'Brien", "Jones", "Nguyễn", "Ødegård", "Patel", "Brown", "Çelik", "Williams", "Chen", "Ó Súilleabháin", "Lee"}
	titles     = []string{"Lecturer", "Senior Lecturer", "Professor", "Research Fellow", "Administrator", "Technician", "Librarian"}
)

// People returns n people, the same n every time: uid p000001 upwards, mail
// p000001@example.org, a mix of names with non-ASCII letters (not unique: cn repeats
// as it does in real directories), a title and a phone number. Person pN is in group
// team-NN (NN = N mod 8), and every 25th person is also in managers. Nobody is locked.
func People(n int) []Person {
	people := make([]Person, n)
	for i := range people {
		num := i + 1
		uid := fmt.Sprintf("p%06d", num)
		given := givenNames[num%len(givenNames)]
		sn := surnames[(num*7)%len(surnames)]
		p := Person{
			UID:       uid,
			GivenName: given,
			SN:        sn,
			CN:        given + " " + sn,
			Mail:      uid + "@example.org",
			Title:     titles[num%len(titles)],
			Phone:     fmt.Sprintf("+44 20 7946 %04d", num%1000),
			Groups:    []string{fmt.Sprintf("team-%02d", num%8)},
		}
		if num%25 == 0 {
			p.Groups = append(p.Groups, "managers")
		}
		people[i] = p
	}
	return people
}

// PersonDN is the DN of a person loaded by Start or PeopleLDIF.
func PersonDN(suffix, uid string) string {
	return "uid=" + escapeDNValue(uid) + ",ou=people," + suffix
}

// GroupDN is the DN of a group named in Person.Groups.
func GroupDN(suffix, cn string) string {
	return "cn=" + escapeDNValue(cn) + ",ou=groups," + suffix
}

// PeopleLDIF renders people as inetOrgPerson entries under ou=people, followed by a
// groupOfNames under ou=groups for every group named, listing its members in order. It
// writes no entryUUID (slapadd assigns one) and no parent entries (Start adds those).
//
// With memberOf, each person also carries the memberOf values of their groups. The
// memberof overlay maintains memberOf only on changes made through slapd (adding a group
// or changing its members), not on slapadd, which writes entries as given; a real
// directory that was loaded from slapcat carries memberOf in its LDIF in just this way,
// and the overlay keeps it right from then on. The memberOf attribute type is defined by
// the memberof module, so slapadd refuses it unless the overlay is on.
func PeopleLDIF(suffix string, people []Person, memberOf bool) []byte {
	var b bytes.Buffer
	writePeople(&b, suffix, people, memberOf)
	return b.Bytes()
}

func writePeople(b *bytes.Buffer, suffix string, people []Person, memberOf bool) {
	b.Grow(len(people) * 600)
	members := map[string][]string{}
	for _, p := range people {
		dn := PersonDN(suffix, p.UID)
		attr(b, "dn", dn)
		b.WriteString("objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n")
		attr(b, "uid", p.UID)
		attr(b, "cn", p.CN)
		attr(b, "sn", p.SN)
		attr(b, "givenName", p.GivenName)
		attr(b, "mail", p.Mail)
		attr(b, "title", p.Title)
		attr(b, "telephoneNumber", p.Phone)
		if p.Locked {
			b.WriteString("pwdAccountLockedTime: 000001010000Z\n")
		}
		seen := make(map[string]bool, len(p.Groups))
		for _, g := range p.Groups {
			if seen[g] {
				continue
			}
			seen[g] = true
			members[g] = append(members[g], dn)
			if memberOf {
				attr(b, "memberOf", GroupDN(suffix, g))
			}
		}
		b.WriteByte('\n')
	}
	groups := make([]string, 0, len(members))
	for g := range members {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		attr(b, "dn", GroupDN(suffix, g))
		b.WriteString("objectClass: top\nobjectClass: groupOfNames\n")
		attr(b, "cn", g)
		for _, m := range members[g] {
			attr(b, "member", m)
		}
		b.WriteByte('\n')
	}
}

// writeBase writes the suffix's entry, the three organizational units, the service
// account and, with ppolicy, ou=policies and the default policy.
func writeBase(b *bytes.Buffer, suffix, serviceDN, servicePassword string, ppolicy bool) error {
	rdnAttr, rdnValue, ok := strings.Cut(firstRDN(suffix), "=")
	if !ok || strings.ContainsAny(rdnValue, `\+`) {
		return fmt.Errorf("suffix %q: want a first RDN like dc=example, o=example or ou=example", suffix)
	}
	attr(b, "dn", suffix)
	switch strings.ToLower(rdnAttr) {
	case "dc":
		b.WriteString("objectClass: top\nobjectClass: dcObject\nobjectClass: organization\n")
		attr(b, "dc", rdnValue)
		attr(b, "o", rdnValue)
	case "o":
		b.WriteString("objectClass: top\nobjectClass: organization\n")
		attr(b, "o", rdnValue)
	case "ou":
		b.WriteString("objectClass: top\nobjectClass: organizationalUnit\n")
		attr(b, "ou", rdnValue)
	default:
		return fmt.Errorf("suffix %q: want a first RDN of dc=, o= or ou=", suffix)
	}
	b.WriteByte('\n')
	for _, ou := range []string{"people", "groups", "services"} {
		attr(b, "dn", "ou="+ou+","+suffix)
		b.WriteString("objectClass: top\nobjectClass: organizationalUnit\n")
		attr(b, "ou", ou)
		b.WriteByte('\n')
	}
	attr(b, "dn", serviceDN)
	b.WriteString("objectClass: top\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: idsync\n")
	attr(b, "description", "idsync's service account: reads everything, writes nothing")
	attr(b, "userPassword", servicePassword)
	b.WriteByte('\n')
	if ppolicy {
		attr(b, "dn", "ou=policies,"+suffix)
		b.WriteString("objectClass: top\nobjectClass: organizationalUnit\nou: policies\n\n")
		attr(b, "dn", policyDN(suffix))
		b.WriteString("objectClass: top\nobjectClass: applicationProcess\nobjectClass: pwdPolicy\ncn: default\n")
		b.WriteString("pwdAttribute: userPassword\npwdLockout: TRUE\n\n")
	}
	return nil
}

// attr writes one LDIF line, base64-encoded when the value is not a SAFE-STRING
// (RFC 2849): non-ASCII, or starting with a space, colon or '<', or ending with a space.
// Values are short, so lines are not folded.
func attr(b *bytes.Buffer, name, value string) {
	if value == "" && name != "dn" {
		return
	}
	b.WriteString(name)
	if safe(value) {
		b.WriteString(": ")
		b.WriteString(value)
	} else {
		b.WriteString(":: ")
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(value)))
	}
	b.WriteByte('\n')
}

func safe(v string) bool {
	if v == "" {
		return true
	}
	if c := v[0]; c == ' ' || c == ':' || c == '<' || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0 || c == '\n' || c == '\r' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// escapeDNValue escapes an attribute value for a DN string (RFC 4514).
func escapeDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0,
			(c == ' ' || c == '#') && i == 0,
			c == ' ' && i == len(v)-1:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == 0:
			b.WriteString(`\00`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// firstRDN returns the suffix up to its first unescaped comma.
func firstRDN(dn string) string {
	for i := 0; i < len(dn); i++ {
		switch dn[i] {
		case '\\':
			i++
		case ',':
			return strings.TrimSpace(dn[:i])
		}
	}
	return strings.TrimSpace(dn)
}

// policyDN is the ppolicy overlay's default policy: without one, slapd 2.5 stores
// pwdAccountLockedTime but does not refuse a locked person's bind.
func policyDN(suffix string) string { return "cn=default,ou=policies," + suffix }
