package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	dsync "github.com/idsync/idsync/sync"
)

// writeBolt sets up a bbolt file by hand, as an older or newer idsync might have left it.
func writeBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// readMeta reads a key of bucket meta from a closed store's file.
func readMeta(t *testing.T, path, key string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("no meta bucket")
		}
		v = string(meta.Get([]byte(key)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func setVersion(v int) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keySchemaVersion, []byte(strconv.Itoa(v)))
	}
}

// withMigrations replaces the migrations for one test.
func withMigrations(t *testing.T, m []migration) {
	t.Helper()
	saved := migrations
	migrations = m
	t.Cleanup(func() { migrations = saved })
}

func TestSchemaVersionWrittenOnNewFile(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := readMeta(t, path, "schema_version"), "3"; got != want {
		t.Errorf("schema_version: got %q, want %q", got, want)
	}
	if got, want := schemaVersion(), 3; got != want {
		t.Errorf("schemaVersion(): got %d, want %d (a new migration needs a test of its own)", got, want)
	}
}

func TestSchemaRefused(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(tx *bolt.Tx) error
		opt     Options
		wantErr string
	}{{
		name:    "newer",
		setup:   setVersion(4),
		wantErr: "state file schema version 4 is newer than this idsync (3): upgrade idsync",
	}, {
		name:    "newer read-only",
		setup:   setVersion(4),
		opt:     Options{ReadOnly: true},
		wantErr: "state file schema version 4 is newer than this idsync (3): upgrade idsync",
	}, {
		name:    "older read-only",
		setup:   setVersion(0),
		opt:     Options{ReadOnly: true},
		wantErr: "outdated: state file schema version 0 is older than this idsync (3): open it once read-write to migrate it",
	}, {
		name:    "JSON entries read-only",
		setup:   setVersion(1),
		opt:     Options{ReadOnly: true},
		wantErr: "outdated: state file schema version 1 is older than this idsync (3): open it once read-write to migrate it",
	}, {
		name: "not a number",
		setup: func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			return meta.Put(keySchemaVersion, []byte("one"))
		},
		wantErr: `bucket meta: bad schema_version "one"`,
	}, {
		name: "not ours",
		setup: func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("widgets"))
			return err
		},
		wantErr: `not an idsync state file: it has bucket "widgets" but no meta bucket`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempPath(t)
			writeBolt(t, path, tt.setup)
			_, err := Open(path, tt.opt)
			if err == nil {
				t.Fatal("Open: got nil error, want one")
			}
			if want := fmt.Sprintf("state: open %s: %s", path, tt.wantErr); !strings.Contains(err.Error(), want) {
				t.Errorf("Open: got %q, want it to contain %q", err, want)
			}
		})
	}
}

func TestMigrationFromVersion0(t *testing.T) {
	withMigrations(t, []migration{
		0: func(tx *bolt.Tx) error {
			if err := createLayout(tx); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put([]byte("marker"), []byte("migrated"))
		},
	})
	path := tempPath(t)
	writeBolt(t, path, setVersion(0))

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The migrated file works.
	if err := s.Put("haplo", fullEntry("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := readMeta(t, path, "marker"), "migrated"; got != want {
		t.Errorf("marker: got %q, want %q", got, want)
	}
	if got, want := readMeta(t, path, "schema_version"), "1"; got != want {
		t.Errorf("schema_version: got %q, want %q", got, want)
	}

	// Already at version 1: the migration does not run again.
	withMigrations(t, []migration{
		0: func(*bolt.Tx) error { return errors.New("ran again") },
	})
	openStore(t, path, Options{})
}

func TestMigrationFailureChangesNothing(t *testing.T) {
	withMigrations(t, []migration{
		0: createLayout,
		1: func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Put([]byte("marker"), []byte("half done")); err != nil {
				return err
			}
			return errors.New("disk on fire")
		},
	})
	path := tempPath(t)
	writeBolt(t, path, setVersion(0))

	_, err := Open(path, Options{})
	if want := "migrate schema version 1 to 2: disk on fire"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: got %v, want an error containing %q", err, want)
	}
	if got := readMeta(t, path, "marker"); got != "" {
		t.Errorf("marker: got %q, want none: the failed migration must roll back", got)
	}
	if got, want := readMeta(t, path, "schema_version"), "0"; got != want {
		t.Errorf("schema_version: got %q, want %q", got, want)
	}
}

