package sync

import (
	"fmt"
	"slices"
	"strings"
)

// SourceRead is what one source returned.
type SourceRead struct {
	Source     string
	Identities []Identity
}

// Desired is the sources' truth after merging: what every sink should hold.
type Desired struct {
	// Identities by id, the invalid ones included (with Problems): they are held.
	Identities map[string]Identity
	// Complete is false when some row could not be tied to an id: then nobody is
	// disabled for being absent, since that row may be them.
	Complete bool
	// Unanchored lists the rows that have no id, with their problems.
	Unanchored []string
	// Problems lists the problems of the invalid identities, for the report.
	Problems []string
	// Valid counts the identities without problems.
	Valid int
}

// Merge joins the sources' reads, keyed by id, and validates across them: a duplicate
// id, or a duplicate email or username among active identities, holds every identity
// involved, with where each came from. Sources check duplicates within themselves (they
// know the lines); Merge adds a problem only where the source has not already marked
// both identities.
func Merge(reads []SourceRead) Desired {
	d := Desired{Identities: make(map[string]Identity), Complete: true}
	for _, r := range reads {
		for _, id := range r.Identities {
			if id.Source == "" {
				id.Source = r.Source
			}
			if id.ID == "" {
				d.Complete = false
				if len(id.Problems) == 0 {
					id.Problems = []string{"no id"}
				}
				for _, p := range id.Problems {
					d.Unanchored = append(d.Unanchored, id.Source+": "+p)
				}
				continue
			}
			prev, dup := d.Identities[id.ID]
			if !dup {
				d.Identities[id.ID] = id
				continue
			}
			if !alreadyMarked(&prev, &id) {
				prev.Problems = append(prev.Problems, fmt.Sprintf("duplicate id %q: also in %s", id.ID, id.Where()))
			}
			d.Identities[id.ID] = prev
		}
	}
	markDuplicates(d.Identities, "email", func(id *Identity) string { return id.Email })
	markDuplicates(d.Identities, "username", func(id *Identity) string { return id.Username })
	for _, id := range d.Identities {
		if id.Valid() {
			d.Valid++
			continue
		}
		for _, p := range id.Problems {
			d.Problems = append(d.Problems, id.Source+": "+p)
		}
	}
	slices.Sort(d.Problems)
	return d
}

// alreadyMarked reports whether a source has marked both identities itself.
func alreadyMarked(a, b *Identity) bool {
	return a.Source == b.Source && !a.Valid() && !b.Valid()
}

// markDuplicates holds the active identities that share a value of key, compared
// case-insensitively.
func markDuplicates(ids map[string]Identity, what string, key func(*Identity) string) {
	seen := make(map[string]string) // folded value -> first id
	var dups [][2]string
	for id, x := range ids {
		v := strings.ToLower(key(&x))
		if v == "" || !x.Active {
			continue
		}
		if first, ok := seen[v]; ok {
			dups = append(dups, [2]string{first, id})
			continue
		}
		seen[v] = id
	}
	for _, pair := range dups {
		a, b := ids[pair[0]], ids[pair[1]]
		if alreadyMarked(&a, &b) {
			continue
		}
		a.Problems = append(a.Problems, fmt.Sprintf("duplicate %s %q: also id %s in %s", what, key(&a), b.ID, b.Where()))
		b.Problems = append(b.Problems, fmt.Sprintf("duplicate %s %q: also id %s in %s", what, key(&b), a.ID, a.Where()))
		ids[a.ID], ids[b.ID] = a, b
	}
}
