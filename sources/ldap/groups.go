package ldap

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	dsync "github.com/idsync/idsync/sync"
)

// membership collects a group search's answers: which groups each member is in.
type membership struct {
	how    string // group naming: cn or dn
	attr   string // member, uniqueMember or memberUid
	byUID  bool   // memberUid holds usernames, not DNs
	groups map[string][]string
	// ranged are the groups whose member values came in part (member;range=0-1499),
	// with the index of the first value still to read: see groupMembers.
	ranged map[string]int
	err    error // a range that does not parse
}

func newMembership(how, attr string) *membership {
	return &membership{how: how, attr: attr, byUID: strings.EqualFold(attr, "memberUid"), groups: make(map[string][]string), ranged: make(map[string]int)}
}

// add records one group entry's members: the attribute's values, or the range of them
// that Active Directory sent (member;range=0-1499 when the group has more values than
// the DC's MaxValRange; the last range ends with *).
func (m *membership) add(e *ldap.Entry) {
	name := groupName(e.DN, m.how)
	if name == "" {
		return
	}
	for _, a := range e.Attributes {
		attr, opt, hasOpt := strings.Cut(a.Name, ";")
		if !strings.EqualFold(attr, m.attr) {
			continue
		}
		if hasOpt && !strings.HasPrefix(strings.ToLower(opt), "range=") {
			continue // another option (member;binary): not what was asked for
		}
		if hasOpt {
			next, err := nextRange(opt)
			if err != nil {
				m.err = errors.Join(m.err, fmt.Errorf("group %s: %s: %w", e.DN, a.Name, err))
				continue
			}
			dn := strings.Clone(e.DN)
			if next < 0 {
				delete(m.ranged, dn)
			} else {
				m.ranged[dn] = next
			}
		}
		m.addValues(name, a.Values)
	}
}

// nextRange reads a range option (range=0-1499) and returns the index of the next
// value to ask for, or -1 after the last range (range=1500-*).
func nextRange(opt string) (int, error) {
	r, _ := strings.CutPrefix(strings.ToLower(opt), "range=")
	lo, hi, ok := strings.Cut(r, "-")
	if !ok {
		return 0, errors.New("not a range option")
	}
	l, err := strconv.Atoi(lo)
	if err != nil || l < 0 {
		return 0, errors.New("not a range option")
	}
	if hi == "*" {
		return -1, nil
	}
	h, err := strconv.Atoi(hi)
	if err != nil || h < l {
		return 0, errors.New("not a range option")
	}
	return h + 1, nil
}

func (m *membership) addValues(name string, vals []string) {
	for _, member := range vals {
		var key string
		if m.byUID {
			key = "uid:" + strings.ToLower(strings.TrimSpace(member))
		} else {
			// uniqueMember may carry an optional UID after '#'.
			if i := strings.LastIndex(member, "#'"); i > 0 && strings.EqualFold(m.attr, "uniqueMember") {
				member = member[:i]
			}
			key = canonicalDN(member)
		}
		if key != "" {
			m.groups[key] = append(m.groups[key], name)
		}
	}
}

// assign gives each identity the groups that list it, by DN or by username.
func (m *membership) assign(ids []dsync.Identity) {
	for i := range ids {
		id := &ids[i]
		key := canonicalDN(id.Origin)
		if m.byUID {
			key = "uid:" + strings.ToLower(id.Username)
		}
		id.Groups = append(id.Groups, m.groups[key]...)
	}
}

// groupMembers runs the group search and reads each group's member values, in as
// many ranged reads as a large Active Directory group needs.
func (s *Source) groupMembers(conn *conn, g *GroupSearch, members *membership) error {
	attr := g.MemberAttribute
	if s.memberRange > 0 {
		attr = fmt.Sprintf("%s;range=0-%d", attr, s.memberRange-1)
	}
	err := s.search(conn, g.BaseDN, g.Filter, g.Scope, []string{attr}, members.add)
	if err != nil {
		return fmt.Errorf("group search %s %s: %w", g.BaseDN, g.Filter, err)
	}
	// Each group whose values came in part is read again, from the next value on, until
	// a range ends with *. A range that does not move on is the server's error, so the
	// loop ends.
	for len(members.ranged) > 0 && members.err == nil {
		for dn, next := range members.ranged {
			attr := fmt.Sprintf("%s;range=%d-*", g.MemberAttribute, next)
			err := s.search(conn, dn, "(objectClass=*)", "base", []string{attr}, members.add)
			if err != nil {
				return fmt.Errorf("group %s: read %s: %w", dn, attr, err)
			}
			if members.err != nil {
				return members.err
			}
			if after, ok := members.ranged[dn]; ok && after <= next {
				return fmt.Errorf("group %s: asked for %s, the server sent no later range", dn, attr)
			}
		}
	}
	return members.err
}

// inChain is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: memberOf:inChain:=G
// matches the members of G and of every group G holds, to any depth.
const inChain = "1.2.840.113556.1.4.1941"

// nestedMembers finds the groups, then each group's members to any depth with a
// search of the people for memberOf in chain.
func (s *Source) nestedMembers(conn *conn, g *GroupSearch, members *membership) error {
	var groups []string
	err := s.search(conn, g.BaseDN, g.Filter, g.Scope, []string{"1.1"}, func(e *ldap.Entry) {
		groups = append(groups, strings.Clone(e.DN))
	})
	if err != nil {
		return fmt.Errorf("group search %s %s: %w", g.BaseDN, g.Filter, err)
	}
	for _, dn := range groups {
		name := groupName(dn, members.how)
		if name == "" {
			continue
		}
		for _, sr := range s.cfg.Searches {
			filter := "(&" + sr.Filter + "(memberOf:" + inChain + ":=" + ldap.EscapeFilter(dn) + "))"
			err := s.search(conn, sr.BaseDN, filter, sr.Scope, []string{"1.1"}, func(e *ldap.Entry) {
				if key := canonicalDN(e.DN); key != "" {
					members.groups[key] = append(members.groups[key], name)
				}
			})
			if err != nil {
				return fmt.Errorf("members of group %s: search %s %s: %w", dn, sr.BaseDN, filter, err)
			}
		}
	}
	return nil
}
