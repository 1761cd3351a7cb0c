package state

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	dsync "github.com/idsync/idsync/sync"
	bolt "go.etcd.io/bbolt"
)

func TestEntries(t *testing.T) {
	disabled := fullEntry("3")
	disabled.User.Active = false
	minimal := dsync.Entry{ID: "4"}

	tests := []struct {
		name    string
		ops     func(s *Store) error
		sink    string
		want    map[string]dsync.Entry
		wantErr bool
	}{{
		name: "round trip",
		ops: func(s *Store) error {
			for _, e := range []dsync.Entry{fullEntry("1"), fullEntry("2"), minimal} {
				if err := s.Put("haplo", e); err != nil {
					return err
				}
			}
			return nil
		},
		sink: "haplo",
		want: map[string]dsync.Entry{"1": fullEntry("1"), "2": fullEntry("2"), "4": minimal},
	}, {
		name: "put replaces",
		ops: func(s *Store) error {
			if err := s.Put("haplo", fullEntry("3")); err != nil {
				return err
			}
			return s.Put("haplo", disabled)
		},
		sink: "haplo",
		want: map[string]dsync.Entry{"3": disabled},
	}, {
		name: "delete",
		ops: func(s *Store) error {
			for _, id := range []string{"1", "2"} {
				if err := s.Put("haplo", fullEntry(id)); err != nil {
					return err
				}
			}
			return s.Delete("haplo", "1")
		},
		sink: "haplo",
		want: map[string]dsync.Entry{"2": fullEntry("2")},
	}, {
		name: "delete missing id",
		ops: func(s *Store) error {
			if err := s.Put("haplo", fullEntry("1")); err != nil {
				return err
			}
			return s.Delete("haplo", "nobody")
		},
		sink: "haplo",
		want: map[string]dsync.Entry{"1": fullEntry("1")},
	}, {
		name: "delete in unknown sink",
		ops:  func(s *Store) error { return s.Delete("scim", "1") },
		sink: "scim",
		want: map[string]dsync.Entry{},
	}, {
		name: "sinks are separate",
		ops: func(s *Store) error {
			if err := s.Put("haplo", fullEntry("1")); err != nil {
				return err
			}
			return s.Put("scim", fullEntry("2"))
		},
		sink: "scim",
		want: map[string]dsync.Entry{"2": fullEntry("2")},
	}, {
		name: "unknown sink",
		ops:  func(s *Store) error { return s.Put("haplo", fullEntry("1")) },
		sink: "nowhere",
		want: map[string]dsync.Entry{},
	}, {
		name:    "empty id",
		ops:     func(s *Store) error { return s.Put("haplo", dsync.Entry{}) },
		sink:    "haplo",
		want:    map[string]dsync.Entry{},
		wantErr: true,
	}, {
		name:    "empty sink",
		ops:     func(s *Store) error { return s.Put("", fullEntry("1")) },
		sink:    "",
		want:    map[string]dsync.Entry{},
		wantErr: true,
	}, {
		name:    "id too long",
		ops:     func(s *Store) error { return s.Delete("haplo", strings.Repeat("x", 40000)) },
		sink:    "haplo",
		want:    map[string]dsync.Entry{},
		wantErr: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, tempPath(t), Options{})
			err := tt.ops(s)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ops: got error %v, want error: %v", err, tt.wantErr)
			}
			got, err := s.Snapshot(tt.sink)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("Snapshot: got a nil map, want a non-nil one")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Snapshot(%q) (-want +got):\n%s", tt.sink, diff)
			}
			for id, want := range tt.want {
				got, found, err := s.Entry(tt.sink, id)
				if err != nil || !found || !cmp.Equal(want, got) {
					t.Errorf("Entry(%q, %q): %+v, %v, %v; want %+v", tt.sink, id, got, found, err, want)
				}
			}
			if _, found, err := s.Entry(tt.sink, "nobody"); found || (err != nil) != (tt.sink == "") {
				t.Errorf("Entry(%q, nobody): found %v, %v", tt.sink, found, err)
			}
			streamed, err := entriesOf(s, tt.sink)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, streamed); diff != "" {
				t.Errorf("Entries(%q) (-want +got):\n%s", tt.sink, diff)
			}
		})
	}
}

// entriesOf collects what Entries gives, checking that it comes in id order, once each.
// It keeps clones: Entries reuses an entry's identities for the next.
func entriesOf(s *Store, sink string) (map[string]dsync.Entry, error) {
	got := map[string]dsync.Entry{}
	last := ""
	err := s.Entries(sink, func(e dsync.Entry) error {
		if _, dup := got[e.ID]; dup || (len(got) > 0 && e.ID <= last) {
			return fmt.Errorf("entry %q after %q: not in id order", e.ID, last)
		}
		got[e.ID], last = e.Clone(), e.ID
		return nil
	})
	return got, err
}