// v1FullEntry is fullEntry("1001") as schema version 1 stored it: the JSON that idsync
// wrote, kept as text so that a later change to sync.Entry cannot change what this
// test migrates.
const v1FullEntry = `{"id":"1001","user_id":"u-1001","profile_ref":"p-1001",` +
	`"user":{"id":"1001","username":"user1001","email":"1001@example.ac.uk","first_name":"Ada",` +
	`"last_name":"Lovelace","display_name":"Ada Lovelace","active":true,"groups":["staff","maths"],` +
	`"attributes":{"department":["Mathematics"],"phone":["01234","05678"]}},` +
	`"profile":{"id":"1001","first_name":"Ada","last_name":"Lovelace","active":false,` +
	`"attributes":{"title":["Countess"]}},"adopted":true,` +
	`"disabled_at":"2025-03-14T15:09:26.535897932+01:00",` +
	`"last_error":"haplo: update user: 500 Internal Server Error",` +
	`"last_error_at":"2025-03-14T16:09:26.535897932+01:00","failures":3}`

// writeV1 lays out a file as schema version 1 left it, with the given JSON entries
// (sink -> key -> value) and one run.
func writeV1(t *testing.T, path string, entries map[string]map[string]string) {
	t.Helper()
	writeBolt(t, path, func(tx *bolt.Tx) error {
		if err := createLayout(tx); err != nil {
			return err
		}
		if err := setVersion(1)(tx); err != nil {
			return err
		}
		for sink, kvs := range entries {
			b, err := tx.Bucket(bucketSinks).CreateBucket([]byte(sink))
			if err != nil {
				return err
			}
			for k, v := range kvs {
				if err := b.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketRuns).Put(runKey(1), []byte(`{"id":1,"started":"2025-03-14T15:09:26Z",`+
			`"finished":"2025-03-14T15:10:26Z","result":"success","identities":3}`))
	})
}

// readRaw returns a raw value of a sink's bucket from a closed store's file.
func readRaw(t *testing.T, path, sink, key string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	err = db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(sinkBucket(tx, sink).Get([]byte(key)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrationFromJSON(t *testing.T) {
	userOnly := fullEntry("5")
	userOnly.Profile, userOnly.ProfileRef, userOnly.LastErrorAt = nil, "", time.Time{}
	userOnlyJSON, err := json.Marshal(userOnly)
	if err != nil {
		t.Fatal(err)
	}
	path := tempPath(t)
	writeV1(t, path, map[string]map[string]string{
		"haplo": {
			"1001": v1FullEntry,
			"4":    `{"id":"4"}`,
			"5":    string(userOnlyJSON),
			// Version 1 keyed the snapshot by the bucket key, whatever the JSON said.
			"6": `{"user_id":"u-6"}`,
		},
		"scim":  {"1001": v1FullEntry},
		"empty": {},
	})

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]dsync.Entry{
		"haplo": {"1001": fullEntry("1001"), "4": {ID: "4"}, "5": userOnly, "6": {ID: "6", UserID: "u-6"}},
		"scim":  {"1001": fullEntry("1001")},
		"empty": {},
	}
	for sink, want := range want {
		got, err := s.Snapshot(sink)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, sameTime); diff != "" {
			t.Errorf("Snapshot(%q) after migration (-want +got):\n%s", sink, diff)
		}
	}
	runs, err := s.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].ID != 1 || runs[0].Identities != 3 {
		t.Errorf("Runs after migration: got %+v, want the one run, as it was", runs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if got, want := readMeta(t, path, "schema_version"), "3"; got != want {
		t.Errorf("schema_version: got %q, want %q", got, want)
	}
	if v := readRaw(t, path, "haplo", "1001"); len(v) == 0 || v[0] != entryFormat {
		t.Errorf("entry 1001 after migration: got %q, want the binary encoding", v)
	}
	// Migrated once: opening again finds nothing to do and the same entries.
	s = openStore(t, path, Options{})
	got, err := s.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want["haplo"], got, sameTime); diff != "" {
		t.Errorf("Snapshot after reopening (-want +got):\n%s", diff)
	}
}

// TestMigrationFromJSONBadEntry: an entry that is not JSON stops the migration, which
// leaves the file as it was, rather than dropping the entry and the account it owns.
func TestMigrationFromJSONBadEntry(t *testing.T) {
	path := tempPath(t)
	writeV1(t, path, map[string]map[string]string{
		"haplo": {"1001": v1FullEntry, "2": `{"id":"2",`},
	})
	_, err := Open(path, Options{})
	want := `migrate schema version 1 to 2: sink haplo: entry "2": unexpected end of JSON input`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: got %v, want an error containing %q", err, want)
	}
	if got, want := readMeta(t, path, "schema_version"), "1"; got != want {
		t.Errorf("schema_version: got %q, want %q", got, want)
	}
	if got := string(readRaw(t, path, "haplo", "1001")); got != v1FullEntry {
		t.Errorf("entry 1001 after the failed migration: got %s, want it unchanged", got)
	}
}

// TestMigrationFromJSONNestedBucket: version 1 put only entries in a sink's bucket, so
// a bucket there is not something the migration knows how to keep: it stops rather than
// drop it when it rebuilds the sink's bucket.
func TestMigrationFromJSONNestedBucket(t *testing.T) {
	path := tempPath(t)
	writeV1(t, path, map[string]map[string]string{"haplo": {"1001": v1FullEntry}})
	writeBolt(t, path, func(tx *bolt.Tx) error {
		_, err := sinkBucket(tx, "haplo").CreateBucket([]byte("nested"))
		return err
	})
	_, err := Open(path, Options{})
	want := `migrate schema version 1 to 2: sink haplo: "nested" is a bucket, not an entry`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: got %v, want an error containing %q", err, want)
	}
	if got, want := readMeta(t, path, "schema_version"), "1"; got != want {
		t.Errorf("schema_version: got %q, want %q", got, want)
	}
}

