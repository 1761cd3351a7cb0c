package ldap

import (
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
}

func newMembership(how, attr string) *membership {
	return &membership{how: how, attr: attr, byUID: strings.EqualFold(attr, "memberUid"), groups: make(map[string][]string)}
}

// add records one group entry's members.
func (m *membership) add(e *ldap.Entry) {
	name := groupName(e.DN, m.how)
	if name == "" {
		return
	}
	v := values(e, m.attr)
	if v == nil {
		return
	}
	for _, member := range v.Values {
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
