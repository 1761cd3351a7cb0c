// Package deploy_test checks the deployment files in this folder: the Prometheus
// alerting rules and their unit tests (with promtool), the metric names and labels
// used by the rules and the Grafana dashboard, the systemd units (with
// systemd-analyze, when it exists) and the Dockerfile's essentials.
package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// metric is one metric idsync exports: its kind and the labels it carries.
type metric struct {
	kind   string // counter, gauge or histogram
	labels []string
}

// metrics is the whole list of idsync_ metrics (DESIGN.md, "What the user sees").
var metrics = map[string]metric{
	"idsync_runs_total":                                   {"counter", []string{"result"}},
	"idsync_run_duration_seconds":                         {"histogram", nil},
	"idsync_phase_duration_seconds":                       {"histogram", []string{"phase"}},
	"idsync_last_run_timestamp_seconds":                   {"gauge", nil},
	"idsync_last_success_timestamp_seconds":               {"gauge", nil},
	"idsync_source_identities":                            {"gauge", []string{"source"}},
	"idsync_source_read_errors_total":                     {"counter", []string{"source"}},
	"idsync_planned_operations":                           {"gauge", []string{"sink", "operation"}},
	"idsync_operations_total":                             {"counter", []string{"sink", "operation", "result"}},
	"idsync_sink_request_duration_seconds":                {"histogram", []string{"sink", "endpoint"}},
	"idsync_sink_retries_total":                           {"counter", []string{"sink", "reason"}},
	"idsync_guard_trips_total":                            {"counter", []string{"guard"}},
	"idsync_snapshot_identities":                          {"gauge", []string{"sink"}},
	"idsync_run_panics_total":                             {"counter", nil},
	"idsync_build_info":                                   {"gauge", []string{"version", "goversion"}},
	"idsync_config_last_reload_successful":                {"gauge", nil},
	"idsync_config_last_reload_success_timestamp_seconds": {"gauge", nil},
}

// labelValues are the fixed value lists of the labels that have one.
var labelValues = map[string][]string{
	"phase":     {"read", "plan", "apply", "record"},
	"operation": {"create_profile", "create_user", "update_profile", "update_user", "enable_user", "disable_user", "delete_user"},
	"reason":    {"network", "status_5xx", "status_429"},
	"guard":     {"max_disables", "max_disable_percent", "max_deletes", "min_source_ratio", "empty_source"},
}

// resultValues differ between the two metrics with a result label.
var resultValues = map[string][]string{
	"idsync_runs_total":       {"success", "partial", "failed", "held", "dry_run"},
	"idsync_operations_total": {"success", "failure", "skipped"},
}

// targetLabels are added by Prometheus to every series.
var targetLabels = []string{"job", "instance"}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): install it with `apt-get install prometheus` (Debian), "+
			"then `service prometheus stop` if the package started the server", err)
	}
	return p
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), out)
}

func TestAlertRulesPromtool(t *testing.T) {
	p := promtool(t)
	run(t, ".", p, "check", "rules", "alerts.yml")
	run(t, ".", p, "test", "rules", "alerts_test.yml")
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	return rf
}

func TestAlertRulesContent(t *testing.T) {
	rf := readRules(t)
	want := []string{"IdsyncLastSuccessStale", "IdsyncRunsFailing", "IdsyncGuardTripped",
		"IdsyncOperationFailures", "IdsyncConfigReloadFailed", "IdsyncTargetDown"}
	var got []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			got = append(got, r.Alert)
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs summary and description annotations", r.Alert)
			}
			checkExpr(t, "alerts.yml "+r.Alert, r.Expr)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("alerts.yml has no alert %s", w)
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "IdsyncGuardTripped" && !strings.Contains(r.Annotations["description"], "--accept-guard") {
				t.Errorf("IdsyncGuardTripped: description should tell the operator about --dry-run and --accept-guard")
			}
		}
	}
}

type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func readDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, all
}

