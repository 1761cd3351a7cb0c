package sync

import (
	"fmt"
	"slices"
	"strings"
	gosync "sync"
)

// SourceRead is what one source returned.
type SourceRead struct {
	Source     string
	Identities []Identity
}

// Desired is the sources' truth after merging: what every sink should hold.
type Desired struct {
	// Identities by id, the invalid ones included (with Problems): they are held. They
	// point into the reads' slices, which Merge marks in place: at 100,000 people, a
	// map holding each identity (192 bytes, stored out of line) would cost an
	// allocation per person and a third of Merge's time.
	Identities map[string]*Identity
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
// both identities. Merge marks the reads' identities in place.
func Merge(reads []SourceRead) Desired {
	n := 0
	for _, r := range reads {
		n += len(r.Identities)
	}
	d := Desired{Identities: make(map[string]*Identity, n), Complete: true}
	for _, r := range reads {
		for i := range r.Identities {
			id := &r.Identities[i]
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
			if !alreadyMarked(prev, id) {
				prev.Problems = append(prev.Problems, fmt.Sprintf("duplicate id %q: also in %s", id.ID, id.Where()))
			}
		}
	}
	markDuplicates(d.Identities)
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

// markDuplicates holds the active identities that share an email or a username,
// compared case-insensitively. The two keys are looked for at once, one pass over ids
// each on two cores: at 100,000 people a pass is a tenth of a no-op run's planning.
func markDuplicates(ids map[string]*Identity) {
	var emails []dup
	var wg gosync.WaitGroup
	wg.Go(func() { emails = duplicates(ids, "email", func(id *Identity) string { return id.Email }) })
	usernames := duplicates(ids, "username", func(id *Identity) string { return id.Username })
	wg.Wait()
	for _, d := range append(emails, usernames...) {
		a, b := ids[d.first], ids[d.then]
		if alreadyMarked(a, b) {
			continue
		}
		a.Problems = append(a.Problems, fmt.Sprintf("duplicate %s %q: also id %s in %s", d.what, d.key(a), b.ID, b.Where()))
		b.Problems = append(b.Problems, fmt.Sprintf("duplicate %s %q: also id %s in %s", d.what, d.key(b), a.ID, a.Where()))
	}
}

// dup is two active identities with the same value of one key.
type dup struct {
	what        string
	key         func(*Identity) string
	first, then string // ids
}

// duplicates finds the active identities whose key, folded, an earlier one has. It
// only reads ids.
func duplicates(ids map[string]*Identity, what string, key func(*Identity) string) []dup {
	seen := make(map[string]string, len(ids)) // folded value -> first id
	var dups []dup
	for id, x := range ids {
		if !x.Active {
			continue
		}
		v := strings.ToLower(key(x))
		if v == "" {
			continue
		}
		if first, ok := seen[v]; ok {
			dups = append(dups, dup{what, key, first, id})
			continue
		}
		seen[v] = id
	}
	return dups
}
