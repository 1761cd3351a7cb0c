package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/ldaptest"
	"github.com/idsync/idsync/sinks/haplo"
	"github.com/idsync/idsync/sinks/haplo/haplotest"
	"github.com/idsync/idsync/sources/ldap"
	"github.com/idsync/idsync/state"
	dsync "github.com/idsync/idsync/sync"
)

// BenchmarkScale is issue 8's measurement: one source, size and scenario per process,
// chosen by the environment, each measured run being the idsync binary as a child
// process (so that its wall time, CPU time and peak RSS are its own) against the Haplo
// contract server, in this process, with latency added to every request.
// bench/run.sh loops over sources, sizes and scenarios and prints a table of medians.
//
//	IDSYNC_BENCH_SOURCE          csv or ldap; unset, the benchmark is skipped
//	IDSYNC_BENCH_N               people in the directory (default 10000)
//	IDSYNC_BENCH_SCENARIO        first, noop, changed, left or delta (default noop)
//	IDSYNC_BENCH_RUNS            measured runs (default 3)
//	IDSYNC_BENCH_LATENCY         added to every request by the contract server (default 2ms)
//	IDSYNC_BENCH_CONCURRENCY     the Haplo sink's concurrency (default 16)
//	IDSYNC_BENCH_BIN             the idsync binary; when unset it is built here, without -race
//	IDSYNC_BENCH_FULL_READ       when set, runs are given --full-read (delta's comparison)
//	IDSYNC_BENCH_CPUPROFILE_DIR  when set, one more run, under the CPU profiler, before the
//	                             measured ones: <scenario>-<source>-<N>.pprof (see profileRun)
//
// The scenarios (k is 1% of N):
//
//   - first: no snapshot and an empty Haplo; N profiles and N accounts are created, three
//     requests a person (a look-up by username, the profile push, the account creation).
//   - noop: the snapshot and Haplo as a first sync leaves them; nothing is applied and no
//     request is made. For LDAP, ldapsearch -E pr=500/noprompt reads the same entries and
//     attributes after each idsync run, and the ratio of the medians is reported.
//   - changed: as noop, but k people have a new last name in the source: k update_user
//     and k update_profile, one request each, and nothing else.
//   - left: as noop, but k people are gone from the source: k disable_user, two requests
//     each (block the account, push the profile as past), and nothing else.
//   - delta (LDAP only): incremental reads, the last read's mark in the state file, and
//     one person in a thousand with a new last name since: an incremental run reads and
//     updates those alone. With IDSYNC_BENCH_FULL_READ, the same run reading everyone.
//
// The state a first sync leaves is seeded rather than made by a real first sync:
// Haplo's accounts and profiles through haplotest's AddUser and AddProfile, and the
// snapshot with their ids, written straight into a state file. Every measured run gets
// a fresh contract server and a fresh copy of that state file, so each one sees the
// same 1%. Run it with -benchtime=1x: each iteration does every run again.
func BenchmarkScale(b *testing.B) {
	if os.Getenv("IDSYNC_BENCH_SOURCE") == "" {
		b.Skip("set IDSYNC_BENCH_SOURCE=csv or ldap to run it (bench/run.sh does)")
	}
	s := newScaleBench(b)
	s.setUp()
	if dir := os.Getenv("IDSYNC_BENCH_CPUPROFILE_DIR"); dir != "" {
		s.profile(filepath.Join(dir, fmt.Sprintf("%s-%s-%d.pprof", s.scenario, s.source, s.n)))
	}
	for range b.N {
		var results []scaleResult
		var ldapsearch []usage
		for i := range s.runs {
			r := s.measureRun(i)
			results = append(results, r)
			b.Logf("run %d/%d: %s", i+1, s.runs, r)
			if s.source == "ldap" && s.scenario == "noop" {
				u := measure(b, ldapsearchCmd(s.ldap))
				ldapsearch = append(ldapsearch, u)
				b.Logf("run %d/%d: ldapsearch %.3f s, cpu %.3f s, %d MB peak RSS (measuring helper %d MB)", i+1, s.runs, u.wall.Seconds(), u.cpu.Seconds(), u.rssKB/1024, u.floorKB/1024)
			}
		}
		s.report(results, ldapsearch)
	}
}

