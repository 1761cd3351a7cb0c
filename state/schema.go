package state

import (
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// keySchemaVersion in bucket meta holds the file's schema version in decimal, so that
// `bbolt get` shows it as it is.
var keySchemaVersion = []byte("schema_version")

// A migration takes a file from one schema version to the next, inside the
// transaction that then records the new version.
type migration func(tx *bolt.Tx) error

// migrations[v] takes a file from version v to v+1, so len(migrations) is the version
// this code writes. Version 0 is a file with no buckets at all, a new one: its
// migration lays out the buckets. Append; never edit a migration that has shipped.
var migrations = []migration{
	0: createLayout,
}

// schemaVersion is the version of the files this code reads and writes.
func schemaVersion() int { return len(migrations) }

func createLayout(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketSinks, bucketRuns} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// upgrade checks the file's schema version and runs the migrations it lacks, all in one
// transaction. A read-only file must already be up to date.
func upgrade(db *bolt.DB, readOnly bool) error {
	var have int
	err := db.View(func(tx *bolt.Tx) (err error) {
		have, err = readVersion(tx)
		return err
	})
	want := schemaVersion()
	switch {
	case err != nil:
		return err
	case have > want:
		return fmt.Errorf("state file schema version %d is newer than this idsync (%d): upgrade idsync", have, want)
	case have == want:
		return nil
	case readOnly:
		return fmt.Errorf("state file schema version %d is older than this idsync (%d): open it once read-write to migrate it", have, want)
	}
	return db.Update(func(tx *bolt.Tx) error {
		// The write lock is ours, but read again so the check and the migration are
		// one transaction.
		have, err := readVersion(tx)
		if err != nil {
			return err
		}
		for v := have; v < want; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema version %d to %d: %w", v, v+1, err)
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketMeta, err)
		}
		return meta.Put(keySchemaVersion, []byte(strconv.Itoa(want)))
	})
}

var errStopIteration = errors.New("stop")

// readVersion returns the file's schema version: 0 for a file without buckets.
func readVersion(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		// A new file has no buckets; one with buckets but no meta is not ours.
		var other []byte
		err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			other = name
			return errStopIteration
		})
		if err != nil && !errors.Is(err, errStopIteration) {
			return 0, err
		}
		if other != nil {
			return 0, fmt.Errorf("not an idsync state file: it has bucket %q but no %s bucket", other, bucketMeta)
		}
		return 0, nil
	}
	raw := meta.Get(keySchemaVersion)
	if raw == nil {
		return 0, fmt.Errorf("bucket %s has no %s", bucketMeta, keySchemaVersion)
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bucket %s: bad %s %q", bucketMeta, keySchemaVersion, raw)
	}
	return v, nil
}
