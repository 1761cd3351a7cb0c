package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

// BenchmarkFirstSync is a first sync of IDSYNC_BENCH_N people (default 20,000) from
// CSV into the Haplo contract server with 2 ms of latency per request, through
// run(args) with --once: each iteration starts from an empty Haplo and no snapshot.
// bench/first-sync.sh runs it several times and prints the median.
func BenchmarkFirstSync(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("IDSYNC_BENCH_N")); err == nil {
		n = v
	}
	conc := 8
	if v, err := strconv.Atoi(os.Getenv("IDSYNC_BENCH_CONCURRENCY")); err == nil {
		conc = v
	}
	for range b.N {
		b.StopTimer()
		e := newEnv(b, n, "")
		cfg := strings.Replace(string(mustRead(b, e.config)), "concurrency: 8", fmt.Sprintf("concurrency: %d", conc), 1)
		os.WriteFile(e.config, []byte(cfg), 0o600)
		if os.Getenv("IDSYNC_BENCH_NOLATENCY") == "" {
			e.srv.SetLatency(2 * time.Millisecond)
		}
		b.StartTimer()
		start := time.Now()
		e.mustRun(exitOK, "--once")
		elapsed := time.Since(start)
		b.StopTimer()
		r := e.lastRun()
		if got := applied(r); got[dsync.CreateUser] != n {
			b.Fatalf("applied %v, want %d users", got, n)
		}
		reqs := totalRequests(e.srv)
		b.ReportMetric(float64(reqs)/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "people/s")
	}
}

func mustRead(tb testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
