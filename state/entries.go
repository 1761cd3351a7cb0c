package state

import (
	"errors"
	"fmt"

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

// Entries calls fn with every entry of sink, one at a time, in the order of their ids,
// and stops at fn's first error, which it returns. Each entry's strings are its own,
// but its identities, lists and maps are reused for a later entry once fn has
// returned: fn keeps a Clone of what it keeps. A run compares 100,000 entries with the
// sources so, holding and allocating little beyond the few that changed. fn must not
// use the store.
//
// The entries are decoded in a goroutine of their own, a few batches ahead of fn:
// decoding and comparing take about as long as each other, and a run's planning has
// both cores to itself (0.19 s of CPU for both at 100,000, on the benchmark machine).
func (s *Store) Entries(sink string, fn func(dsync.Entry) error) error {
	p := newPipe()
	go func() {
		defer close(p.full)
		err := s.view(func(tx *bolt.Tx) error {
			b := sinkBucket(tx, sink)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			for k, v := c.First(); k != nil; {
				slot, ok := p.take()
				if !ok {
					return nil // fn failed: its error is the one returned
				}
				n := 0
				for ; k != nil && n < pipeBatch; k, v = c.Next() {
					e, err := p.decoder(slot, n).keyed(k, v)
					if err != nil {
						p.full <- filled{slot: slot, n: n}
						return err
					}
					p.entries[slot][n] = e
					n++
				}
				p.full <- filled{slot: slot, n: n}
			}
			return nil
		})
		if err != nil {
			p.full <- filled{slot: -1, err: err}
		}
	}()
	var err error
	for f := range p.full {
		switch {
		case err != nil: // drain: the decoder stops at its next batch
		case f.err != nil:
			err = fmt.Errorf("state: snapshot of %s: %w", sink, f.err)
		default:
			for _, e := range p.entries[f.slot][:f.n] {
				if ferr := fn(e); ferr != nil {
					err = fmt.Errorf("state: snapshot of %s: %w", sink, ferr)
					close(p.stop)
					break
				}
			}
		}
		if f.slot >= 0 {
			p.free <- f.slot
		}
	}
	return err
}

// pipeBatch is how many entries Entries hands fn at a time; pipeSlots batches are
// decoded or compared at once.
const (
	pipeBatch = 256
	pipeSlots = 3
)

// pipe is Entries' hand-over between its decoding goroutine and fn: each slot is a
// batch of entries with their decoders, whose reused identities, lists and maps the
// entries point into. A slot's decoders are made as its batches first need them, so
// that a sink of 20 entries costs 20 of each, not the 768 of three full batches
// (600 KB, 0.48 ms a call).
type pipe struct {
	decoders [pipeSlots][]*decoder
	entries  [pipeSlots][]dsync.Entry
	free     chan int    // slots fn is done with
	full     chan filled // slots decoded, or the decoding's error (slot -1)
	stop     chan struct{}
}

type filled struct {
	slot, n int
	err     error
}

func newPipe() *pipe {
	p := &pipe{free: make(chan int, pipeSlots), full: make(chan filled, pipeSlots+1), stop: make(chan struct{})}
	for i := range pipeSlots {
		p.free <- i
	}
	return p
}

// decoder returns the decoder of a slot's nth entry, made (with the entry's place)
// on first use.
func (p *pipe) decoder(slot, n int) *decoder {
	if n == len(p.decoders[slot]) {
		p.decoders[slot] = append(p.decoders[slot], &decoder{reuse: true})
		p.entries[slot] = append(p.entries[slot], dsync.Entry{})
	}
	return p.decoders[slot][n]
}

// take returns a slot to decode into, or false once fn has failed.
func (p *pipe) take() (int, bool) {
	select {
	case slot := <-p.free:
		return slot, true
	case <-p.stop:
		return 0, false
	}
}

// Entry returns sink's entry for id, and whether there is one.
func (s *Store) Entry(sink, id string) (dsync.Entry, bool, error) {
	var (
		e     dsync.Entry
		found bool
	)
	if err := checkKeys(sink, id); err != nil {
		return e, false, fmt.Errorf("state: entry %s/%s: %w", sink, id, err)
	}
	err := s.view(func(tx *bolt.Tx) error {
		b := sinkBucket(tx, sink)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		var d decoder
		var err error
		e, err = d.keyed([]byte(id), v)
		found = err == nil
		return err
	})
	if err != nil {
		return dsync.Entry{}, false, fmt.Errorf("state: snapshot of %s: %w", sink, err)
	}
	return e, found, nil
}

// decodeEntries decodes every entry of b.
//
// It decodes on one goroutine, straight into the map. Decoding JSON on every CPU paid
// when it cost some 10µs an entry; the binary layout costs about 2µs, most of it
// allocating the identities' attribute maps and collecting the garbage, and spread
// over two CPUs it took 25% more CPU time for the same wall time (BenchmarkSnapshot100k,
// 2 CPUs): the garbage collector was already using the second one.
func decodeEntries(b *bolt.Bucket) (map[string]dsync.Entry, error) {
	entries := make(map[string]dsync.Entry, b.Stats().KeyN)
	var d decoder
	err := b.ForEach(func(k, v []byte) error {
		e, err := d.keyed(k, v)
		if err != nil {
			return err
		}
		entries[e.ID] = e // e.ID is part of the entry's one string: no copy of the key
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// keyed decodes the entry v stored under k, which must be its id.
func (d *decoder) keyed(k, v []byte) (dsync.Entry, error) {
	if v == nil {
		return dsync.Entry{}, fmt.Errorf("%q is a bucket, not an entry", k)
	}
	e, err := d.entry(v)
	if err == nil && e.ID != string(k) {
		err = fmt.Errorf("%w: it holds the entry of %q", errCorrupt, e.ID)
	}
	if err != nil {
		return dsync.Entry{}, fmt.Errorf("entry %q: %w", k, err)
	}
	return e, nil
}

// Put stores e as sink's entry for e.ID. It returns when the entry is durable.
func (s *Store) Put(sink string, e dsync.Entry) error {
	return <-s.put(sink, e, false)
}

// PutAsync is Put without the wait: the write is queued, behind every write queued
// before PutAsync returns, and the channel receives Put's result once the entry is
// durable (or the write failed). Since nobody waits for it at once, it may wait a
// little (commitDelay) for other writes to share its transaction and fsyncs.
func (s *Store) PutAsync(sink string, e dsync.Entry) <-chan error {
	return s.put(sink, e, true)
}

func (s *Store) put(sink string, e dsync.Entry, later bool) <-chan error {
	if err := checkKeys(sink, e.ID); err != nil {
		return failed(fmt.Errorf("state: put %s/%s: %w", sink, e.ID, err))
	}
	v := encodeEntry(&e)
	id := e.ID
	return s.queue(request{op: "put", sink: sink, id: id, apply: func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketSinks).CreateBucketIfNotExists([]byte(sink))
		if err != nil {
			return err
		}
		return b.Put([]byte(id), v)
	}}, later)
}

// Delete removes sink's entry for id. It returns when the deletion is durable; deleting
// an entry that does not exist is not an error.
func (s *Store) Delete(sink, id string) error {
	return <-s.del(sink, id, false)
}

// DeleteAsync is Delete without the wait, as PutAsync is Put's.
func (s *Store) DeleteAsync(sink, id string) <-chan error {
	return s.del(sink, id, true)
}

func (s *Store) del(sink, id string, later bool) <-chan error {
	if err := checkKeys(sink, id); err != nil {
		return failed(fmt.Errorf("state: delete %s/%s: %w", sink, id, err))
	}
	return s.queue(request{op: "delete", sink: sink, id: id, apply: func(tx *bolt.Tx) error {
		b := sinkBucket(tx, sink)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(id))
	}}, later)
}

// failed is a channel that holds err.
func failed(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
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