// scaleBench is one source, size and scenario, with its directory set up.
type scaleBench struct {
	b                *testing.B
	source, scenario string
	n, runs, conc    int
	latency          time.Duration
	bin, dir         string

	// The directory: a CSV file, or a slapd loaded with people.
	rows    []row
	csvPath string
	ldap    *ldaptest.Server
	people  []ldaptest.Person

	affected int              // k: the people the scenario changes or removes
	before   []dsync.Identity // the directory as the seeded first sync read it
	schema   dsync.Schema     // the Haplo sink's

	// template is the state file a first sync leaves, with entries holding the ids of
	// the accounts and profiles that seedHaplo makes, in its order.
	template string
	entries  []dsync.Entry
	// mark is the delta scenario's: the last incremental read's, kept in the template.
	mark json.RawMessage
}

var scaleScenarios = []string{"first", "noop", "changed", "left", "delta"}

// newScaleBench reads the environment.
func newScaleBench(b *testing.B) *scaleBench {
	b.Helper()
	source := os.Getenv("IDSYNC_BENCH_SOURCE")
	s := &scaleBench{
		b: b, source: source,
		scenario: cmp.Or(os.Getenv("IDSYNC_BENCH_SCENARIO"), "noop"),
		n:        envInt("IDSYNC_BENCH_N", 10000),
		runs:     envInt("IDSYNC_BENCH_RUNS", 3),
		conc:     envInt("IDSYNC_BENCH_CONCURRENCY", 16),
		latency:  2 * time.Millisecond,
		bin:      os.Getenv("IDSYNC_BENCH_BIN"),
		dir:      b.TempDir(),
	}
	if v := os.Getenv("IDSYNC_BENCH_LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("IDSYNC_BENCH_LATENCY: %v", err)
		}
		s.latency = d
	}
	if source != "csv" && source != "ldap" {
		b.Fatalf("IDSYNC_BENCH_SOURCE=%q: csv or ldap", source)
	}
	if !slices.Contains(scaleScenarios, s.scenario) {
		b.Fatalf("IDSYNC_BENCH_SCENARIO=%q: one of %v", s.scenario, scaleScenarios)
	}
	if s.n < 100 || s.runs < 1 || s.conc < 1 {
		b.Fatalf("IDSYNC_BENCH_N=%d, IDSYNC_BENCH_RUNS=%d, IDSYNC_BENCH_CONCURRENCY=%d: want at least 100, 1 and 1", s.n, s.runs, s.conc)
	}
	s.affected = s.n / 100
	if s.scenario == "delta" {
		if source != "ldap" {
			b.Fatal("IDSYNC_BENCH_SCENARIO=delta reads LDAP incrementally: IDSYNC_BENCH_SOURCE=ldap")
		}
		s.affected = max(s.n/1000, 1)
	}
	return s
}

// seeded reports whether runs start from the state a first sync leaves.
func (s *scaleBench) seeded() bool { return s.scenario != "first" }

// setUp builds idsync, stands up the directory, reads it as the seeded first sync
// would have, and then makes the scenario's change to it.
func (s *scaleBench) setUp() {
	b := s.b
	if s.bin == "" {
		s.bin = buildBenchBinary(b)
	}
	switch s.source {
	case "csv":
		s.csvPath = filepath.Join(s.dir, "people.csv")
		s.rows = genRows(s.n)
		writeRows(b, s.csvPath, s.rows)
	case "ldap":
		s.people = ldaptest.People(s.n)
		s.ldap = ldaptest.Start(b, ldaptest.Options{People: s.people, TLS: true,
			Overlays: []string{ldaptest.OverlayMemberOf, ldaptest.OverlayPPolicy}})
	}
	readConfig := filepath.Join(s.dir, "read.yaml")
	// Nothing is sent to the sink: the configuration is only built, and its source read.
	if err := os.WriteFile(readConfig, []byte(s.config("http://127.0.0.1:9", "read.db")), 0o600); err != nil {
		b.Fatal(err)
	}
	if s.seeded() {
		s.before, s.schema = readSource(b, readConfig)
		if len(s.before) != s.n {
			b.Fatalf("the source gave %d valid identities, want %d", len(s.before), s.n)
		}
	}

	switch {
	case s.scenario == "changed" && s.source == "csv":
		for i := 0; i < s.n; i += 100 {
			s.rows[i].last = "Changed" + strconv.Itoa(i)
		}
		writeRows(b, s.csvPath, s.rows)
	case s.scenario == "left" && s.source == "csv":
		var stay []row
		for i, r := range s.rows {
			if i%100 != 0 {
				stay = append(stay, r)
			}
		}
		s.rows = stay
		writeRows(b, s.csvPath, s.rows)
	case s.scenario == "changed" && s.source == "ldap":
		s.modifyEvery100th(func(dn string, i int) string {
			return fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: sn\nsn: Changed%d\n", dn, i)
		})
	case s.scenario == "left" && s.source == "ldap":
		s.modifyEvery100th(func(dn string, _ int) string { return fmt.Sprintf("dn: %s\nchangetype: delete\n", dn) })
	case s.scenario == "delta":
		s.mark = deltaMark(b, readConfig)
		time.Sleep(2 * time.Second) // the changes are past the mark's second
		s.modifyEvery(1000, func(dn string, i int) string {
			return fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: sn\nsn: Changed%d\n", dn, i)
		})
	}
}