// TestEntriesStopsAtFnError: fn's error ends the walk and comes back, wrapped.
func TestEntriesStopsAtFnError(t *testing.T) {
	s := openStore(t, tempPath(t), Options{})
	for i := range 10 {
		if err := s.Put("haplo", fullEntry(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("enough")
	calls := 0
	err := s.Entries("haplo", func(dsync.Entry) error {
		if calls++; calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("Entries: %d calls, error %v; want 3 calls and the error fn returned", calls, err)
	}
}

func TestPutErrorSaysWhat(t *testing.T) {
	s := openStore(t, tempPath(t), Options{})
	err := s.Put("haplo", dsync.Entry{})
	if want := "state: put haplo/: empty identity id"; err == nil || err.Error() != want {
		t.Errorf("Put: got %v, want %q", err, want)
	}
}

func TestSinks(t *testing.T) {
	s := openStore(t, tempPath(t), Options{})
	got, err := s.Sinks()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("Sinks of a new file: got %v, want none", got)
	}
	for _, sink := range []string{"scim", "haplo", "google", "haplo"} {
		if err := s.Put(sink, fullEntry("1")); err != nil {
			t.Fatal(err)
		}
	}
	got, err = s.Sinks()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"google", "haplo", "scim"}, got); diff != "" {
		t.Errorf("Sinks (-want +got):\n%s", diff)
	}
}

func TestSnapshotIsACopy(t *testing.T) {
	s := openStore(t, tempPath(t), Options{})
	if err := s.Put("haplo", fullEntry("1")); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // reuse the pages the snapshot was read from
		if err := s.Put("haplo", fullEntry(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(map[string]dsync.Entry{"1": fullEntry("1")}, snap); diff != "" {
		t.Errorf("snapshot changed by later writes (-want +got):\n%s", diff)
	}
}

// TestEntriesAcrossBatches: Entries decodes ahead of fn in batches (pipeBatch); over
// several batches, fn still sees every entry once in id order, fn's error stops the
// walk where it was returned, and a corrupt entry deep in the bucket ends the walk
// after every entry before it, with its error.
func TestEntriesAcrossBatches(t *testing.T) {
	const n = 5*pipeBatch + 17
	s := openStore(t, tempPath(t), Options{})
	fillSink(t, s, "haplo", n, func(i int) dsync.Entry { return fullEntry(fmt.Sprintf("k%05d", i)) })
	got, err := entriesOf(s, "haplo")
	if err != nil || len(got) != n {
		t.Fatalf("Entries: %d entries, %v; want %d", len(got), err, n)
	}
	for i := range n {
		id := fmt.Sprintf("k%05d", i)
		if diff := cmp.Diff(fullEntry(id), got[id]); diff != "" {
			t.Fatalf("entry %s (-want +got):\n%s", id, diff)
		}
	}

	stop := errors.New("enough")
	calls := 0
	err = s.Entries("haplo", func(dsync.Entry) error {
		if calls++; calls == 3*pipeBatch+5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3*pipeBatch+5 {
		t.Errorf("Entries: %d calls, error %v; want %d calls and fn's error", calls, err, 3*pipeBatch+5)
	}

	bad := fmt.Sprintf("k%05d", 4*pipeBatch+3)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return sinkBucket(tx, "haplo").Put([]byte(bad), []byte{entryFormat})
	}); err != nil {
		t.Fatal(err)
	}
	calls = 0
	err = s.Entries("haplo", func(e dsync.Entry) error {
		calls++
		return nil
	})
	if want := fmt.Sprintf("state: snapshot of haplo: entry %q: corrupt entry", bad); err == nil || !strings.HasPrefix(err.Error(), want) || calls != 4*pipeBatch+3 {
		t.Errorf("Entries: %d calls, error %v; want %d calls and an error starting %q", calls, err, 4*pipeBatch+3, want)
	}
}

// fillSink makes sink's bucket and writes entry(i) for i < n into it in one
// transaction, straight through bbolt: the many entries of a benchmark, or entries
// beside which a test puts what Put would refuse.
func fillSink(tb testing.TB, s *Store, sink string, n int, entry func(i int) dsync.Entry) {
	tb.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketSinks).CreateBucket([]byte(sink))
		if err != nil {
			return err
		}
		for i := range n {
			e := entry(i)
			if err := b.Put([]byte(e.ID), encodeEntry(&e)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}
