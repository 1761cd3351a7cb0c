package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/ldaptest"
	"github.com/idsync/idsync/sinks/haplo"
	"github.com/idsync/idsync/sources/ldap"
	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

// BenchmarkLDAPNoop measures a no-op run (the snapshot already agrees with the
// directory) over IDSYNC_BENCH_LDAP_N entries (default 100,000) in a loopback slapd,
// next to ldapsearch -E pr=500/noprompt reading the same entries and attributes from
// the same server, one after the other, IDSYNC_BENCH_RUNS times each (default 5). Both
// run as child processes, so that wall time and peak RSS are theirs alone. It reports
// the medians. bench/ldap-noop.sh runs it.
func BenchmarkLDAPNoop(b *testing.B) {
	n, runs := envInt("IDSYNC_BENCH_LDAP_N", 100000), envInt("IDSYNC_BENCH_RUNS", 5)
	bin := filepath.Join(b.TempDir(), "idsync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	e, dir := newLDAPEnv(b, ldaptest.People(n), 16)
	seedSnapshot(b, e)

	attrs := []string{"entryUUID", "uid", "mail", "givenName", "sn", "cn", "title", "memberOf", "pwdAccountLockedTime"}
	ldapsearch := append([]string{"-x", "-LLL", "-H", dir.URL, "-ZZ", "-D", dir.ServiceDN, "-w", dir.ServicePassword,
		"-b", "ou=people," + dir.Suffix, "-E", "pr=500/noprompt", "(objectClass=inetOrgPerson)"}, attrs...)
	if path := os.Getenv("IDSYNC_BENCH_CPUPROFILE"); path != "" {
		// One more no-op run, in this process, under the CPU profiler.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		e.mustRun(exitOK, "--once", "--log-level", "debug")
		pprof.StopCPUProfile()
		f.Close()
	}
	for range b.N {
		var idsyncWall, ldapWall []time.Duration
		var idsyncRSS, ldapRSS []int64
		for range runs {
			w, rss := measure(b, exec.Command(bin, "--once", "--config", e.config), nil)
			idsyncWall, idsyncRSS = append(idsyncWall, w), append(idsyncRSS, rss)
			if r := e.lastRun(); len(r.Sinks[0].Applied) != 0 || r.Identities != n {
				b.Fatalf("the no-op run applied %v to %d identities, want nothing to %d", r.Sinks[0].Applied, r.Identities, n)
			}
			cmd := exec.Command("ldapsearch", ldapsearch...)
			cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+dir.CAFile)
			w, rss = measure(b, cmd, nil)
			ldapWall, ldapRSS = append(ldapWall, w), append(ldapRSS, rss)
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

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// measure runs cmd to its end, which must be exit 0, and returns its wall time and
// peak RSS in kB.
func measure(tb testing.TB, cmd *exec.Cmd, stdout io.Writer) (time.Duration, int64) {
	tb.Helper()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		tb.Fatalf("%s: %v\n%s", cmd.Path, err, stderr.Bytes())
	}
	return wall, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
}

func median[T int64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// seedSnapshot writes the snapshot a first sync would leave: every identity the
// directory gives, as applied to its account and profile. A real first sync of 100,000
// people would take minutes of contract-server time and measure nothing a no-op run
// does.
func seedSnapshot(tb testing.TB, e *env) {
	tb.Helper()
	cfg, err := LoadConfig(e.config)
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	src, err := ldap.New("directory", *cfg.Sources[0].LDAP, log)
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := src.Read(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	sink, err := haplo.New(*cfg.Sinks[0].Haplo, nil, nil, log)
	if err != nil {
		tb.Fatal(err)
	}
	schema := sink.Schema()
	st, err := state.Open(cfg.StatePath, state.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	work := make(chan dsync.Identity)
	var wg gosync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for id := range work {
				u, p := dsync.Project(id, schema.User), dsync.Project(id, schema.Profile)
				e := dsync.Entry{ID: id.ID, UserID: "1", ProfileRef: "80000", User: &u, Profile: &p}
				if err := st.Put("haplo", e); err != nil {
					panic(fmt.Sprint("seed: ", err))
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	// A successful run of that size, for min_source_ratio.
	if err := st.RecordRun(dsync.RunSummary{Result: dsync.ResultSuccess, Identities: len(ids)}); err != nil {
		tb.Fatal(err)
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
}
