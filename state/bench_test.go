package state

import (
	"encoding/json"
	"fmt"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	dsync "github.com/idsync/idsync/sync"
)

// BenchmarkPutConcurrent16 is a run's apply phase: 16 workers each putting the entry of
// the operation it finished. b.N is the number of puts in all.
func BenchmarkPutConcurrent16(b *testing.B) {
	const workers = 16
	s := openStore(b, tempPath(b), Options{})
	var next atomic.Int64
	var wg gosync.WaitGroup
	b.ResetTimer()
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if err := s.Put("haplo", fullEntry(fmt.Sprint(i))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(s.commits.Load()), "puts/tx")
}

// BenchmarkPutSerial is one writer: each Put pays a whole commit and fsync.
func BenchmarkPutSerial(b *testing.B) {
	s := openStore(b, tempPath(b), Options{})
	i := 0
	for b.Loop() {
		if err := s.Put("haplo", fullEntry(fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSnapshot100k reads a sink of 100,000 entries: "full" entries have every
// field (a profile with attributes, a last error: some 650 bytes of JSON), "user" ones
// an account with two groups and nothing else (some 330 bytes).
func BenchmarkSnapshot100k(b *testing.B) {
	const n = 100_000
	for _, bb := range []struct {
		name  string
		entry func(id string) dsync.Entry
	}{
		{"full", fullEntry},
		{"user", func(id string) dsync.Entry {
			e := fullEntry(id)
			e.User.Attributes, e.Profile, e.ProfileRef = nil, nil, ""
			e.Adopted, e.DisabledAt, e.LastError, e.LastErrorAt, e.Failures = false, time.Time{}, "", time.Time{}, 0
			return e
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			s := openStore(b, tempPath(b), Options{})
			err := s.db.Update(func(tx *bolt.Tx) error {
				sink, err := tx.Bucket(bucketSinks).CreateBucket([]byte("haplo"))
				if err != nil {
					return err
				}
				for i := range n {
					e := bb.entry(fmt.Sprintf("%08d", i))
					v, err := json.Marshal(e)
					if err != nil {
						return err
					}
					if err := sink.Put([]byte(e.ID), v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				snap, err := s.Snapshot("haplo")
				if err != nil {
					b.Fatal(err)
				}
				if len(snap) != n {
					b.Fatalf("Snapshot: got %d entries, want %d", len(snap), n)
				}
			}
		})
	}
}
