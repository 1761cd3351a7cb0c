package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	dsync "github.com/idsync/idsync/sync"
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
	1: entriesFromJSON,
	2: lastOperations,
}

// schemaVersion is the version of the files this code reads and writes.
func schemaVersion() int { return len(migrations) }

// lastOperations is version 3: an entry may carry the last operation applied to it
// and an invitation to deliver (codec.go's entryHasLastOp, entryHasInvite,
// entryHasInviteLapsed), which an idsync of version 2 would refuse as corrupt.
// Nothing is rewritten: the version is raised so that an older idsync says "newer than
// this idsync" rather than "corrupt entry".
func lastOperations(*bolt.Tx) error { return nil }

func createLayout(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketSinks, bucketRuns} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// entriesFromJSON rewrites every snapshot entry from JSON, as schema version 1 stored
// them, into the binary layout of codec.go (format 1), which version 2 stores. A value
// that is not the JSON of an entry fails the migration, and so leaves the file as it
// was, rather than being dropped: an entry lost is an account idsync no longer owns.
//
// It encodes with encodeEntry: should the layout change again, this migration must go
// on writing format 1, which the next migration then rewrites.
func entriesFromJSON(tx *bolt.Tx) error {
	sinks := tx.Bucket(bucketSinks)
	// Named first and rewritten after: bbolt's iteration does not survive writes.
	var names [][]byte
	err := sinks.ForEachBucket(func(name []byte) error {
		names = append(names, bytes.Clone(name))
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := sinkFromJSON(sinks, name); err != nil {
			return fmt.Errorf("sink %s: %w", name, err)
		}
	}
	return nil
}

// sinkFromJSON rewrites the entries of one sink, holding them in memory once. It
// writes them into a new bucket rather than over the old values: bbolt would keep the
// old tree's pages, each then a fifth full, and every later open and snapshot would
// read them all (100,000 full entries: 138 MB of pages instead of 34 MB). The old
// pages are free for later writes; bbolt never shrinks the file itself.
func sinkFromJSON(sinks *bolt.Bucket, name []byte) error {
	type kv struct{ k, v []byte }
	var entries []kv
	err := sinks.Bucket(name).ForEach(func(k, v []byte) error {
		if v == nil {
			return fmt.Errorf("%q is a bucket, not an entry", k)
		}
		var e dsync.Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("entry %q: %w", k, err)
		}
		// Version 1 keyed snapshots by the bucket key, whatever the JSON said;
		// version 2 checks that they agree.
		e.ID = string(k)
		entries = append(entries, kv{bytes.Clone(k), encodeEntry(&e)})
		return nil
	})
	if err != nil {
		return err
	}
	if err := sinks.DeleteBucket(name); err != nil {
		return err
	}
	b, err := sinks.CreateBucket(name)
	if err != nil {
		return err
	}
	// Filled in key order, pages can be fuller than bbolt's half: 90% leaves room
	// for an entry to grow a little without splitting its page.
	b.FillPercent = 0.9
	for _, e := range entries {
		if err := b.Put(e.k, e.v); err != nil {
			return fmt.Errorf("entry %q: %w", e.k, err)
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
		return fmt.Errorf("%w: state file schema version %d is older than this idsync (%d): open it once read-write to migrate it", ErrOutdated, have, want)
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

// ErrOutdated is returned, wrapped, by a read-only Open of a file of an older schema,
// which only a read-write Open migrates.
var ErrOutdated = errors.New("outdated")

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
