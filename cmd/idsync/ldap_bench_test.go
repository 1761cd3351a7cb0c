package main

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/ldaptest"
	dsync "github.com/idsync/idsync/sync"
)

// BenchmarkLDAPNoop measures a no-op run (the snapshot already agrees with the
// directory) over IDSYNC_BENCH_LDAP_N entries (default 100,000) in a loopback slapd,
// next to ldapsearch -E pr=500/noprompt reading the same entries and attributes from
// the same server, one after the other, IDSYNC_BENCH_RUNS times each (default 5). Both
// run as child processes (see measure), so that wall time and peak RSS are theirs
// alone. It reports the medians. bench/ldap-noop.sh runs it; BenchmarkScale measures the
// same with IDSYNC_BENCH_SOURCE=ldap IDSYNC_BENCH_SCENARIO=noop.
func BenchmarkLDAPNoop(b *testing.B) {
	n, runs := envInt("IDSYNC_BENCH_LDAP_N", 100000), envInt("IDSYNC_BENCH_RUNS", 5)
	bin := buildBenchBinary(b)
	e, dir := newLDAPEnv(b, ldaptest.People(n), 16)
	seedSnapshot(b, e)

	if path := os.Getenv("IDSYNC_BENCH_CPUPROFILE"); path != "" {
		// One more no-op run, under the CPU profiler.
		profileRun(b, path, "--config", e.config, "--once", "--log-level", "debug")
	}
	for range b.N {
		var idsyncWall, ldapWall []time.Duration
		var idsyncRSS, ldapRSS []int64
		for range runs {
			u := measure(b, exec.Command(bin, "--once", "--config", e.config))
			idsyncWall, idsyncRSS = append(idsyncWall, u.wall), append(idsyncRSS, u.rssKB)
			if r := e.lastRun(); len(r.Sinks[0].Applied) != 0 || r.Identities != n {
				b.Fatalf("the no-op run applied %v to %d identities, want nothing to %d", r.Sinks[0].Applied, r.Identities, n)
			}
			u = measure(b, ldapsearchCmd(dir))
			ldapWall, ldapRSS = append(ldapWall, u.wall), append(ldapRSS, u.rssKB)
		}
		iw, lw := median(idsyncWall), median(ldapWall)
		b.ReportMetric(iw.Seconds(), "idsync-s")
		b.ReportMetric(lw.Seconds(), "ldapsearch-s")
		b.ReportMetric(iw.Seconds()/lw.Seconds(), "ratio")
		b.ReportMetric(float64(median(idsyncRSS))/1024, "idsync-MB")
		b.ReportMetric(float64(median(ldapRSS))/1024, "ldapsearch-MB")
		b.Logf("idsync: %v; ldapsearch: %v; peak RSS kB idsync %v, ldapsearch %v", idsyncWall, ldapWall, idsyncRSS, ldapRSS)
	}
}

// ldapsearchCmd is ldapsearch -E pr=500/noprompt reading what newLDAPEnv's and
// BenchmarkScale's configurations read (the same entries and attributes, over
// StartTLS as the service account), its output to be discarded.
func ldapsearchCmd(dir *ldaptest.Server) *exec.Cmd {
	attrs := []string{"entryUUID", "uid", "mail", "givenName", "sn", "cn", "title", "memberOf", "pwdAccountLockedTime"}
	args := append([]string{"-x", "-LLL", "-H", dir.URL, "-ZZ", "-D", dir.ServiceDN, "-w", dir.ServicePassword,
		"-b", "ou=people," + dir.Suffix, "-E", "pr=500/noprompt", "(objectClass=inetOrgPerson)"}, attrs...)
	cmd := exec.Command("ldapsearch", args...)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+dir.CAFile)
	return cmd
}

// seedSnapshot writes the snapshot a first sync would leave: every identity the
// directory gives, as applied to its account and profile. A real first sync of 100,000
// people would take minutes of contract-server time and measure nothing a no-op run
// does. The accounts and profiles are not in Haplo, and all have the same made-up ids:
// enough for runs that send nothing (BenchmarkScale seeds Haplo too, for runs that do).
func seedSnapshot(tb testing.TB, e *env) {
	tb.Helper()
	cfg, err := LoadConfig(e.config)
	if err != nil {
		tb.Fatal(err)
	}
	ids, schema := readSource(tb, e.config)
	writeSnapshot(tb, cfg.StatePath, schema, ids, func(i int) dsync.Entry {
		return dsync.Entry{ID: ids[i].ID, UserID: "1", ProfileRef: "80000"}
	})
}