func TestDashboard(t *testing.T) {
	d, panels := readDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want a current one (39)", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" {
			checkExpr(t, "dashboard variable "+v.Name, v.Definition)
		}
	}
	if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["instance"] != "query" {
		t.Errorf("template variables %v: want datasource (datasource), job and instance (query)", vars)
	}
	ids := map[int]bool{}
	wantTitles := []string{"runs by result", "run duration", "phase durations", "last success age",
		"identities per source", "planned operations", "operations by result", "operation errors",
		"sink request latency", "retries by reason", "guard trips", "snapshot identities"}
	var titles []string
	exprs := 0
	for _, p := range panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		titles = append(titles, strings.ToLower(p.Title))
		if p.Type == "row" {
			continue
		}
		if !strings.Contains(string(p.Datasource), "${datasource}") {
			t.Errorf("panel %q: datasource %s, want ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			checkExpr(t, fmt.Sprintf("panel %q", p.Title), tg.Expr)
			if !strings.Contains(tg.Expr, `job="$job"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %s does not select job and instance", p.Title, tg.Expr)
			}
		}
	}
	for _, w := range wantTitles {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("dashboard has no panel about %q", w)
		}
	}
	if exprs == 0 {
		t.Fatal("no expressions in the dashboard")
	}
}

// TestDashboardPromQL has promtool parse every dashboard expression, as recording
// rules with the Grafana variables replaced by values.
func TestDashboardPromQL(t *testing.T) {
	p := promtool(t)
	_, panels := readDashboard(t)
	r := strings.NewReplacer("$job", "idsync", "$instance", ".*", "$window", "1h",
		"$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, pn := range panels {
		for _, tg := range pn.Targets {
			n++
			q, _ := json.Marshal(r.Replace(tg.Expr))
			fmt.Fprintf(&b, "      - record: dashboard:panel_%d:%d\n        expr: %s\n", pn.ID, n, q)
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ".", p, "check", "rules", f)
}

var (
	stringLit = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers  = regexp.MustCompile(`\{([^{}]*)\}`)
	matcher   = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)
	grouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)
	ranges    = regexp.MustCompile(`\[[^\]]*\]`)
	ident     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords  = []string{"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without",
		"on", "ignoring", "group_left", "group_right"}
)

// checkExpr checks that every metric an expression names is one idsync exports
// (or up, go_*, process_*), and that its label names and fixed label values exist.
// It is a lexical check, enough for the rules and dashboard here; promtool parses
// the expressions themselves.
func checkExpr(t *testing.T, where, expr string) {
	t.Helper()
	for _, p := range exprProblems(expr) {
		t.Errorf("%s: %s", where, p)
	}
}

func exprProblems(expr string) []string {
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if strings.TrimSpace(expr) == "" {
		return []string{"empty expression"}
	}
	labelf := func(series, label, op, value string) {
		problems = append(problems, labelProblems(series, label, op, value)...)
	}
	var names []string
	// Label names and values in {...}: checked against the metric right before.
	for _, m := range matchers.FindAllStringSubmatchIndex(expr, -1) {
		before := strings.TrimRight(expr[:m[0]], " ")
		name := ident.FindString(before[lastIdentStart(before):])
		for _, part := range splitMatchers(expr[m[2]:m[3]]) {
			mm := matcher.FindStringSubmatch(part)
			if mm == nil {
				errorf("cannot read matcher %q", part)
				continue
			}
			labelf(name, mm[1], mm[2], mm[3])
		}
	}
	rest := matchers.ReplaceAllString(expr, " ")
	rest = stringLit.ReplaceAllString(rest, " ")
	for _, g := range grouping.FindAllStringSubmatch(rest, -1) {
		for _, l := range strings.Split(g[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labelf("", l, "", "")
			}
		}
	}
	rest = grouping.ReplaceAllString(rest, " ")
	rest = ranges.ReplaceAllString(rest, " ")
	// label_values(metric, label) in variable queries.
	if lv := regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:,\s*([a-zA-Z_]+))?\s*\)`).FindStringSubmatch(rest); lv != nil {
		if lv[2] != "" {
			labelf(lv[1], lv[2], "", "")
		}
		rest = strings.Replace(rest, lv[0], " "+lv[1]+" ", 1)
	}
	for _, loc := range ident.FindAllStringIndex(rest, -1) {
		w := rest[loc[0]:loc[1]]
		if loc[0] > 0 && (rest[loc[0]-1] == '$' || isDigitOrDot(rest[loc[0]-1])) {
			continue // a Grafana variable, or a number such as 1e3
		}
		if strings.HasPrefix(strings.TrimLeft(rest[loc[1]:], " "), "(") || slices.Contains(keywords, strings.ToLower(w)) {
			continue // a function or an operator
		}
		names = append(names, w)
	}
	if len(names) == 0 {
		errorf("%s names no metric", expr)
	}
	for _, n := range names {
		if _, ok := metricFor(n); !ok {
			errorf("metric %q is not one idsync exports (nor up, go_*, process_*)", n)
		}
	}
	return problems
}

func lastIdentStart(s string) int {
	i := len(s)
	for i > 0 {
		c := s[i-1]
		if c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			i--
			continue
		}
		break
	}
	return i
}

func isDigitOrDot(c byte) bool { return c >= '0' && c <= '9' || c == '.' }

