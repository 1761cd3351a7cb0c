package state

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	dsync "github.com/idsync/idsync/sync"
)

func fullRun(started time.Time) dsync.RunSummary {
	return dsync.RunSummary{
		ID:         999, // RecordRun assigns its own
		Started:    started,
		Finished:   started.Add(42 * time.Second),
		Result:     dsync.ResultPartial,
		Error:      "1 operation failed",
		Sources:    map[string]int{"ldap": 20000, "csv": 12},
		Identities: 20010,
		Held:       2,
		Guards:     []dsync.GuardTrip{{Guard: "max_disables", Scope: "haplo", Got: 120, Limit: 100}},
		Accepted:   true,
		Sinks: []dsync.SinkSummary{{
			Sink:    "haplo",
			Planned: map[dsync.OpKind]int{dsync.CreateUser: 3, dsync.DisableUser: 120},
			Applied: map[dsync.OpKind]int{dsync.CreateUser: 2, dsync.DisableUser: 120},
			Failed:  map[dsync.OpKind]int{dsync.CreateUser: 1},
			Skipped: map[dsync.OpKind]int{dsync.CreateProfile: 1},
			Errors:  []dsync.OpError{{ID: "1001", Kind: dsync.CreateUser, Error: "haplo: create user 1001: conflict"}},
		}},
	}
}

func TestRunRoundTrip(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 2, 0, 0, 123456789, time.UTC)
	for i := range 3 {
		if err := s.RecordRun(fullRun(t0.Add(time.Duration(i) * time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, path, Options{})
	got, err := s.Runs(2)
	if err != nil {
		t.Fatal(err)
	}
	var want []dsync.RunSummary
	for i := 2; i >= 1; i-- {
		r := fullRun(t0.Add(time.Duration(i) * time.Hour))
		r.ID = uint64(i + 1)
		want = append(want, r)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Runs(2) (-want +got):\n%s", diff)
	}
}

func TestRunsEmpty(t *testing.T) {
	s := openStore(t, tempPath(t), Options{})
	got, err := s.Runs(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("Runs of a new file: got %v, want none", got)
	}
}

func TestHistoryLimit(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, Options{HistoryLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for range 120 {
		if err := s.RecordRun(dsync.RunSummary{Result: dsync.ResultSuccess}); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		limit  int
		wantN  int
		newest uint64
	}{
		{limit: 0, wantN: 100, newest: 120},
		{limit: -1, wantN: 100, newest: 120},
		{limit: 1000, wantN: 100, newest: 120},
		{limit: 100, wantN: 100, newest: 120},
		{limit: 5, wantN: 5, newest: 120},
	}
	for _, tt := range tests {
		got, err := s.Runs(tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.wantN {
			t.Fatalf("Runs(%d): got %d runs, want %d", tt.limit, len(got), tt.wantN)
		}
		for i, r := range got {
			if want := tt.newest - uint64(i); r.ID != want {
				t.Errorf("Runs(%d)[%d].ID: got %d, want %d", tt.limit, i, r.ID, want)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A smaller limit applies at the next run; ids carry on.
	s = openStore(t, path, Options{HistoryLimit: 10})
	if err := s.RecordRun(dsync.RunSummary{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]uint64{121, 120, 119, 118, 117, 116, 115, 114, 113, 112}, ids); diff != "" {
		t.Errorf("ids after reopening with HistoryLimit 10 (-want +got):\n%s", diff)
	}
}
