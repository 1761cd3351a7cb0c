package csv

import (
	"fmt"
	"strconv"
	"strings"

	dsync "github.com/idsync/idsync/sync"
)

// identity turns one row into an identity, with a problem for everything wrong with
// the row. maybeActive is false only for a row that says it is inactive: a row whose
// active value is unknown still counts in the checks for duplicate emails and
// usernames among active rows.
func (s *Source) identity(file string, line int, rec []string, lay *layout) (id dsync.Identity, maybeActive bool) {
	where := file + ":" + strconv.Itoa(line)
	id = dsync.Identity{Source: s.name, Origin: where}
	problem := func(format string, args ...any) {
		id.Problems = append(id.Problems, where+": "+fmt.Sprintf(format, args...))
	}
	if len(rec) != len(lay.header) {
		problem("has %d fields, the header has %d", len(rec), len(lay.header))
	}
	// get returns column col's value, trimmed, and whether check (dsync.CheckText or
	// CheckMultiline with a limit) accepts it; a column beyond the end of a short row is
	// empty.
	get := func(col int, check func(string) string) (string, bool) {
		if col < 0 || col >= len(rec) {
			return "", true
		}
		v := strings.TrimSpace(rec[col])
		if p := check(v); p != "" {
			problem("column %q: %s", lay.header[col], p)
			if len(v) > 256 {
				v = v[:256]
			}
			return strings.ToValidUTF8(v, "\uFFFD"), false
		}
		return v, true
	}

	if v, ok := get(lay.id, idText); ok {
		if p := dsync.CheckID(v); p != "" {
			problem("column %q: %s", lay.header[lay.id], p)
		} else {
			id.ID = v
		}
	}
	id.Username, _ = get(lay.username, nameText)
	email, ok := get(lay.email, emailText)
	switch {
	case !ok:
	case email == "":
		problem("column %q: empty email", lay.header[lay.email])
	case !dsync.ValidEmail(email):
		problem("column %q: invalid email %q", lay.header[lay.email], email)
	}
	id.Email = email
	id.FirstName, _ = get(lay.firstName, nameText)
	id.LastName, _ = get(lay.lastName, nameText)
	id.DisplayName, _ = get(lay.displayName, nameText)

	id.Active, maybeActive = true, true
	if lay.active >= 0 {
		v, ok := get(lay.active, nameText)
		active, known := s.active[activeKey(v)]
		switch {
		case !ok:
			id.Active = false
		case !known:
			id.Active = false
			problem("column %q: unknown active value %q (true: %s; false: %s)", lay.header[lay.active], v,
				strings.Join(s.cfg.Active.True, ", "), strings.Join(s.cfg.Active.False, ", "))
		default:
			id.Active, maybeActive = active, active
		}
	}

	if lay.groups >= 0 {
		v, _ := get(lay.groups, groupsText)
		if v != "" {
			id.Groups = make([]string, 0, strings.Count(v, s.cfg.GroupSeparator)+1)
		}
		for g := range strings.SplitSeq(v, s.cfg.GroupSeparator) {
			if g = strings.TrimSpace(g); g != "" {
				id.Groups = append(id.Groups, g)
			}
		}
	}
	var values []string // one allocation for all the attributes' values
	for _, a := range lay.attrs {
		if v, _ := get(a.col, multiline); v != "" {
			if id.Attributes == nil {
				id.Attributes = make(dsync.Attributes, 0, len(lay.attrs))
				values = make([]string, 0, len(lay.attrs))
			}
			values = append(values, v)
			id.Attributes = append(id.Attributes, dsync.Attribute{Name: a.name, Values: values[len(values)-1 : len(values) : len(values)]})
		}
	}
	return id, maybeActive
}

// row is what the duplicate checks need to know of a row besides its identity.
type row struct {
	line        int
	maybeActive bool
}

// markDuplicates adds a problem to every row that shares its id, or an active row's
// email or username, with another row: "people.csv:7: duplicate id "E1", also at line
// 3". Emails and usernames compare case-insensitively.
func markDuplicates(ids []dsync.Identity, rows []row) {
	byID, byEmail, byUsername := newDupIndex(len(ids)), newDupIndex(len(ids)), newDupIndex(len(ids))
	for i := range ids {
		id := &ids[i]
		if id.ID != "" {
			byID.add(id.ID, i)
		}
		if !rows[i].maybeActive {
			continue
		}
		if id.Email != "" {
			byEmail.add(strings.ToLower(id.Email), i)
		}
		if id.Username != "" {
			byUsername.add(strings.ToLower(id.Username), i)
		}
	}
	byID.mark(ids, rows, "id", func(id *dsync.Identity) string { return id.ID })
	byEmail.mark(ids, rows, "email", func(id *dsync.Identity) string { return id.Email })
	byUsername.mark(ids, rows, "username", func(id *dsync.Identity) string { return id.Username })
}

// dupIndex finds one kind of duplicate. Only repeated keys cost more than a map entry.
type dupIndex struct {
	hint  int
	first map[string]int   // key -> the first row with it
	rest  map[string][]int // key -> the later rows with it, for repeated keys only
}

func newDupIndex(hint int) *dupIndex { return &dupIndex{hint: hint} }

func (x *dupIndex) add(key string, i int) {
	if x.first == nil {
		x.first = make(map[string]int, x.hint)
		x.rest = make(map[string][]int)
	}
	if _, ok := x.first[key]; ok {
		x.rest[key] = append(x.rest[key], i)
		return
	}
	x.first[key] = i
}

// maxAlso is how many other lines a duplicate's problem lists.
const maxAlso = 5

func (x *dupIndex) mark(ids []dsync.Identity, rows []row, what string, value func(*dsync.Identity) string) {
	// Each row is in at most one group, so the map's order does not change any row's
	// problems.
	for key, rest := range x.rest {
		group := append([]int{x.first[key]}, rest...)
		for _, r := range group {
			var also []string
			for _, o := range group {
				if o != r && len(also) < maxAlso {
					also = append(also, strconv.Itoa(rows[o].line))
				}
			}
			where := "line " + also[0]
			if len(also) > 1 {
				where = "lines " + strings.Join(also, ", ")
			}
			if more := len(group) - 1 - len(also); more > 0 {
				where += fmt.Sprintf(" and %d more", more)
			}
			ids[r].Problems = append(ids[r].Problems,
				fmt.Sprintf("%s: duplicate %s %q, also at %s", ids[r].Origin, what, value(&ids[r]), where))
		}
	}
}

// The checks get applies: one line of at most so many characters, or an attribute
// value that may hold line breaks. Made once: the row loop is hot.
var (
	idText     = text(dsync.MaxIDBytes)
	nameText   = text(dsync.MaxTextRunes)
	emailText  = text(dsync.MaxEmailBytes)
	groupsText = text(dsync.MaxAttrRunes)
)

func text(max int) func(string) string {
	return func(v string) string { return dsync.CheckText(v, max) }
}

func multiline(v string) string { return dsync.CheckMultiline(v, dsync.MaxAttrRunes) }
