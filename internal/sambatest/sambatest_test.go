package sambatest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The DC starts, takes 1,500 users in one load, serves them to the service account over
// LDAPS, and is gone, every process of it, once stopped.
func TestServer(t *testing.T) {
	s := Start(t)

	t0 := time.Now()
	s.AddOUs(t, "OU=Staff")
	users := Users(1500)
	users[0].Container = "OU=Staff"
	s.AddUsers(t, users)
	s.AddGroups(t, []Group{{Name: "team", Members: []string{users[0].DN(), users[1].DN()}}})
	t.Logf("1,500 users loaded in %v", time.Since(t0).Round(time.Millisecond))

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	c, err := ldap.DialURL(s.URL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.ServiceDN, s.ServicePassword); err != nil {
		t.Fatalf("service account bind: %v", err)
	}
	res, err := c.SearchWithPaging(ldap.NewSearchRequest("CN=Users,"+s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=user)(sAMAccountName=u*))", []string{"sAMAccountName", "userAccountControl", "memberOf"}, nil), 500)
	if err != nil {
		t.Fatal(err)
	}
	disabled := 0
	for _, e := range res.Entries {
		if e.GetAttributeValue("userAccountControl") == "514" || e.GetAttributeValue("userAccountControl") == "546" {
			disabled++
		}
	}
	if len(res.Entries) != 1499 || disabled != 150 {
		t.Errorf("CN=Users holds %d users, %d disabled; want 1499 and 150", len(res.Entries), disabled)
	}

	guid := s.GUID(t, users[0].Name)
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(guid) {
		t.Errorf("samba-tool's GUID %q", guid)
	}

	s.Stop()
	if err := syscall.Kill(-s.proc.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("samba's process group after Stop: %v, want ESRCH (no process left)", err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:636", time.Second); err == nil {
		c.Close()
		t.Error("port 636 still answers after Stop")
	}
}
