package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	dsync "github.com/idsync/idsync/sync"
)

// RecordRun adds r to the run history under the next run id (r.ID is ignored) and drops
// the oldest runs beyond the history limit. It returns when the record is durable.
func (s *Store) RecordRun(r dsync.RunSummary) error {
	// Encode once outside the transaction: a summary that cannot be encoded (a NaN in a
	// guard, say) must not fail the writes that share its transaction.
	if _, err := json.Marshal(r); err != nil {
		return fmt.Errorf("state: record run: encode: %w", err)
	}
	err := s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.ID = id
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(runKey(id), v); err != nil {
			return err
		}
		return s.prune(b, id)
	})
	if err != nil && !errors.Is(err, errClosed) {
		return fmt.Errorf("state: record run: %w", err)
	}
	return err
}

// prune deletes the runs older than the newest historyLimit, newest being id.
func (s *Store) prune(b *bolt.Bucket, newest uint64) error {
	if newest <= uint64(s.historyLimit) {
		return nil
	}
	cutoff := newest - uint64(s.historyLimit) // delete ids <= cutoff
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= cutoff; k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Runs returns up to limit run summaries, newest first; all of them if limit is zero or
// less.
func (s *Store) Runs(limit int) ([]dsync.RunSummary, error) {
	var runs []dsync.RunSummary
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(runs) < limit); k, v = c.Prev() {
			var r dsync.RunSummary
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode run %d: %w", binary.BigEndian.Uint64(k), err)
			}
			runs = append(runs, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read runs: %w", err)
	}
	return runs, nil
}

func runKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id)
}
