package domo

import (
	"context"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/idsync/idsync/sinks/domo/domotest"
	"github.com/idsync/idsync/sinks/sinktest"
	dsync "github.com/idsync/idsync/sync"
)

// noAccess is the custom role the conformance run disables people with.
const noAccess = 77

// recorder keeps the user id the sink gave each identity, as the snapshot does: Domo
// holds no id of idsync's, so this is how the suite finds an identity's account.
type recorder struct {
	*Sink
	mu  gosync.Mutex
	ids map[string]int64
}

func (r *recorder) Apply(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	out, err := r.Sink.Apply(ctx, op)
	if err == nil && out.UserID != "" {
		n, _ := strconv.ParseInt(out.UserID, 10, 64)
		r.mu.Lock()
		r.ids[op.ID] = n
		r.mu.Unlock()
	}
	return out, err
}

func (r *recorder) user(srv *domotest.Server, id string) (domotest.User, bool) {
	r.mu.Lock()
	n := r.ids[id]
	r.mu.Unlock()
	u, ok := srv.User(n)
	return u, ok && !u.Deleted
}

// The Domo sink passes the suite with disable_action role (the only one under which
// a Domo account can be told disabled), a custom role without rights as the disabled
// role, and every request refused or failed at least once along the way.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Target {
		e := newEnv(t, domotest.Options{CustomRoles: map[int64]string{noAccess: "No access"}}, func(c *Config) {
			c.DisableAction, c.DisabledRole = "role", strconv.Itoa(noAccess)
		})
		r := &recorder{Sink: e.sink, ids: map[string]int64{}}
		return sinktest.Target{
			Sink: r,
			Account: func(id string) (sinktest.Account, bool) {
				u, ok := r.user(e.srv, id)
				return sinktest.Account{Email: u.Email, Active: u.RoleID != noAccess}, ok
			},
			Requests:   e.srv.Total,
			FailNext:   e.srv.FailNext,
			SetLatency: func(d time.Duration) { e.srv.SetLatency(d) },
			Remove: func(id string) {
				if u, ok := r.user(e.srv, id); !ok || !e.srv.Remove(u.Email) {
					t.Fatalf("no account for %s to remove", id)
				}
			},
		}
	})
}
