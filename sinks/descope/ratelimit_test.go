package descope

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/sinks/descope/descopetest"
	dsync "github.com/idsync/idsync/sync"
)

// fakeClock is the server's clock, advanced by the sink's waits before a retry.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	return nil
}

// A create over Descope's create budget is answered 429 with Retry-After; the sink
// waits that long and tries again.
func TestRetryAfterHonoured(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	srv := descopetest.Start(t, descopetest.Options{CreateLimit: 2, Window: time.Minute, Now: clock.Now})
	s := newSink(t, srv, func(c *Config) { f := false; c.BatchCreate = &f })
	s.setSleep(clock.Sleep)
	for _, p := range people("T", 3) {
		mustCreate(t, s, p)
	}
	if !slices.Equal(clock.slept, []time.Duration{time.Minute}) {
		t.Errorf("got waits %v, want one of 1m (the Retry-After)", clock.slept)
	}
	if n := srv.Requests()["user.create"]; n != 4 {
		t.Errorf("got %d create requests, want 4", n)
	}
	if n := len(srv.Users()); n != 3 {
		t.Errorf("got %d users, want 3", n)
	}
}

// Throttled beyond the retries, the sink stops for the run.
func TestThrottledStops(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	srv := descopetest.Start(t, descopetest.Options{UserLimit: 1, Now: clock.Now})
	s := newSink(t, srv, nil) // its sleeps do not move the clock: the window never ends
	p := person("T9")
	id := mustCreate(t, s, p)
	p.Active = false
	_, err := s.Apply(t.Context(), dsync.Op{Kind: dsync.DisableUser, ID: p.ID, Want: p, UserID: id})
	if !errors.Is(err, dsync.ErrStopSink) {
		t.Fatalf("got %v, want ErrStopSink", err)
	}
	if n := srv.Requests()["user.status"]; n != 4 {
		t.Errorf("got %d status requests, want 4 (1 + 3 retries)", n)
	}
}

// The default limits stay within Descope's documented budgets in any 60 s: a token
// bucket lets through at most burst + rate × 60 s.
func TestDefaultLimitsWithinBudget(t *testing.T) {
	cfg := Config{ProjectID: "P1", ManagementKey: "k"}
	cfg.setDefaults()
	if n := float64(cfg.Burst) + cfg.RateLimit*60; n > descopetest.DocumentedUserLimit {
		t.Errorf("the general limit lets %v requests through in 60 s, over %d", n, descopetest.DocumentedUserLimit)
	}
	if n := createBurst + cfg.CreateRateLimit*60; n > descopetest.DocumentedCreateLimit {
		t.Errorf("the create limit lets %v creates through in 60 s, over %d", n, descopetest.DocumentedCreateLimit)
	}
	if cfg.Concurrency != 2*defaultBatchSize || cfg.BatchSize != defaultBatchSize || cfg.BatchWait != defaultBatchWait {
		t.Errorf("got concurrency %d, batch %d, wait %v", cfg.Concurrency, cfg.BatchSize, cfg.BatchWait)
	}
}

// Scaled down to a window of 100 ms, the two limiters keep a burst of concurrent
// creates within both of the server's budgets: not one 429.
func TestLimitsKeepWithinBudget(t *testing.T) {
	const (
		window     = 100 * time.Millisecond
		rateLimit  = 200.0 // per second, burst 5
		createRate = 100.0 // per second, burst createBurst
	)
	userBudget := 5 + int(rateLimit*window.Seconds()) + 2 // slack for the time between limiter and server
	createBudget := createBurst + int(createRate*window.Seconds()) + 2
	srv := descopetest.Start(t, descopetest.Options{UserLimit: userBudget, CreateLimit: createBudget, Window: window})
	zero := 0
	s := newSink(t, srv, func(c *Config) {
		f := false
		c.BatchCreate, c.CreateRateLimit = &f, createRate
		c.Settings = httpapi.Settings{MaxRetries: &zero, RateLimit: rateLimit, Burst: 5}
	})
	ps := people("S", 40)
	res := createAll(t.Context(), s, ps)
	for id, r := range res {
		if r.err != nil {
			t.Errorf("%s: %v", id, r.err)
		}
	}
	if n := len(srv.Users()); n != len(ps) {
		t.Errorf("got %d users, want %d", n, len(ps))
	}
}
