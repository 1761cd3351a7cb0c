package sync

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
)

// deltaSource gives a delta of its changes when handed the mark it gave, and
// everyone otherwise; it records the marks it was handed.
type deltaSource struct {
	all     []Identity
	changed []Identity
	handed  []string
}

func (d *deltaSource) Read(context.Context) ([]Identity, error) { return slices.Clone(d.all), nil }

func (d *deltaSource) ReadDelta(_ context.Context, mark []byte) (Delta, error) {
	d.handed = append(d.handed, string(mark))
	if mark == nil {
		return Delta{Identities: slices.Clone(d.all), Full: true, Mark: []byte(`"m1"`)}, nil
	}
	return Delta{Identities: slices.Clone(d.changed), Mark: []byte(`"m2"`)}, nil
}

func TestEngineDelta(t *testing.T) {
	store, sink := newMemStore(), &fakeSink{}
	src := &deltaSource{all: people(20)}
	e := newTestEngine(src, sink, store)
	run := func() *Report {
		t.Helper()
		rep, err := e.Run(t.Context(), RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	// The first read is a full one; its mark is kept.
	if rep := run(); rep.Summary.Delta || len(rep.Summary.Marks) != 1 || string(rep.Summary.Marks["hr"]) != `"m1"` {
		t.Fatalf("first run: delta %v, marks %s; want a full read and its mark", rep.Summary.Delta, rep.Summary.Marks)
	}

	// A delta: one person changed, one left the directory but the delta cannot say
	// so, one was marked inactive; and an empty delta trips no source guard.
	renamed := src.all[1]
	renamed.LastName = "Renamed"
	inactive := src.all[2]
	inactive.Active = false
	src.changed = []Identity{renamed, inactive}
	src.all = src.all[1:] // E000 is gone
	rep := run()
	if !rep.Summary.Delta || len(rep.Summary.Guards) != 0 {
		t.Fatalf("delta run: delta %v, guards %v", rep.Summary.Delta, rep.Summary.Guards)
	}
	if got, want := rep.Summary.Sinks[0].Applied, map[OpKind]int{UpdateProfile: 1, UpdateUser: 1}; !maps.Equal(got, want) {
		t.Errorf("delta run applied %v, want %v: no disable in a delta, of the inactive or of the absent", got, want)
	}
	if string(rep.Summary.Marks["hr"]) != `"m2"` || src.handed[1] != `"m1"` {
		t.Errorf("the delta was handed %q and left marks %s", src.handed[1], rep.Summary.Marks)
	}
	src.changed = nil
	if rep := run(); len(rep.Summary.Guards) != 0 || rep.Held() {
		t.Errorf("an empty delta tripped %v", rep.Summary.Guards)
	}

	// A failed operation keeps the old mark, so that its change is read again.
	renamed.LastName = "Again"
	src.changed = []Identity{renamed}
	sink.fail = map[string]error{"update_user E001": errBoom}
	if rep := run(); string(rep.Summary.Marks["hr"]) != `"m2"` || rep.Summary.Result != ResultPartial {
		t.Errorf("a partial delta run left marks %s (result %s), want the previous mark", rep.Summary.Marks, rep.Summary.Result)
	}
	sink.fail = nil

	// The min_source_ratio base is the last full read, not a delta's size.
	if got := lastGood(store.runs); got != 20 {
		t.Errorf("lastGood = %d, want the full read's 20", got)
	}
}

func TestDiffDeltaHoldsWhatItCannotCheck(t *testing.T) {
	snap := map[string]Entry{}
	for _, p := range people(4) {
		u := Project(p, haploLike.User)
		snap[p.ID] = Entry{ID: p.ID, UserID: "1", User: &u}
	}
	// E001 takes E000's email; E000 is not in the delta, so nobody can tell whether
	// E000 gave it up.
	taker := people(4)[1]
	taker.Email = "u000@example.org"
	// E002 and E003 are both listed: they swap usernames, which Merge checks.
	a, b := people(4)[2], people(4)[3]
	a.Username, b.Username = b.Username, a.Username
	p := Diff(snap, map[string]Identity{"E001": taker, "E002": a, "E003": b}, DiffOptions{Schema: Schema{User: haploLike.User}, Delta: true})
	if len(p.Held) != 1 || p.Held[0].ID != "E001" || !strings.Contains(p.Held[0].Reason[0], "held by the account of E000") {
		t.Errorf("held %+v, want E001 held for E000's email", p.Held)
	}
	if got := p.Counts(); got[UpdateUser] != 2 {
		t.Errorf("plan %v, want the two swapped usernames updated", got)
	}
}
