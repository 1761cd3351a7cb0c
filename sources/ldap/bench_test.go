package ldap

import (
	"log/slog"
	"os"
	"strconv"
	"testing"

	"github.com/idsync/idsync/internal/ldaptest"
)

// BenchmarkRead is one whole read of IDSYNC_BENCH_LDAP_N people (default 20,000)
// from a loopback slapd over StartTLS, with the mapping the end-to-end tests use: the
// source alone, without the snapshot and the plan.
//
//	IDSYNC_BENCH_LDAP_N=100000 go test -run='^$' -bench=Read -benchmem ./sources/ldap/
func BenchmarkRead(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("IDSYNC_BENCH_LDAP_N")); err == nil {
		n = v
	}
	srv := ldaptest.Start(b, ldaptest.Options{People: ldaptest.People(n), TLS: true,
		Overlays: []string{ldaptest.OverlayMemberOf, ldaptest.OverlayPPolicy}})
	cfg := Config{URL: srv.URL, StartTLS: true, CAFile: srv.CAFile, BindDN: srv.ServiceDN, BindPassword: srv.ServicePassword,
		PageSize:          500,
		Searches:          []Search{{BaseDN: "ou=people," + srv.Suffix, Filter: "(objectClass=inetOrgPerson)"}},
		ProfileAttributes: map[string]string{"job_title": "title"},
		Groups:            Groups{MemberOf: "memberOf"},
		Active:            Active{From: "ppolicy"},
	}
	src, err := New("dir", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		ids, err := src.Read(b.Context())
		if err != nil || len(ids) != n {
			b.Fatalf("read %d identities (%v), want %d", len(ids), err, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
