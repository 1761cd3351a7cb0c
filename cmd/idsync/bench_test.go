package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

// BenchmarkFirstSync is a first sync of IDSYNC_BENCH_N people (default 20,000) from
// CSV into the Haplo contract server with 2 ms of latency per request, through
// run(args) with --once: each iteration starts from an empty Haplo and no snapshot.
// bench/first-sync.sh runs it several times and prints the median.
func BenchmarkFirstSync(b *testing.B) {
	n := envInt("IDSYNC_BENCH_N", 20000)
	conc := envInt("IDSYNC_BENCH_CONCURRENCY", 8)
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

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// buildBenchBinary builds this package's binary, without -race whatever the test
// binary has, into a temporary directory.
func buildBenchBinary(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "idsync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// usage is what a child process used.
type usage struct {
	wall  time.Duration
	cpu   time.Duration // user and system
	rssKB int64         // peak resident set size
	// floorKB is the measuring helper's own peak RSS, below which rssKB cannot go.
	floorKB int64
}

// measure runs cmd to its end, which must be exit 0, its output discarded, and returns
// its wall time, CPU time and peak RSS.
//
// It runs cmd through a helper process (TestBenchHelper, in a new process of this test
// binary), because the peak RSS that wait4 gives for a child of this process is not the
// child's own: Linux carries the old memory's high-water mark over an execve into the
// process's maxrss, and Go starts children with vfork, so the old memory is this
// process's, with its contract server and directory (a child that runs /bin/true
// reports this process's peak). The helper's memory is a test binary's that has just
// started, some 13 MB, which it reports too.
func measure(tb testing.TB, cmd *exec.Cmd) usage {
	tb.Helper()
	f, err := os.CreateTemp(tb.TempDir(), "usage")
	if err != nil {
		tb.Fatal(err)
	}
	f.Close()
	if out, err := runHelper(tb, helperTask{Argv: cmd.Args, Report: f.Name()}, cmd.Env, cmd.Dir); err != nil {
		tb.Fatalf("%s: %v\n%s", cmd.Path, err, out)
	}
	var r helperReport
	if err := json.Unmarshal(mustRead(tb, f.Name()), &r); err != nil {
		tb.Fatalf("%s: the helper's report: %v", cmd.Path, err)
	}
	return usage{wall: r.Wall, cpu: r.User + r.System, rssKB: r.MaxRSSKB, floorKB: r.HelperRSSKB}
}

// profileRun runs idsync with args once through run(args), under the CPU profiler,
// writing the profile to path. The run is in a helper process (TestBenchHelper), not in
// the benchmark's: there the garbage collector would also scan the benchmark's heap
// (its contract server, seeded with every person, and the directory), and the contract
// server's work would be mixed in.
func profileRun(tb testing.TB, path string, args ...string) {
	tb.Helper()
	if out, err := runHelper(tb, helperTask{Args: args, Profile: path}, nil, ""); err != nil {
		tb.Fatalf("the profiled run %v: %v\n%s", args, err, out)
	}
}

// benchHelperEnv holds a helperTask, in JSON, for TestBenchHelper.
const benchHelperEnv = "IDSYNC_BENCH_HELPER"

// helperTask is one job for TestBenchHelper: run Argv and write its usage to Report,
// or run idsync's run(Args) under the CPU profiler and write the profile to Profile.
type helperTask struct {
	Argv    []string `json:",omitempty"`
	Report  string   `json:",omitempty"`
	Args    []string `json:",omitempty"`
	Profile string   `json:",omitempty"`
}

// helperReport is what TestBenchHelper reports of the command it ran: its usage, and
// the helper's own memory's peak RSS when it started the command, which bounds the
// command's from below.
type helperReport struct {
	Wall, User, System    time.Duration
	MaxRSSKB, HelperRSSKB int64
}

// runHelper runs TestBenchHelper in a new process of this test binary, with env (nil
// for this process's) and dir, and returns its output.
func runHelper(tb testing.TB, task helperTask, env []string, dir string) ([]byte, error) {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	j, err := json.Marshal(task)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestBenchHelper$", "-test.count=1")
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(slices.Clip(env), benchHelperEnv+"="+string(j))
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.Bytes(), err
}

// TestBenchHelper is not a test: it is the helper process of measure and profileRun,
// and does nothing unless one of them started it.
func TestBenchHelper(t *testing.T) {
	v := os.Getenv(benchHelperEnv)
	if v == "" {
		t.Skip("the benchmarks' helper process; not a test")
	}
	var task helperTask
	if err := json.Unmarshal([]byte(v), &task); err != nil {
		t.Fatalf("%s=%q: %v", benchHelperEnv, v, err)
	}
	if task.Profile != "" {
		f, err := os.Create(task.Profile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		code := run(t.Context(), task.Args, io.Discard, &stderr)
		pprof.StopCPUProfile()
		if code != exitOK {
			t.Fatalf("idsync %v: exit %d\n%s", task.Args, code, stderr.Bytes())
		}
		return
	}

	if len(task.Argv) == 0 || task.Report == "" {
		t.Fatalf("%s=%q: nothing to run", benchHelperEnv, v)
	}
	helperRSS := highWaterKB()
	cmd := exec.Command(task.Argv[0], task.Argv[1:]...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, benchHelperEnv+"=") })
	cmd.Stderr = os.Stderr // the helper's output, which measure shows when this fails
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s: %v", task.Argv[0], err)
	}
	r := helperReport{Wall: wall, User: cmd.ProcessState.UserTime(), System: cmd.ProcessState.SystemTime(),
		MaxRSSKB: cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, HelperRSSKB: helperRSS}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(task.Report, j, 0o600); err != nil {
		t.Fatal(err)
	}
}

// highWaterKB is this process's memory's peak RSS (VmHWM; not getrusage's maxrss, which
// includes the starting process's), 0 where /proc does not say.
func highWaterKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}
