package ldap

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/idsync/idsync/internal/ldaptest"
)

// The benchmarks read IDSYNC_BENCH_LDAP_N people (default 20,000) from a loopback
// slapd over StartTLS, three ways: the source (BenchmarkRead), go-ldap alone with the
// same paged search and no mapping (BenchmarkGoLDAP: the library's floor), and
// ldapsearch (BenchmarkLdapsearch: the directory's own read speed).
//
//	IDSYNC_BENCH_LDAP_N=100000 go test -run='^$' -bench=. -benchmem ./sources/ldap/

type benchDir struct {
	srv   *ldaptest.Server
	n     int
	cfg   Config
	attrs []string
	// cpu is the CPU time used when the timer was reset: this process's, or its
	// children's for ldapsearch.
	cpu      time.Duration
	children bool
}

func startBenchDir(b *testing.B) *benchDir {
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
	d := &benchDir{srv: srv, n: n, cfg: cfg}
	c := cfg
	c.setDefaults()
	d.attrs = newMapper(&c, "dir").attributes()
	return d
}

// start resets the timer and the CPU clock: children says whose CPU time counts, the
// ldapsearch processes' or this process's (slapd's is in neither: it is reaped only
// when the benchmark ends).
func (d *benchDir) start(b *testing.B, children bool) {
	d.children = children
	d.cpu = cpuTime(children)
	b.ResetTimer()
}

// report adds entries/s and cpu-ms/op, the client's CPU time (user and system) per
// read of all n entries: on a shared machine, a steadier figure than ns/op.
func (d *benchDir) report(b *testing.B) {
	b.ReportMetric(float64(d.n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(cpuTime(d.children)-d.cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func BenchmarkRead(b *testing.B) {
	d := startBenchDir(b)
	src, err := New("dir", d.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	d.start(b, false)
	for range b.N {
		ids, err := src.Read(b.Context())
		if err != nil || len(ids) != d.n {
			b.Fatalf("read %d identities (%v), want %d", len(ids), err, d.n)
		}
	}
	d.report(b)
}

func BenchmarkGoLDAP(b *testing.B) {
	d := startBenchDir(b)
	pem, err := os.ReadFile(d.srv.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d.start(b, false)
	for range b.N {
		conn, err := ldap.DialURL(d.srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		if err := conn.StartTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
			b.Fatal(err)
		}
		if err := conn.Bind(d.srv.ServiceDN, d.srv.ServicePassword); err != nil {
			b.Fatal(err)
		}
		req := ldap.NewSearchRequest(d.cfg.Searches[0].BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			d.cfg.Searches[0].Filter, d.attrs, nil)
		res, err := conn.SearchWithPaging(req, 500)
		if err != nil || len(res.Entries) != d.n {
			b.Fatalf("go-ldap read %d entries (%v), want %d", len(res.Entries), err, d.n)
		}
		conn.Close()
	}
	d.report(b)
}

func BenchmarkLdapsearch(b *testing.B) {
	d := startBenchDir(b)
	args := append([]string{"-x", "-LLL", "-H", d.srv.URL, "-ZZ", "-D", d.srv.ServiceDN, "-w", d.srv.ServicePassword,
		"-b", d.cfg.Searches[0].BaseDN, "-E", "pr=500/noprompt", d.cfg.Searches[0].Filter}, d.attrs...)
	d.start(b, true)
	for range b.N {
		cmd := exec.Command("ldapsearch", args...)
		cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+d.srv.CAFile)
		if out, err := cmd.Output(); err != nil || len(out) == 0 {
			b.Fatalf("ldapsearch: %v", err)
		}
	}
	d.report(b)
}
