package icure

import (
	"testing"

	"github.com/idsync/idsync/sinks/icure/icuretest"
	"github.com/idsync/idsync/sinks/sinktest"
)

// The iCure sink passes the conformance suite with both kinds of credentials. A
// soft-deleted user counts as gone, as it does for the sink.
func TestConformance(t *testing.T) {
	for _, mode := range []string{"basic", "token"} {
		t.Run(mode, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Target {
				s, srv, _ := newTestSink(t, icuretest.Options{}, func(c *Config) { c.Auth = mode })
				return sinktest.Target{
					Sink: s,
					Account: func(id string) (sinktest.Account, bool) {
						u, ok := srv.User(s.userID(id))
						if !ok || u.Deleted() {
							return sinktest.Account{}, false
						}
						return sinktest.Account{Email: u.Email, Active: u.Status == "ACTIVE"}, true
					},
					Requests: func() int {
						n := 0
						for _, c := range srv.Requests() {
							n += c
						}
						return n
					},
					FailNext:   srv.FailNext,
					SetLatency: srv.SetLatency,
					Remove:     func(id string) { srv.Remove(s.userID(id)) },
				}
			})
		})
	}
}
