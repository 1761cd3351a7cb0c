package sync

import "testing"

// BenchmarkMergeDiff100k is a no-op run's planning over 100,000 people: Merge, then
// Diff against a snapshot that agrees.
func BenchmarkMergeDiff100k(b *testing.B) {
	ids := people(100000)
	for i := range ids {
		ids[i].Groups = []string{"engineering", "sales"}
		ids[i].Attributes = AttributesOf(map[string][]string{"job_title": {"Lecturer"}})
	}
	snap := make(map[string]Entry, len(ids))
	for _, id := range ids {
		u, p := Project(id, haploLike.User), Project(id, haploLike.Profile)
		snap[id.ID] = Entry{ID: id.ID, UserID: "1", ProfileRef: "8", User: &u, Profile: &p}
	}
	b.ReportAllocs()
	for b.Loop() {
		d := Merge([]SourceRead{{Source: "hr", Identities: ids}})
		differ := NewDiffer(d.Identities, DiffOptions{Schema: haploLike, Complete: true})
		for _, e := range snap {
			differ.Add(e)
		}
		if p, _ := differ.Plan(); len(p.Ops) != 0 {
			b.Fatalf("%d operations, want none", len(p.Ops))
		}
	}
}

func BenchmarkMerge100k(b *testing.B) {
	ids := people(100000)
	for i := range ids {
		ids[i].Groups = []string{"engineering", "sales"}
		ids[i].Attributes = AttributesOf(map[string][]string{"job_title": {"Lecturer"}})
	}
	b.ReportAllocs()
	for b.Loop() {
		Merge([]SourceRead{{Source: "hr", Identities: ids}})
	}
}
