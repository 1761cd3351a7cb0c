package descope

import (
	"testing"

	"github.com/idsync/idsync/sinks/descope/descopetest"
	"github.com/idsync/idsync/sinks/sinktest"
)

// The Descope sink passes the conformance suite in three shapes: the defaults
// (loginId = email, batch create) with an id attribute to find the accounts by; the
// anchor as loginId; and the username as loginId with every create sent alone.
func TestConformance(t *testing.T) {
	type shape struct {
		name string
		edit func(*Config)
		// find returns the user the server holds for identity id.
		find func(srv *descopetest.Server, id string) (descopetest.User, bool)
	}
	shapes := []shape{
		{"defaults with id_attribute", func(c *Config) { c.IDAttribute = "idsyncId" },
			func(srv *descopetest.Server, id string) (descopetest.User, bool) {
				for _, u := range srv.Users() {
					if u.CustomAttributes["idsyncId"] == id {
						return u, true
					}
				}
				return descopetest.User{}, false
			}},
		{"login_id id", func(c *Config) { c.LoginID = "id" },
			func(srv *descopetest.Server, id string) (descopetest.User, bool) { return srv.User(id) }},
		{"login_id username without batches", func(c *Config) { c.LoginID = "username"; f := false; c.BatchCreate = &f },
			func(srv *descopetest.Server, id string) (descopetest.User, bool) {
				return srv.User(sinktest.Person(id).Username)
			}},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Target {
				srv := descopetest.Start(t, descopetest.Options{})
				return sinktest.Target{
					Sink: newSink(t, srv, sh.edit),
					Account: func(id string) (sinktest.Account, bool) {
						u, ok := sh.find(srv, id)
						return sinktest.Account{Email: u.Email, Active: u.Status != "disabled"}, ok
					},
					Requests:   srv.Total,
					FailNext:   srv.FailNext,
					SetLatency: srv.SetLatency,
					Remove: func(id string) {
						u, ok := sh.find(srv, id)
						if !ok || !srv.Remove(u.UserID) {
							t.Fatalf("no user for %s to remove", id)
						}
					},
				}
			})
		})
	}
}
