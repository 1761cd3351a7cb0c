package descope

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/idsync/idsync/sinks/descope/descopetest"
	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

type staticSource []dsync.Identity

func (s staticSource) Read(context.Context) ([]dsync.Identity, error) { return slices.Clone(s), nil }

// A first sync through the engine, with the sink's default concurrency and batch
// size, sends full batches; every identity is recorded with its own userId; a
// second run plans nothing; an account deleted by hand is found by the drift check
// and made again.
func TestFirstSyncThroughTheEngine(t *testing.T) {
	srv := descopetest.Start(t, descopetest.Options{})
	s := newSink(t, srv, func(c *Config) { c.Roles = map[string]string{"staff": "Staff"} })
	if s.Concurrency() != 100 || s.cfg.BatchSize != 50 {
		t.Fatalf("got concurrency %d and batch size %d, want the defaults 100 and 50", s.Concurrency(), s.cfg.BatchSize)
	}
	var src staticSource
	for i := range 230 {
		p := person(fmt.Sprintf("E%03d", i))
		p.Groups = []string{"staff"}
		src = append(src, p)
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "idsync.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	eng := dsync.New([]dsync.SourceSpec{{Name: "people", Source: src}},
		[]dsync.SinkSpec{{Name: "descope", Sink: s, Concurrency: s.Concurrency(), Safety: dsync.DefaultSafety}},
		store, dsync.Options{Safety: dsync.DefaultSafety}, log)

	rep, err := eng.Run(t.Context(), dsync.RunOptions{})
	if err != nil || rep.Summary.Result != dsync.ResultSuccess {
		t.Fatalf("first run: %v, %+v", err, rep.Summary)
	}
	sizes := batchSizes(t, srv)
	t.Logf("batches: %v", sizes)
	total := 0
	for _, n := range sizes {
		total += n
	}
	// Five batches at best; on a slow machine a batch may go before it is full, and a
	// last create that arrives alone goes alone.
	singles := srv.Requests()["user.create"]
	if total+singles != len(src) || len(sizes) > 7 || singles > 3 {
		t.Errorf("got batches of %v and %d single creates, want 230 users in batches, mostly full", sizes, singles)
	}
	snap, err := store.Snapshot("descope")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range src {
		u, ok := srv.User(p.Email)
		if e := snap[p.ID]; !ok || e.UserID != u.UserID || e.User == nil || len(u.RoleNames) != 1 {
			t.Fatalf("%s: snapshot %+v, server %+v", p.ID, e, u)
		}
	}

	before := srv.Total()
	rep, err = eng.Run(t.Context(), dsync.RunOptions{})
	if err != nil || len(rep.Plans) != 1 || !rep.Plans[0].Empty() {
		t.Fatalf("second run: %v, %+v", err, rep.Plans)
	}
	if n := srv.Total() - before; n != 0 {
		t.Errorf("the second run made %d requests", n)
	}

	gone := src[7]
	srv.Remove(gone.Email)
	drifts, err := eng.Verify(t.Context())
	if err != nil || len(drifts) != 1 || !drifts[0].Gone {
		t.Fatalf("verify: %v, %+v", err, drifts)
	}
	if _, err := eng.Run(t.Context(), dsync.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.User(gone.Email); !ok || len(srv.Users()) != len(src) {
		t.Errorf("the deleted account was not made again: %d users", len(srv.Users()))
	}
}
