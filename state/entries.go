package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	gosync "sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	dsync "github.com/idsync/idsync/sync"
)

// Snapshot returns every entry of sink, keyed by identity id: an empty map for a sink
// that has none.
func (s *Store) Snapshot(sink string) (map[string]dsync.Entry, error) {
	var entries map[string]dsync.Entry
	err := s.view(func(tx *bolt.Tx) error {
		b := sinkBucket(tx, sink)
		if b == nil {
			entries = map[string]dsync.Entry{}
			return nil
		}
		var err error
		entries, err = decodeEntries(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: snapshot of %s: %w", sink, err)
	}
	return entries, nil
}

// decodeChunk is how many entries one decoding goroutine takes at a time.
const decodeChunk = 2048

// decodeEntries decodes every value of b. Decoding JSON is nearly all of a snapshot's
// time (some 10µs an entry), so it runs on every CPU: the keys and values point into
// the transaction's memory map, which stays valid until the transaction ends, after
// the workers do.
func decodeEntries(b *bolt.Bucket) (map[string]dsync.Entry, error) {
	type kv struct{ k, v []byte }
	kvs := make([]kv, 0, b.Stats().KeyN)
	err := b.ForEach(func(k, v []byte) error {
		kvs = append(kvs, kv{k, v})
		return nil
	})
	if err != nil {
		return nil, err
	}

	decoded := make([]dsync.Entry, len(kvs))
	var (
		next     atomic.Int64 // the next chunk to take
		mu       gosync.Mutex
		firstErr error
		wg       gosync.WaitGroup
	)
	chunks := (len(kvs) + decodeChunk - 1) / decodeChunk
	for range min(runtime.GOMAXPROCS(0), chunks) {
		wg.Go(func() {
			for c := int(next.Add(1) - 1); c < chunks; c = int(next.Add(1) - 1) {
				for i := c * decodeChunk; i < min((c+1)*decodeChunk, len(kvs)); i++ {
					if err := json.Unmarshal(kvs[i].v, &decoded[i]); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("decode entry %q: %w", kvs[i].k, err)
						}
						mu.Unlock()
						next.Store(int64(chunks)) // stop the others
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}

	entries := make(map[string]dsync.Entry, len(kvs))
	for i, kv := range kvs {
		entries[string(kv.k)] = decoded[i]
	}
	return entries, nil
}

// Put stores e as sink's entry for e.ID. It returns when the entry is durable.
func (s *Store) Put(sink string, e dsync.Entry) error {
	if err := checkKeys(sink, e.ID); err != nil {
		return fmt.Errorf("state: put %s/%s: %w", sink, e.ID, err)
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("state: put %s/%s: encode: %w", sink, e.ID, err)
	}
	err = s.write(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketSinks).CreateBucketIfNotExists([]byte(sink))
		if err != nil {
			return err
		}
		return b.Put([]byte(e.ID), v)
	})
	if err != nil && !errors.Is(err, errClosed) {
		return fmt.Errorf("state: put %s/%s: %w", sink, e.ID, err)
	}
	return err
}

// Delete removes sink's entry for id. It returns when the deletion is durable; deleting
// an entry that does not exist is not an error.
func (s *Store) Delete(sink, id string) error {
	if err := checkKeys(sink, id); err != nil {
		return fmt.Errorf("state: delete %s/%s: %w", sink, id, err)
	}
	err := s.write(func(tx *bolt.Tx) error {
		b := sinkBucket(tx, sink)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(id))
	})
	if err != nil && !errors.Is(err, errClosed) {
		return fmt.Errorf("state: delete %s/%s: %w", sink, id, err)
	}
	return err
}

// Sinks returns the names of the sinks that have entries (or had), sorted.
func (s *Store) Sinks() ([]string, error) {
	var names []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSinks).ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: list sinks: %w", err)
	}
	return names, nil // bbolt keeps keys in byte order
}

func sinkBucket(tx *bolt.Tx, sink string) *bolt.Bucket {
	return tx.Bucket(bucketSinks).Bucket([]byte(sink))
}

// checkKeys rejects what bbolt would refuse inside the transaction, where it would fail
// every write committed with this one.
func checkKeys(sink, id string) error {
	switch {
	case sink == "":
		return errors.New("empty sink name")
	case id == "":
		return errors.New("empty identity id")
	case len(sink) > bolt.MaxKeySize:
		return fmt.Errorf("sink name longer than %d bytes", bolt.MaxKeySize)
	case len(id) > bolt.MaxKeySize:
		return fmt.Errorf("identity id longer than %d bytes", bolt.MaxKeySize)
	}
	return nil
}