// TestOlderIdsyncRefusesMigratedFile: an idsync that knows only version 1 (JSON
// entries) refuses a newer file rather than misreading its entries.
func TestOlderIdsyncRefusesMigratedFile(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("haplo", fullEntry("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	withMigrations(t, migrations[:1])
	for _, readOnly := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: readOnly})
		want := "state file schema version 3 is newer than this idsync (1): upgrade idsync"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadOnly %v: Open: got %v, want an error containing %q", readOnly, err, want)
		}
	}
}

// TestLastOperations: version 3 lets entries carry their last operation. A version 2
// file opens as version 3 with its entries as they were; an idsync of version 2 refuses
// a version 3 file as newer, rather than calling an entry with a last operation
// corrupt.
func TestLastOperations(t *testing.T) {
	path := tempPath(t)
	withMigrations(t, migrations[:2])
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	old := fullEntry("1")
	if err := s.Put("haplo", old); err != nil {
		t.Fatal(err)
	}
	s.Close()
	migrations = append(migrations[:2:2], lastOperations)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readMetaOpen(t, s); got != "3" {
		t.Errorf("schema_version after the migration: %q, want 3", got)
	}
	snap, err := s.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]dsync.Entry{"1": old}, snap, sameTime); diff != "" {
		t.Errorf("entries after the migration (-want +got):\n%s", diff)
	}
	withOp := fullEntry("2")
	withOp.LastOp, withOp.LastOpAt = dsync.UpdateUser, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if err := s.Put("haplo", withOp); err != nil {
		t.Fatal(err)
	}
	s.Close()

	migrations = migrations[:2]
	_, err = Open(path, Options{ReadOnly: true})
	if want := "state file schema version 3 is newer than this idsync (2): upgrade idsync"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("an idsync of version 2: got %v, want %q", err, want)
	}
}

func readMetaOpen(t *testing.T, s *Store) string {
	t.Helper()
	var v string
	s.view(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get(keySchemaVersion))
		return nil
	})
	return v
}
