package sync

import (
	"context"
	"log/slog"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// readableSink is a fakeSink whose accounts can be read back, and changed by "hand".
type readableSink struct {
	*fakeSink
	changed map[string]Identity // id -> the account as an admin left it
	gone    map[string]bool
}

func (r *readableSink) ReadUser(_ context.Context, e Entry) (Identity, error) {
	if r.gone[e.ID] {
		return Identity{}, ErrNotFound
	}
	if id, ok := r.changed[e.ID]; ok {
		return id, nil
	}
	return *e.User, nil
}

func TestVerifyFindsAndRepairsDrift(t *testing.T) {
	store := newMemStore()
	sink := &readableSink{fakeSink: &fakeSink{}}
	all := people(10)
	// Small numbers: one disable is over 10% of them.
	safety := Safety{MaxDisables: 100, MaxDisablePercent: -1}
	e := New([]SourceSpec{{Name: "hr", Source: all[:9]}}, []SinkSpec{{Name: "app", Sink: sink, Safety: safety}},
		store, Options{Safety: DefaultSafety}, slog.New(slog.DiscardHandler))
	if _, err := New([]SourceSpec{{Name: "hr", Source: all}}, []SinkSpec{{Name: "app", Sink: sink, Safety: DefaultSafety}},
		store, Options{Safety: DefaultSafety}, slog.New(slog.DiscardHandler)).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(t.Context(), RunOptions{}); err != nil { // E009 left: disabled
		t.Fatal(err)
	}
	snap, _ := store.Snapshot("app")
	email := *snap["E001"].User
	email.Email = "changed.by.hand@example.org"
	blocked := *snap["E002"].User
	blocked.Active = false
	reenabled := *snap["E009"].User
	reenabled.Active = true
	sink.changed = map[string]Identity{"E001": email, "E002": blocked, "E009": reenabled}
	sink.gone = map[string]bool{"E003": true}

	drifts, err := e.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Drift{}
	for _, d := range drifts {
		got[d.ID] = d
	}
	if len(got) != 4 || got["E001"].Fields != FieldEmail || !got["E002"].Active || !got["E009"].Active || !got["E003"].Gone {
		t.Fatalf("drifts %+v, want E001 email, E002 and E009 active, E003 gone", drifts)
	}
	// The next run repairs them, and only them, and counts the repairs.
	sink.changed, sink.gone = nil, nil
	m := NewMetrics(prometheus.NewRegistry())
	e.opt.Metrics = m
	rep, err := e.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[OpKind]int{UpdateUser: 1, EnableUser: 1, DisableUser: 1, CreateUser: 1}
	if got := rep.Summary.Sinks[0].Applied; !maps.Equal(got, want) {
		t.Errorf("repair applied %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(m.driftRepairs.WithLabelValues("app")); got != 4 {
		t.Errorf("idsync_drift_repaired_total = %g, want 4", got)
	}
	if drifts, _ := e.Verify(t.Context()); len(drifts) != 0 {
		t.Errorf("after the repair, drifts %+v, want none", drifts)
	}
}

// listingSink lists what it holds.
type listingSink struct {
	*fakeSink
	owned []Entry
}

func (l *listingSink) Owned(context.Context) ([]Entry, error) { return l.owned, nil }

func TestRebuildAddsOnlyUnknownAccounts(t *testing.T) {
	store := newMemStore()
	known := Identity{ID: "E1", Email: "known@x.org", Active: true}
	store.Put("app", Entry{ID: "E1", UserID: "1", User: &known})
	u2, u3 := Identity{ID: "E2", Email: "b@x.org", Active: true}, Identity{ID: "E3", Email: "c@x.org"}
	changed := known
	changed.Email = "would-overwrite@x.org"
	sink := &listingSink{fakeSink: &fakeSink{}, owned: []Entry{
		{ID: "E1", UserID: "1", User: &changed},
		{ID: "E2", UserID: "2", ProfileRef: "80002", User: &u2},
		{ID: "E3", UserID: "3", User: &u3},
	}}
	e := New(nil, []SinkSpec{{Name: "app", Sink: sink}}, store, Options{}, slog.New(slog.DiscardHandler))
	counts, err := e.Rebuild(t.Context())
	if err != nil || len(counts) != 1 || counts[0].Found != 3 || counts[0].Added != 2 {
		t.Fatalf("counts %+v, %v; want 3 found, 2 added", counts, err)
	}
	snap, _ := store.Snapshot("app")
	if snap["E1"].User.Email != "known@x.org" {
		t.Error("a known entry was overwritten")
	}
	if en := snap["E2"]; en.ProfileRef != "80002" || en.Profile != nil || !en.Adopted {
		t.Errorf("E2 = %+v, want its ref, no profile fields, adopted", en)
	}
	if snap["E3"].DisabledAt.IsZero() {
		t.Error("a blocked account was not recorded as disabled")
	}
}
