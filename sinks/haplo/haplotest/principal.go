package haplotest

import (
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

const (
	groupEveryone = 4 // the platform's fixed id for Everyone
	codeEveryone  = "std:group:everyone"
	defaultLocale = "en"
)

// knownLocales are the locale ids the fake application offers.
var knownLocales = map[string]bool{"en": true, "cy": true}

// emailPattern is the platform's K_EMAIL_VALIDATION_REGEX.
var emailPattern = regexp.MustCompile("^[a-zA-Z0-9!#$%*/?|^{}`~&'+=_.-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9.-]+$")

// principal is a user or a group: they share one id space, as in Haplo.
type principal struct {
	id      int
	isGroup bool
	blocked bool // users: kind 8 (blocked) rather than 0; groups: 17 (disabled) rather than 1

	code string // groups: API code
	name string // groups: display name

	nameFirst, nameLast, email string // users
	ref                        string // profile ref, "" for none
	localeID                   string
	tags                       map[string]string
	groups                     []int // direct group ids, sorted

	indexed []string // the keys of Server.index that hold this user
}

// userJSON is the user object of §3.6, in Haplo's property order.
type userJSON struct {
	ID                    int               `json:"id"`
	NameFirst             *string           `json:"nameFirst"`
	NameLast              *string           `json:"nameLast"`
	Name                  string            `json:"name"`
	Code                  *string           `json:"code"`
	Email                 *string           `json:"email"`
	Ref                   *string           `json:"ref"`
	IsGroup               bool              `json:"isGroup"`
	IsActive              bool              `json:"isActive"`
	IsSuperUser           bool              `json:"isSuperUser"`
	IsServiceUser         bool              `json:"isServiceUser"`
	IsAnonymous           bool              `json:"isAnonymous"`
	LocaleID              string            `json:"localeId"`
	Tags                  map[string]string `json:"tags"`
	DirectGroupMembership []string          `json:"directGroupMembership"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// details renders p as the users API does. s.mu is held.
func (s *Server) details(p *principal) userJSON {
	d := userJSON{
		ID:                    p.id,
		IsGroup:               p.isGroup,
		IsActive:              !p.blocked,
		LocaleID:              p.localeID,
		Tags:                  map[string]string{},
		DirectGroupMembership: []string{},
	}
	if d.LocaleID == "" {
		d.LocaleID = defaultLocale
	}
	if p.isGroup {
		d.Name = p.name
		d.Code = optional(p.code)
		d.IsAnonymous = true
		return d
	}
	first, last, email := p.nameFirst, p.nameLast, p.email
	d.NameFirst, d.NameLast, d.Email = &first, &last, &email
	d.Name = first + " " + last
	d.Ref = optional(p.ref)
	maps.Copy(d.Tags, p.tags)
	for _, g := range p.groups {
		d.DirectGroupMembership = append(d.DirectGroupMembership, s.groupName(g))
	}
	return d
}

// groupName is how a group appears in directGroupMembership: its API code,
// or "group:<id>" if it has none.
func (s *Server) groupName(id int) string {
	if g, ok := s.principals[id]; ok && g.code != "" {
		return g.code
	}
	return "group:" + strconv.Itoa(id)
}

func (s *Server) addGroup(code string) *principal {
	g := &principal{id: s.allocID(), isGroup: true, code: code, name: code}
	s.principals[g.id] = g
	s.groups = append(s.groups, g)
	return g
}

// groupByCode finds a group by API code, whether or not it is active.
func (s *Server) groupByCode(code string) (*principal, bool) {
	for _, p := range s.groups {
		if p.code == code {
			return p, true
		}
	}
	return nil, false
}

// sortedUsers returns every user (not group) in id order.
func (s *Server) sortedUsers() []*principal {
	var us []*principal
	for _, p := range s.principals {
		if !p.isGroup {
			us = append(us, p)
		}
	}
	sort.Slice(us, func(i, j int) bool { return us[i].id < us[j].id })
	return us
}

// userByEmail is O.user(email): the oldest user of any state with that
// email, compared case-insensitively.
func (s *Server) userByEmail(email string) *principal {
	var oldest *principal
	for _, p := range s.index[emailKey(email)] {
		if oldest == nil || p.id < oldest.id {
			oldest = p
		}
	}
	return oldest
}

// usersByTags is O.usersByTags: users of any state (never groups) whose
// tags hold every pair exactly, in id order.
func (s *Server) usersByTags(query map[string]string) []*principal {
	var found []*principal
	for k, v := range query {
		// Candidates from one pair's index; every pair is checked below.
		for _, p := range s.index[tagKey(k, v)] {
			found = append(found, p)
		}
		break
	}
	found = slices.DeleteFunc(found, func(p *principal) bool {
		for k, v := range query {
			if got, ok := p.tags[k]; !ok || got != v {
				return true
			}
		}
		return false
	})
	slices.SortFunc(found, func(a, b *principal) int { return a.id - b.id })
	return found
}

// The index finds users by email (case-insensitively) and by tag (exactly), as
// Haplo's database does, so that lookups do not scan every user.
func emailKey(email string) string { return "email\x00" + strings.ToLower(strings.TrimSpace(email)) }
func tagKey(k, v string) string    { return "tag\x00" + k + "\x00" + v }

// reindex puts p's current email and tags in the index, after any change to
// them. s.mu is held.
func (s *Server) reindex(p *principal) {
	for _, k := range p.indexed {
		delete(s.index[k], p.id)
		if len(s.index[k]) == 0 {
			delete(s.index, k)
		}
	}
	p.indexed = p.indexed[:0]
	if p.isGroup {
		return
	}
	add := func(k string) {
		m := s.index[k]
		if m == nil {
			m = make(map[int]*principal)
			s.index[k] = m
		}
		m[p.id] = p
		p.indexed = append(p.indexed, k)
	}
	add(emailKey(p.email))
	for k, v := range p.tags {
		add(tagKey(k, v))
	}
}

// normaliseName trims a name and collapses its runs of whitespace.
func normaliseName(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// exportUser copies p for a test. s.mu is held.
func (s *Server) exportUser(p *principal) User {
	u := User{
		ID:        p.id,
		NameFirst: p.nameFirst,
		NameLast:  p.nameLast,
		Email:     p.email,
		Ref:       p.ref,
		LocaleID:  p.localeID,
		Tags:      maps.Clone(p.tags),
		Blocked:   p.blocked,
	}
	if u.LocaleID == "" {
		u.LocaleID = defaultLocale
	}
	if u.Tags == nil {
		u.Tags = map[string]string{}
	}
	for _, g := range p.groups {
		u.Groups = append(u.Groups, s.groupName(g))
	}
	return u
}

// importUser sets p from u, creating any group u names that does not exist.
// s.mu is held.
func (s *Server) importUser(p *principal, u User) {
	p.nameFirst, p.nameLast = normaliseName(u.NameFirst), normaliseName(u.NameLast)
	p.email = strings.TrimSpace(u.Email)
	p.ref = u.Ref
	if id, ok := parseRef(u.Ref); ok {
		p.ref = formatRef(id)
	}
	p.localeID = u.LocaleID
	p.tags = maps.Clone(u.Tags)
	if p.tags == nil {
		p.tags = map[string]string{}
	}
	p.blocked = u.Blocked
	p.groups = nil
	for _, code := range u.Groups {
		if id, ok := groupIDFromName(code); ok {
			if g, ok := s.principals[id]; ok && g.isGroup {
				p.groups = append(p.groups, id)
			}
			continue
		}
		g, ok := s.groupByCode(code)
		if !ok {
			g = s.addGroup(code)
		}
		p.groups = append(p.groups, g.id)
	}
	slices.Sort(p.groups)
	p.groups = slices.Compact(p.groups)
	s.reindex(p)
}

// groupIDFromName parses "group:<id>".
func groupIDFromName(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "group:")
	if !ok || rest == "" {
		return 0, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err := strconv.Atoi(rest)
	return id, err == nil
}
