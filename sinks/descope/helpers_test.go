package descope

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/sinks/descope/descopetest"
	dsync "github.com/idsync/idsync/sync"
)

// newSink returns a sink for srv with limits high enough not to slow a test, three
// retries and no real sleeps between them.
func newSink(t *testing.T, srv *descopetest.Server, edit func(*Config)) *Sink {
	t.Helper()
	retries := 3
	cfg := Config{URL: srv.URL, ProjectID: srv.ProjectID(), ManagementKey: srv.ManagementKey(),
		CreateRateLimit: 10000, Settings: httpapi.Settings{MaxRetries: &retries, RateLimit: 10000, Burst: 100}}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, nil, nil, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	s.setSleep(func(context.Context, time.Duration) error { return nil })
	return s
}

// setSleep replaces the wait before a retry, for every client of the sink.
func (s *Sink) setSleep(f func(context.Context, time.Duration) error) {
	s.api.Sleep = f
	s.creates.Sleep = f
}

func person(id string) dsync.Identity {
	return dsync.Identity{ID: id, Username: "user-" + id, Email: "user-" + id + "@example.org",
		FirstName: "Ann", LastName: "Lee " + id, DisplayName: "Ann Lee " + id, Active: true}
}

func mustApply(t *testing.T, s *Sink, op dsync.Op) dsync.Outcome {
	t.Helper()
	out, err := s.Apply(t.Context(), op)
	if err != nil {
		t.Fatalf("%s: %v", op.Kind, err)
	}
	return out
}

// mustCreate creates want and returns its userId.
func mustCreate(t *testing.T, s *Sink, want dsync.Identity) string {
	t.Helper()
	out := mustApply(t, s, dsync.Op{Kind: dsync.CreateUser, ID: want.ID, Want: want})
	if out.UserID == "" {
		t.Fatalf("create %s: no userId", want.ID)
	}
	return out.UserID
}

// update applies an update from have to want of the fields that differ.
func update(t *testing.T, s *Sink, userID string, have, want dsync.Identity) (dsync.Outcome, error) {
	t.Helper()
	h := dsync.Project(have, s.Schema().User)
	op := dsync.Op{Kind: dsync.UpdateUser, ID: want.ID, Want: want, Have: &h, UserID: userID,
		Fields: dsync.Changed(&have, &want, s.Schema().User)}
	return s.Apply(t.Context(), op)
}
