package sambatest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// userAccountControl flags.
const (
	UACAccountDisable     = 0x2
	UACPasswordNotReqd    = 0x20
	UACNormalAccount      = 0x200
	UACDontExpirePassword = 0x10000
)

// User is an AD user account. Its entry is CN=<Name>,<Container>,<base>; sAMAccountName
// is Name, userPrincipalName Name@example.org. The accounts have no password
// (PASSWD_NOTREQD), which a sync's reads do not need.
type User struct {
	Name, GivenName, Surname, Mail string
	// Container is relative to the base DN: CN=Users when empty, or an OU made with
	// AddOUs (OU=Staff).
	Container string
	Disabled  bool
	// Expires is accountExpires; zero means never.
	Expires time.Time
}

// DN is the user's entry.
func (u User) DN() string {
	return "CN=" + u.Name + "," + cmpOr(u.Container, "CN=Users") + "," + BaseDN
}

// Group is a global security group: CN=<Name>,<Container>,<base>. Members are DNs, of
// users or of other groups.
type Group struct {
	Name      string
	Container string
	Members   []string
}

// DN is the group's entry.
func (g Group) DN() string {
	return "CN=" + g.Name + "," + cmpOr(g.Container, "CN=Users") + "," + BaseDN
}

// Users returns n users, the same every time: u00001 upwards, mail
// u00001@example.org, in CN=Users; every tenth (u00010, u00020, ...) is disabled.
func Users(n int) []User {
	users := make([]User, n)
	for i := range users {
		num := i + 1
		users[i] = User{
			Name:      fmt.Sprintf("u%05d", num),
			GivenName: "Given" + fmt.Sprint(num),
			Surname:   "Surname" + fmt.Sprint(num),
			Mail:      fmt.Sprintf("u%05d@example.org", num),
			Disabled:  num%10 == 0,
		}
	}
	return users
}

// AddOUs adds organizational units, in order, by their DNs relative to the base DN
// ("OU=Staff", then "OU=Lab,OU=Staff").
func (s *Server) AddOUs(tb testing.TB, dns ...string) {
	tb.Helper()
	var b strings.Builder
	for _, dn := range dns {
		fmt.Fprintf(&b, "dn: %s,%s\nchangetype: add\nobjectClass: organizationalUnit\n\n", dn, BaseDN)
	}
	s.Modify(tb, b.String())
}

// AddUsers adds users with one ldapmodify: 1,500 take about 12 s on two cores.
func (s *Server) AddUsers(tb testing.TB, users []User) {
	tb.Helper()
	var b strings.Builder
	for _, u := range users {
		uac := UACNormalAccount | UACPasswordNotReqd
		if u.Disabled {
			uac |= UACAccountDisable
		}
		fmt.Fprintf(&b, "dn: %s\nchangetype: add\nobjectClass: user\nsAMAccountName: %s\nuserPrincipalName: %s@%s\nuserAccountControl: %d\n",
			u.DN(), u.Name, u.Name, strings.ToLower(Realm), uac)
		line := func(attr, v string) {
			if v != "" {
				fmt.Fprintf(&b, "%s: %s\n", attr, v)
			}
		}
		line("givenName", u.GivenName)
		line("sn", u.Surname)
		line("mail", u.Mail)
		line("displayName", strings.TrimSpace(u.GivenName+" "+u.Surname))
		if !u.Expires.IsZero() {
			line("accountExpires", fmt.Sprint(ADTime(u.Expires)))
		}
		b.WriteString("\n")
	}
	s.Modify(tb, b.String())
}

// AddGroups adds groups in order: a group that lists another as a member comes after it.
func (s *Server) AddGroups(tb testing.TB, groups []Group) {
	tb.Helper()
	var b strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&b, "dn: %s\nchangetype: add\nobjectClass: group\nsAMAccountName: %s\n", g.DN(), g.Name)
		for _, m := range g.Members {
			fmt.Fprintf(&b, "member: %s\n", m)
		}
		b.WriteString("\n")
	}
	s.Modify(tb, b.String())
}

// ADTime is a time in AD's form: 100-nanosecond intervals since 1601-01-01 UTC.
func ADTime(t time.Time) int64 {
	const epochDiff = 11644473600 // seconds from 1601 to 1970
	return (t.Unix()+epochDiff)*1e7 + int64(t.Nanosecond()/100)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
