package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idsync.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const minimal = `
sources:
  - name: hr
    csv: {path: people.csv, columns: {id: id, email: email}}
sinks:
  - name: app
    haplo: {url: "https://h.example.org", user_api_key: k, import_api_key: k, import_name: people}
`

func TestLoadConfigDefaultsAndPaths(t *testing.T) {
	path := writeConfig(t, minimal+`  - name: ehr
    icure: {url: "https://icure.example.org", username: idsync, password_file: icure.password}
  - name: bi
    domo: {client_id: c, client_secret_file: /run/secrets/domo}
`)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	if got, want := cfg.StatePath, filepath.Join(dir, "idsync.db"); got != want {
		t.Errorf("state_path %q, want %q (next to the config)", got, want)
	}
	if got, want := cfg.Sources[0].CSV.Path, filepath.Join(dir, "people.csv"); got != want {
		t.Errorf("csv path %q, want %q", got, want)
	}
	if got, want := cfg.Sinks[1].ICure.PasswordFile, filepath.Join(dir, "icure.password"); got != want {
		t.Errorf("icure password_file %q, want %q", got, want)
	}
	if got, want := cfg.Sinks[2].Domo.ClientSecretFile, "/run/secrets/domo"; got != want {
		t.Errorf("domo client_secret_file %q, want %q (absolute paths are kept)", got, want)
	}
	if cfg.Schedule != "@every 15m" || cfg.Listen != "127.0.0.1:9464" || cfg.LockTimeout != time.Second {
		t.Errorf("defaults: schedule %q listen %q lock_timeout %v", cfg.Schedule, cfg.Listen, cfg.LockTimeout)
	}
}

func TestLoadConfigEnv(t *testing.T) {
	t.Setenv("IDSYNC_TEST_MAX", "7")
	t.Setenv("IDSYNC_TEST_URL", "https://env.example.org")
	t.Setenv("IDSYNC_TEST_EMPTY", "")
	path := writeConfig(t, minimal+`
safety:
  max_disables: ${IDSYNC_TEST_MAX}
  min_source_ratio: ${IDSYNC_TEST_EMPTY:-0.25}
schedule: "${IDSYNC_TEST_UNSET_SCHEDULE:-@hourly}"
`)
	text, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(text), `"https://h.example.org"`, `"${IDSYNC_TEST_URL}"`, 1)), 0o600)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Safety.MaxDisables != 7 || *cfg.Safety.MinSourceRatio != 0.25 || cfg.Schedule != "@hourly" {
		t.Errorf("got max_disables %d, min_source_ratio %g, schedule %q; want 7, 0.25, @hourly",
			*cfg.Safety.MaxDisables, *cfg.Safety.MinSourceRatio, cfg.Schedule)
	}
	if got := cfg.Sinks[0].Haplo.URL; got != "https://env.example.org" {
		t.Errorf("url %q, want it from the environment", got)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"yaml syntax", "sources: [", []string{"idsync.yaml:1:"}},
		{"unknown key in a sink section", minimal + "    safety: {max_disables: 1, max_dissables: 2}\n", []string{`unknown key "max_dissables"`}},
		{"wrong type", minimal + "safety: {max_disables: many}\n", []string{"idsync.yaml:8:", "many"}},
		{"env in a key is not expanded", minimal + "${IDSYNC_TEST_KEY}: 1\n", []string{`unknown key "${IDSYNC_TEST_KEY}"`}},
		{"bad safety", minimal + "safety: {max_disable_percent: 150, min_source_ratio: 2, max_disables: -5}\n", []string{
			"safety.max_disable_percent: 150", "safety.min_source_ratio: 2", "safety.max_disables: -5"}},
		{"two types are not allowed, no type neither", `
sources:
  - name: hr
sinks:
  - name: hr
    haplo: {url: "https://h.example.org", user_api_key: k, import_api_key: k, import_name: people}
`, []string{"sources[0]: needs a type: csv", `sinks[0].name: "hr" is already the name of sources[0]`}},
		{"two sink types", minimal + "    scim: {url: \"https://s.example.org\", token: t}\n", []string{"sinks[0]: one type only"}},
		{"no sink type", minimal + "  - name: bare\n", []string{"sinks[1]: needs a type: haplo, scim"}},
		{"a sink that cannot delete", minimal + "    delete_after: 720h\n", []string{"sinks[0].delete_after: haplo's API cannot delete"}},
		{"domo deletes leavers only after a grace period", minimal + `  - name: bi
    domo: {client_id: c, client_secret: s, disable_action: delete}
`, []string{"sinks[1].delete_after: required with domo.disable_action: delete"}},
		{"each sink's own checks", minimal + `  - name: bi
    domo: {client_secret: s, disable_action: disable}
  - name: ehr
    icure: {url: "ftp://x", username: u, password: p, patient_id_attribute: a, healthcare_party_id_attribute: b}
`, []string{"sinks[1].domo.client_id", "sinks[1].domo.disable_action", "sinks[2].icure.url", "sinks[2].icure"}},
		{"bad listen", minimal + "listen: nowhere\n", []string{`listen: "nowhere"`}},
		{"bad schedule", minimal + "schedule: \"61 * * * *\"\n", []string{`schedule: "61 * * * *"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tt.text))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