func splitMatchers(s string) []string {
	var parts []string
	for _, p := range regexp.MustCompile(`,\s*`).Split(strings.TrimSpace(s), -1) {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

// metricFor resolves a series name to the idsync metric it belongs to; ok is true
// for the other allowed families too, with an empty name.
func metricFor(series string) (string, bool) {
	if series == "up" || strings.HasPrefix(series, "go_") || strings.HasPrefix(series, "process_") {
		return "", true
	}
	if m, ok := metrics[series]; ok && m.kind != "histogram" {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, found := strings.CutSuffix(series, suffix)
		if m, ok := metrics[base]; found && ok && m.kind == "histogram" {
			return base, true
		}
	}
	return "", false
}

// labelProblems checks a label used with series (empty: anywhere in the expression), and
// for an equality matcher, its value.
func labelProblems(series, label, op, value string) []string {
	if label == "__name__" {
		return []string{"select metrics by name, not with __name__"}
	}
	known := slices.Contains(targetLabels, label) || label == "le"
	for _, m := range metrics {
		known = known || slices.Contains(m.labels, label)
	}
	base, _ := metricFor(series)
	if m, ok := metrics[base]; ok {
		known = slices.Contains(targetLabels, label) || slices.Contains(m.labels, label) ||
			label == "le" && m.kind == "histogram" && strings.HasSuffix(series, "_bucket")
		if !known {
			return []string{fmt.Sprintf("%s has no label %q (it has %v)", series, label, m.labels)}
		}
	}
	if !known {
		return []string{fmt.Sprintf("no idsync metric has a label %q", label)}
	}
	if op != "=" && op != "!=" {
		return nil
	}
	allowed := labelValues[label]
	if label == "result" {
		allowed = resultValues[base]
	}
	if allowed != nil && !slices.Contains(allowed, value) {
		sorted := slices.Clone(allowed)
		sort.Strings(sorted)
		return []string{fmt.Sprintf("%s{%s=%q}: value not one of %v", series, label, value, sorted)}
	}
	return nil
}

// TestCheckExpr makes sure the lexical check rejects what it should.
func TestCheckExpr(t *testing.T) {
	good := []string{
		`time() - idsync_last_success_timestamp_seconds > 3 * 3600`,
		`histogram_quantile(0.95, sum by (le, sink, endpoint) (rate(idsync_sink_request_duration_seconds_bucket{job="$job"}[$window])))`,
		`increase(idsync_runs_total{result="held"}[1h]) >= 2`,
		`up{job="idsync"} == 0 or go_goroutines > 1e3 and process_open_fds > 0`,
		`label_values(idsync_build_info{job="$job"}, instance)`,
	}
	bad := []string{
		`idsync_runs{result="failed"}`,                        // no such metric
		`idsync_runs_total{result="failure"}`,                 // a value of the other result label
		`idsync_operations_total{operation="delete_profile"}`, // no such operation
		`rate(idsync_run_duration_seconds[5m])`,               // a histogram without its suffix
		`sum by (person) (idsync_snapshot_identities)`,        // no such label
		`idsync_guard_trips_total{sink="haplo"}`,              // not a label of that metric
		`node_load1`,
	}
	for _, e := range good {
		if p := exprProblems(e); len(p) > 0 {
			t.Errorf("rejected a good expression: %s: %v", e, p)
		}
	}
	for _, e := range bad {
		if p := exprProblems(e); len(p) == 0 {
			t.Errorf("accepted a bad expression: %s", e)
		}
	}
}

// TestSystemdUnits runs systemd-analyze verify on the units when it is available.
// The ExecStart binary does not exist here, so the units are verified in a copy
// that points at a stand-in executable.
func TestSystemdUnits(t *testing.T) {
	units := []string{"idsync.service", "idsync-once.service", "idsync-once.timer"}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.HasSuffix(u, ".service") {
			for _, want := range []string{"ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=idsync",
				"CapabilityBoundingSet=\n", "SystemCallFilter=@system-service", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"} {
				if !strings.Contains(s, want) {
					t.Errorf("%s: missing %q", u, strings.TrimSpace(want))
				}
			}
		}
	}
	daemon, _ := os.ReadFile("idsync.service")
	for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "TimeoutStopSec=60s"} {
		if !strings.Contains(string(daemon), want) {
			t.Errorf("idsync.service: missing %q", want)
		}
	}
	once, _ := os.ReadFile("idsync-once.service")
	if !strings.Contains(string(once), " --once ") || !strings.Contains(string(once), "--metrics-file ") {
		t.Errorf("idsync-once.service: ExecStart should run --once with --metrics-file")
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not found, units not verified (apt-get install systemd)")
		return
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "idsync-stub")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, u := range units {
		b, _ := os.ReadFile(u)
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/idsync", stub)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, paths...)...)
	out, err := cmd.CombinedOutput()
	// systemd-analyze exits 0 on unknown keys and bad values; it only warns.
	var problems []string
	for _, l := range strings.Split(string(out), "\n") {
		for _, u := range units {
			if strings.Contains(l, u) {
				problems = append(problems, l)
				break
			}
		}
	}
	if err != nil || len(problems) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze verify: units OK\n%s", out)
}

// TestDockerfile checks the essentials of ../Dockerfile; there is no Docker engine
// to build it here.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"FROM golang:", "CGO_ENABLED=0", "go build -trimpath", "./cmd/idsync",
		"VOLUME /var/lib/idsync", "EXPOSE 9464", `"--config", "/etc/idsync/config.yaml"`, "0.0.0.0:9464",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile: missing %q", want)
		}
	}
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(s, -1)
	if len(user) == 0 || strings.HasPrefix(user[len(user)-1][1], "0") || strings.HasPrefix(user[len(user)-1][1], "root") {
		t.Errorf("Dockerfile: the final stage must run as a non-root numeric USER, got %v", user)
	}
	if _, err := os.Stat("../.dockerignore"); err != nil {
		t.Errorf(".dockerignore: %v", err)
	}
}
