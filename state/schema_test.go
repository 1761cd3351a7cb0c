package state

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
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
	if got, want := readMeta(t, path, "schema_version"), "1"; got != want {
		t.Errorf("schema_version: got %q, want %q", got, want)
	}
	if got, want := schemaVersion(), 1; got != want {
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
		setup:   setVersion(3),
		wantErr: "state file schema version 3 is newer than this idsync (1): upgrade idsync",
	}, {
		name:    "newer read-only",
		setup:   setVersion(3),
		opt:     Options{ReadOnly: true},
		wantErr: "state file schema version 3 is newer than this idsync (1): upgrade idsync",
	}, {
		name:    "older read-only",
		setup:   setVersion(0),
		opt:     Options{ReadOnly: true},
		wantErr: "state file schema version 0 is older than this idsync (1): open it once read-write to migrate it",
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
