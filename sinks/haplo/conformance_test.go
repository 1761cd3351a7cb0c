package haplo

import (
	"testing"
	"time"

	"github.com/idsync/idsync/sinks/haplo/haplotest"
	"github.com/idsync/idsync/sinks/sinktest"
)

// The Haplo sink passes the conformance suite every sink passes, with profile codes on
// (so that every request, a new profile's push included, is safe to retry). Haplo's
// API cannot delete an account, and neither can an administrator make one vanish (a
// deleted user still answers by id), so the not-found case is skipped by the suite.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Target {
		s, srv, _ := newTestSinkOpt(t, haplotest.Options{PersonHasBehaviour: true}, func(c *Config) { c.ProfileCodes = true })
		return sinktest.Target{
			Sink: s,
			Account: func(id string) (sinktest.Account, bool) {
				for _, u := range srv.Users() {
					if u.Tags["idsync_id"] == id {
						return sinktest.Account{Email: u.Email, Active: !u.Blocked}, true
					}
				}
				return sinktest.Account{}, false
			},
			Requests: func() int {
				n := 0
				for _, c := range srv.Requests() {
					n += c
				}
				return n
			},
			FailNext:   srv.FailNext,
			SetLatency: func(d time.Duration) { srv.SetLatency(d) },
		}
	})
}
