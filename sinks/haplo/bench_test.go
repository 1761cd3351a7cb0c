package haplo

import (
	"strconv"
	"testing"

	dsync "github.com/idsync/idsync/sync"
)

// BenchmarkFirstSyncPerson is one person of a first sync, as the engine applies it:
// create_profile (a look-up by username and the profile push) then create_user, three
// requests, against the contract server without latency. Its allocations are the
// sink's, the HTTP client's and the contract server's together; haplotest's
// BenchmarkFirstSyncPerson gives the server's alone.
func BenchmarkFirstSyncPerson(b *testing.B) {
	s, _, _ := newTestSink(b, nil)
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		want := person(strconv.Itoa(i))
		i++
		p, err := s.Apply(ctx, dsync.Op{Kind: dsync.CreateProfile, ID: want.ID, Want: want})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Apply(ctx, dsync.Op{Kind: dsync.CreateUser, ID: want.ID, Want: want, ProfileRef: p.ProfileRef}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(3*b.N), "ns/request")
}