// deltaMark is the mark of a full incremental read of the directory, as if it had
// been made now: the entries slapadd loaded moments ago are older than it, as they
// would be in a directory loaded long before (the mark's overlap would otherwise take
// them all in again).
func deltaMark(b *testing.B, config string) json.RawMessage {
	cfg, err := LoadConfig(config)
	if err != nil {
		b.Fatal(err)
	}
	src, err := ldap.New("directory", *cfg.Sources[0].LDAP, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	d, err := src.ReadDelta(b.Context(), nil)
	if err != nil || !d.Full {
		b.Fatalf("the first incremental read: full %v, %v", d.Full, err)
	}
	var m map[string]any
	if err := json.Unmarshal(d.Mark, &m); err != nil {
		b.Fatal(err)
	}
	m["since"] = time.Now().UTC().Add(time.Second).Format("20060102150405Z")
	out, _ := json.Marshal(m)
	return out
}

// modifyEvery100th applies one LDIF change record to every 100th person.
func (s *scaleBench) modifyEvery100th(record func(dn string, i int) string) {
	s.modifyEvery(100, record)
}

// modifyEvery applies one LDIF change record to every nth person, with ldapmodify in
// batches (ldaptest gives each call 30 s, and a delete also rewrites the person's
// groups through memberof-refint).
func (s *scaleBench) modifyEvery(nth int, record func(dn string, i int) string) {
	var batch strings.Builder
	for i := 0; i < s.n; i += nth {
		batch.WriteString(record(ldaptest.PersonDN(s.ldap.Suffix, s.people[i].UID), i))
		batch.WriteString("\n")
		if (i/nth+1)%100 == 0 || i+nth >= s.n {
			s.ldap.Modify(s.b, batch.String())
			batch.Reset()
		}
	}
}

// config is an installation reading the directory into the contract server at url.
// max_disables is k, so that the left scenario's 1% passes its guard (the default,
// 100, would hold 100,000 people's 1,000); max_disable_percent keeps its default, 10.
func (s *scaleBench) config(url, statePath string) string {
	var source string
	switch s.source {
	case "csv":
		source = csvSource(s.csvPath)
	case "ldap":
		d := s.ldap
		source = fmt.Sprintf(`  - name: directory
    ldap:
      url: %s
      start_tls: true
      ca_file: %s
      bind_dn: %s
      bind_password: %s
      page_size: 500
      searches:
        - base_dn: ou=people,%s
          filter: (objectClass=inetOrgPerson)
      profile_attributes: {job_title: title}
      groups: {member_of: memberOf}
      active: {from: ppolicy}
      incremental: %t
`, d.URL, d.CAFile, d.ServiceDN, d.ServicePassword, d.Suffix, s.scenario == "delta")
	}
	opt := s.haploOptions()
	var groups []string
	for name, code := range s.groupMap() {
		groups = append(groups, fmt.Sprintf("%s: %q", name, code))
	}
	slices.Sort(groups)
	return fmt.Sprintf(`state_path: %s
safety: {max_disables: %d}
sources:
%ssinks:
  - name: haplo
    haplo:
      url: %s
      user_api_key: %s
      import_api_key: %s
      import_name: %s
      groups: {%s}
      attributes: {job_title: job_title}
      concurrency: %d
`, statePath, max(s.affected, 1), source, url, opt.UserAPIKey, opt.ImportAPIKey, opt.ImportName, strings.Join(groups, ", "), s.conc)
}

// haploOptions are the contract server's: the groups the configuration maps, as
// newEnv and newLDAPEnv have them.
func (s *scaleBench) haploOptions() haplotest.Options {
	opt := haplotest.Options{ControlFile: haplo.ControlFile, UserAPIKey: "user-key-0123456789abcdef",
		ImportAPIKey: "import-key-0123456789abcdef", ImportName: "people"}
	if s.source == "csv" {
		opt.Groups = []string{"haplo:group:engineering", "haplo:group:sales"}
	} else {
		opt.Groups = []string{"haplo:group:managers"}
	}
	return opt
}

// groupMap is the sink's groups setting: each group the contract server has, by the
// name the source gives it.
func (s *scaleBench) groupMap() map[string]string {
	m := map[string]string{}
	for _, code := range s.haploOptions().Groups {
		m[strings.TrimPrefix(code, "haplo:group:")] = code
	}
	return m
}

// scaleRun is one run's installation: its own contract server, configuration and
// state file.
type scaleRun struct {
	config, state string
	srv           *haplotest.Server
	close         func()
}

// prepare makes run name's installation: a fresh contract server (seeded, with the
// snapshot copied from the template, unless the scenario is a first sync) and its
// configuration.
func (s *scaleBench) prepare(name string) *scaleRun {
	b := s.b
	dir := filepath.Join(s.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	srv, err := haplotest.New(s.haploOptions())
	if err != nil {
		b.Fatal(err)
	}
	// Not haplotest.Start: each server is closed after its run rather than at the end,
	// since seeded with 100,000 people it holds a few hundred MB.
	ts := httptest.NewServer(srv.Handler())
	r := &scaleRun{config: filepath.Join(dir, "config.yaml"), state: filepath.Join(dir, "idsync.db"), srv: srv, close: ts.Close}
	if s.seeded() {
		s.seedHaplo(srv)
		if err := os.WriteFile(r.state, mustRead(b, s.template), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	srv.SetLatency(s.latency)
	if err := os.WriteFile(r.config, []byte(s.config(ts.URL, r.state)), 0o600); err != nil {
		b.Fatal(err)
	}
	return r
}

// seedHaplo gives srv an account and a profile for every identity of the seeded first
// sync, as idsync would have made them. The first call also writes the snapshot
// template with their ids; later calls, on fresh servers that allocate ids in the same
// order, check that they got the same ones.
func (s *scaleBench) seedHaplo(srv *haplotest.Server) {
	b := s.b
	first := s.entries == nil
	groups := s.groupMap()
	for i, id := range s.before {
		var codes []string
		for _, g := range id.Groups {
			if code, ok := groups[g]; ok {
				codes = append(codes, code)
			}
		}
		slices.Sort(codes)
		attrs := map[string][]string{
			"dc:attribute:title":  {id.FirstName + " " + id.LastName},
			"dc:attribute:type":   {"std:type:person"},
			"std:attribute:email": {id.Email},
		}
		if t := id.Attributes.Get("job_title"); len(t) > 0 {
			attrs["std:attribute:job-title"] = []string{strings.Join(t, "; ")}
		}
		p := srv.AddProfile(haplotest.Profile{Attrs: attrs})
		u := srv.AddUser(haplotest.User{NameFirst: id.FirstName, NameLast: id.LastName, Email: id.Email, Ref: p.Ref,
			Tags:   map[string]string{"username": strings.ToLower(cmp.Or(id.Username, id.ID)), "idsync_id": id.ID},
			Groups: slices.Compact(codes), Blocked: !id.Active})
		if first {
			s.entries = append(s.entries, dsync.Entry{ID: id.ID, UserID: strconv.Itoa(u.ID), ProfileRef: p.Ref})
			continue
		}
		if e := s.entries[i]; e.UserID != strconv.Itoa(u.ID) || e.ProfileRef != p.Ref {
			b.Fatalf("seeding %s gave user %d and profile %s, but the snapshot template has %s and %s", id.ID, u.ID, p.Ref, e.UserID, e.ProfileRef)
		}
	}
	if first {
		s.template = filepath.Join(s.dir, "template.db")
		writeSnapshot(b, s.template, s.schema, s.before, func(i int) dsync.Entry { return s.entries[i] })
		if s.mark != nil {
			st, err := state.Open(s.template, state.Options{})
			if err != nil {
				b.Fatal(err)
			}
			err = st.RecordRun(dsync.RunSummary{Result: dsync.ResultSuccess, Identities: s.n, Marks: map[string]json.RawMessage{"directory": s.mark}})
			if err = errors.Join(err, st.Close()); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// scaleResult is one measured run.
type scaleResult struct {
	usage
	// serverCPU is the CPU time this process used meanwhile: the contract server's,
	// which shares the machine with idsync.
	serverCPU time.Duration
	requests  map[string]int // per contract-server endpoint
	applied   map[dsync.OpKind]int
	dbBytes   int64
}

func (r scaleResult) totalRequests() int {
	n := 0
	for _, c := range r.requests {
		n += c
	}
	return n
}

func (r scaleResult) ops() int {
	n := 0
	for _, c := range r.applied {
		n += c
	}
	return n
}

func (r scaleResult) String() string {
	return fmt.Sprintf("wall %.3f s, cpu %.3f s (contract server %.3f s), %d MB peak RSS (measuring helper %d MB), %d requests (%v, %.0f req/s), applied %v, state file %.1f MB",
		r.wall.Seconds(), r.cpu.Seconds(), r.serverCPU.Seconds(), r.rssKB/1024, r.floorKB/1024, r.totalRequests(), r.requests,
		float64(r.totalRequests())/r.wall.Seconds(), r.applied, float64(r.dbBytes)/(1<<20))
}

// want is what a run of the scenario must apply.
func (s *scaleBench) want() map[dsync.OpKind]int {
	switch s.scenario {
	case "first":
		return map[dsync.OpKind]int{dsync.CreateProfile: s.n, dsync.CreateUser: s.n}
	case "changed", "delta":
		return map[dsync.OpKind]int{dsync.UpdateProfile: s.affected, dsync.UpdateUser: s.affected}
	case "left":
		return map[dsync.OpKind]int{dsync.DisableUser: s.affected}
	}
	return map[dsync.OpKind]int{}
}

// wantRequests is how many requests a run of the scenario makes.
func (s *scaleBench) wantRequests() int {
	switch s.scenario {
	case "first":
		return 3 * s.n
	case "changed", "left", "delta":
		return 2 * s.affected
	}
	return 0
}

// measureRun runs the idsync binary once on a fresh installation, and checks that it
// applied exactly what the scenario wants.
func (s *scaleBench) measureRun(i int) scaleResult {
	b := s.b
	r := s.prepare(fmt.Sprintf("run%d", i))
	defer r.close()
	before := selfCPU(b)
	args := []string{"--once", "--config", r.config}
	if os.Getenv("IDSYNC_BENCH_FULL_READ") != "" {
		args = append(args, "--full-read")
	}
	u := measure(b, exec.Command(s.bin, args...))
	res := scaleResult{usage: u, serverCPU: selfCPU(b) - before, requests: r.srv.Requests(), applied: s.check(r)}
	fi, err := os.Stat(r.state)
	if err != nil {
		b.Fatal(err)
	}
	res.dbBytes = fi.Size()
	if got := res.totalRequests(); got != s.wantRequests() {
		b.Fatalf("the run made %d requests (%v), want %d", got, res.requests, s.wantRequests())
	}
	// Not left for b.TempDir's cleanup: at 100,000 people each copy is some 100 MB.
	if err := os.Remove(r.state); err != nil {
		b.Fatal(err)
	}
	return res
}

// check reads the run's summary from its state file and fails unless it applied
// exactly what the scenario wants, without a failure.
func (s *scaleBench) check(r *scaleRun) map[dsync.OpKind]int {
	b := s.b
	st, err := state.Open(r.state, state.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(1)
	if err != nil || len(runs) == 0 {
		b.Fatalf("runs %v, %v", runs, err)
	}
	sum := runs[0]
	applied := sum.Sinks[0].Applied
	if sum.Result != dsync.ResultSuccess || !maps.Equal(applied, s.want()) {
		b.Fatalf("the %s run ended %s, applying %v (failed %v, skipped %v); want success applying %v",
			s.scenario, sum.Result, applied, sum.Sinks[0].Failed, sum.Sinks[0].Skipped, s.want())
	}
	return applied
}

// profile runs once more under the CPU profiler (see profileRun).
func (s *scaleBench) profile(path string) {
	r := s.prepare("profile")
	defer r.close()
	profileRun(s.b, path, "--config", r.config, "--once")
	s.check(r)
	s.b.Logf("CPU profile of one %s run: %s", s.scenario, path)
}

// report reports the medians over the runs. ns/op, the whole benchmark with its set-up,
// would mean nothing, and is left out.
func (s *scaleBench) report(results []scaleResult, ldapsearch []usage) {
	b := s.b
	med := func(f func(scaleResult) float64) float64 {
		xs := make([]float64, len(results))
		for i, r := range results {
			xs[i] = f(r)
		}
		return median(xs)
	}
	wall := med(func(r scaleResult) float64 { return r.wall.Seconds() })
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(wall, "wall-s")
	b.ReportMetric(med(func(r scaleResult) float64 { return r.cpu.Seconds() }), "cpu-s")
	b.ReportMetric(med(func(r scaleResult) float64 { return r.serverCPU.Seconds() }), "server-cpu-s")
	b.ReportMetric(med(func(r scaleResult) float64 { return float64(r.rssKB) / 1024 }), "rss-MB")
	b.ReportMetric(med(func(r scaleResult) float64 { return float64(r.totalRequests()) }), "requests")
	b.ReportMetric(med(func(r scaleResult) float64 { return float64(r.totalRequests()) / r.wall.Seconds() }), "req/s")
	b.ReportMetric(med(func(r scaleResult) float64 { return float64(r.ops()) }), "ops")
	for _, k := range dsync.OpKinds {
		if n := results[0].applied[k]; n > 0 {
			b.ReportMetric(float64(n), k.String()+"-ops")
		}
	}
	b.ReportMetric(med(func(r scaleResult) float64 { return float64(r.dbBytes) / (1 << 20) }), "db-MB")
	b.ReportMetric(float64(len(results)), "runs")
	b.ReportMetric(float64(runtime.NumCPU()), "cores")
	if len(ldapsearch) > 0 {
		walls, rss := make([]float64, len(ldapsearch)), make([]float64, len(ldapsearch))
		for i, u := range ldapsearch {
			walls[i], rss[i] = u.wall.Seconds(), float64(u.rssKB)/1024
		}
		b.ReportMetric(median(walls), "ldapsearch-s")
		b.ReportMetric(median(rss), "ldapsearch-MB")
		b.ReportMetric(wall/median(walls), "ratio")
	}
}

// writeRows writes a CSV file as newEnv's writeCSV does.
func writeRows(tb testing.TB, path string, rows []row) {
	tb.Helper()
	var b strings.Builder
	b.Grow(len(rows) * 100)
	b.WriteString("employee_id,login,email,given_name,family_name,status,teams,job_title\n")
	for _, r := range rows {
		b.WriteString(r.String())
		b.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// readSource reads the first source of the configuration at path, as a run would,
// and returns its valid identities and the first sink's schema.
func readSource(tb testing.TB, path string) ([]dsync.Identity, dsync.Schema) {
	tb.Helper()
	cfg, err := LoadConfig(path)
	if err != nil {
		tb.Fatal(err)
	}
	sources, sinks, err := build(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := sources[0].Source.Read(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return slices.DeleteFunc(ids, func(id dsync.Identity) bool { return !id.Valid() }), sinks[0].Sink.Schema()
}

// writeSnapshot writes the state file a first sync into a sink with schema leaves:
// entry(i) for each identity, holding what was applied to its account and profile, and
// a successful run of that many identities, for min_source_ratio.
func writeSnapshot(tb testing.TB, path string, schema dsync.Schema, ids []dsync.Identity, entry func(i int) dsync.Entry) {
	tb.Helper()
	st, err := state.Open(path, state.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	// Puts are group-committed: as many writers as a transaction takes make few fsyncs.
	work := make(chan int)
	errs := make(chan error, 1)
	var wg gosync.WaitGroup
	for range 1000 {
		wg.Go(func() {
			for i := range work {
				u, p := dsync.Project(ids[i], schema.User), dsync.Project(ids[i], schema.Profile)
				e := entry(i)
				e.User, e.Profile = &u, &p
				if err := st.Put("haplo", e); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
	// With what each source gave, as a real first sync records it: the LDAP source
	// sizes its next read by it (sync.Sizer), and the first measured run is then like
	// the others.
	read := make(map[string]int)
	for i := range ids {
		read[ids[i].Source]++
	}
	if err := st.RecordRun(dsync.RunSummary{Result: dsync.ResultSuccess, Identities: len(ids), Sources: read}); err != nil {
		tb.Fatal(err)
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
