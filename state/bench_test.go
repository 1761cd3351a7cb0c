package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	gosync "sync"
	"sync/atomic"
	"syscall"
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
// field (a profile with attributes, a last error: 259 bytes encoded, 650 as the JSON
// of schema version 1), "user" ones an account with two groups and nothing else (102
// bytes, 237 as JSON). Besides the time, it reports the CPU time (the garbage
// collector's included), the heap one snapshot keeps, and the size of the sink's pages
// and of the file.
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
			fillSink(b, s, "haplo", n, func(i int) dsync.Entry { return bb.entry(fmt.Sprintf("%08d", i)) })
			pages, onDisk := fileSize(b, s, "haplo")
			cpu := cpuTime(b)
			for b.Loop() {
				snap, err := s.Snapshot("haplo")
				if err != nil {
					b.Fatal(err)
				}
				if len(snap) != n {
					b.Fatalf("Snapshot: got %d entries, want %d", len(snap), n)
				}
			}
			// After the loop: b.Loop's first call resets the metrics.
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(liveHeap(b, s)), "live-bytes")
			b.ReportMetric(pages, "page-bytes")
			b.ReportMetric(onDisk, "file-bytes")
		})
	}
}

// liveHeap returns how much of the heap one snapshot keeps: what a run holds while it
// plans and applies, as against B/op, which counts the garbage made on the way too.
func liveHeap(b *testing.B, s *Store) uint64 {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	snap, err := s.Snapshot("haplo")
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(snap)
	return after.HeapAlloc - before.HeapAlloc
}

// fileSize returns the bytes of the pages that hold sink's entries and the size of the
// file on disk, which bbolt grows in steps and never shrinks.
func fileSize(b *testing.B, s *Store, sink string) (pages, onDisk float64) {
	b.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		st := sinkBucket(tx, sink).Stats()
		pages = float64((st.BranchPageN + st.BranchOverflowN + st.LeafPageN + st.LeafOverflowN) * s.db.Info().PageSize)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		b.Fatal(err)
	}
	return pages, float64(fi.Size())
}

// cpuTime returns the CPU time the process has used, user and system, in nanoseconds:
// on a busy machine it varies less than the wall time does, and it counts the garbage
// collector's work on other threads.
func cpuTime(b *testing.B) int64 {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkEncodeEntry and BenchmarkDecodeEntry measure the codec alone, without the
// fsync that dominates a Put or the map a Snapshot fills.
func BenchmarkEncodeEntry(b *testing.B) {
	e := fullEntry("00001234")
	var v []byte
	for b.Loop() {
		v = encodeEntry(&e)
	}
	b.ReportMetric(float64(len(v)), "bytes")
}

func BenchmarkDecodeEntry(b *testing.B) {
	e := fullEntry("00001234")
	v := encodeEntry(&e)
	var d decoder
	for b.Loop() {
		if _, err := d.entry(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMigrate100k opens a schema version 1 file of 100,000 full entries in JSON:
// the one-off cost of the first open after an upgrade, which rewrites them all.
func BenchmarkMigrate100k(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := tempPath(b)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			if err := createLayout(tx); err != nil {
				return err
			}
			if err := tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("1")); err != nil {
				return err
			}
			sink, err := tx.Bucket(bucketSinks).CreateBucket([]byte("haplo"))
			if err != nil {
				return err
			}
			for i := range n {
				e := fullEntry(fmt.Sprintf("%08d", i))
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
		if err := errors.Join(err, db.Close()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		pages, onDisk := fileSize(b, s, "haplo")
		b.ReportMetric(pages, "page-bytes")
		b.ReportMetric(onDisk, "file-bytes")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
