package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSecrets are set in the environment while FuzzLoadConfig runs: the secret keys
// the shipped example references, and two of idsync's own. The values are ones the
// fuzzer is unlikely to write into a file by itself, so that one found in an error
// message came from the environment.
var fuzzSecrets = map[string]string{
	"HAPLO_USER_API_KEY":   "fzUserKey-9f3b2c7d1e",
	"HAPLO_IMPORT_API_KEY": "7395128460", // numeric: it resolves as an int where one is read
	"IDSYNC_FUZZ_SECRET":   "fzSecret-4a6e8b0c2d",
	"IDSYNC_FUZZ_PIN":      "8406219573",
}

// leaked returns the part of secret that msg shows: all of it, or the first 7
// characters, which is what yaml.v3 quotes of a long value in a type error
// ("cannot unmarshal !!str `fzSecre...` into time.Duration"). "" when none.
func leaked(msg, secret string) string {
	for _, part := range []string{secret, secret[:7]} {
		if strings.Contains(msg, part) {
			return part
		}
	}
	return ""
}

// setFuzzSecrets sets fuzzSecrets for the whole fuzz run: f.Fuzz's function cannot
// call t.Setenv. They are restored when f's test ends.
func setFuzzSecrets(f *testing.F) {
	for k, v := range fuzzSecrets {
		old, had := os.LookupEnv(k)
		if err := os.Setenv(k, v); err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() {
			if had {
				os.Setenv(k, old)
			} else {
				os.Unsetenv(k)
			}
		})
	}
}

// maxFuzzConfig is the longest input FuzzLoadConfig tries.
const maxFuzzConfig = 4 << 10

// uncomment turns on the example's commented-out LDAP sources.
func uncomment(s string) string {
	var b strings.Builder
	in := false // in a commented-out source
	for line := range strings.Lines(s) {
		t := strings.TrimLeft(line, " ")
		in = strings.HasPrefix(t, "# - name: ") || in && strings.HasPrefix(t, "#   ")
		if in {
			line = strings.Replace(line, "# ", "", 1)
		}
		b.WriteString(line)
	}
	return b.String()
}

// strip drops comments and blank lines. No value in the example holds " #".
func strip(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	return b.String()
}

// FuzzLoadConfig loads arbitrary files and checks what the daemon relies on:
// LoadConfig never panics; it returns a config or an error, never both and never
// neither; a config it returns passes Validate again; and no error message carries
// the value of a secret from the environment, even when the file references it with
// ${...} (errors are printed to stderr and logged, and a reload's error goes to the
// journal).
func FuzzLoadConfig(f *testing.F) {
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	// The seeds are the shipped example without its comments, and variations. With its
	// comments the example is 8 kB, a millisecond a parse for yaml.v3, and every new
	// input found from it takes the fuzzer up to a minute to minimize: inputs over
	// maxFuzzConfig are skipped, and the example as shipped is loaded once here.
	ex := strip(string(example))
	seeds := []string{
		ex,
		strip(uncomment(string(example))),
		strings.Replace(strip(uncomment(string(example))), "bind_password_file: /run/secrets/ldap-password", "bind_password: ${IDSYNC_FUZZ_SECRET}", 1),
		strings.Replace(ex, "${HAPLO_USER_API_KEY}", "${IDSYNC_FUZZ_UNSET}", 1),
		strings.Replace(ex, "${HAPLO_USER_API_KEY}", "${IDSYNC_FUZZ_UNSET:-fallback}", 1),
		strings.Replace(ex, "concurrency: 8", "concurrency: ${IDSYNC_FUZZ_PIN:-8}", 1),
		ex + "colour: blue\n",
		minimal,
		minimal + "safety: {max_disables: ${IDSYNC_FUZZ_UNSET:-3}, min_source_ratio: 2}\n",
		"sources: []\nsinks: []\n",
		"sources: [{name: x, csv: {path: p, columns: {id: i, email: e}}, ldap: {url: 'ldap://x'}}]\n",
		"state_path: [\n",
		"&a [*a]\n",
		"",
		"---\n---\n",
		"\t",
		// Secrets referenced where values are checked and quoted in errors.
		strings.Replace(ex, `"@every 15m"`, "${IDSYNC_FUZZ_SECRET}", 1),
		strings.Replace(ex, "${HAPLO_URL:-https://haplo.example.org}", "${HAPLO_USER_API_KEY}", 1),
		strings.Replace(ex, "concurrency: 8", "concurrency: ${HAPLO_IMPORT_API_KEY}", 1),
		strings.Replace(ex, "import_name: people", "import_name: ${IDSYNC_FUZZ_SECRET}!", 1),
		strings.Replace(ex, "lock_timeout: 1s", "lock_timeout: ${IDSYNC_FUZZ_SECRET}", 1),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	setFuzzSecrets(f)
	if _, err := LoadConfig("../../config.example.yaml"); err != nil {
		f.Fatalf("the shipped example: %v", err)
	}
	// One file for the whole run, rewritten by each input: a worker runs its inputs one
	// at a time, and a t.TempDir for each would cost a third of an iteration.
	path := filepath.Join(f.TempDir(), "config.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzConfig {
			t.Skip("too long to be worth the time")
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path)
		switch {
		case cfg == nil && err == nil:
			t.Fatal("LoadConfig returned neither a config nor an error")
		case cfg != nil && err != nil:
			t.Fatalf("LoadConfig returned a config and the error %v", err)
		case cfg != nil:
			if errs := cfg.Validate(); len(errs) > 0 {
				t.Errorf("LoadConfig returned a config that Validate refuses: %v", errs)
			}
			return
		}
		msg := err.Error()
		for k, v := range fuzzSecrets {
			if part := leaked(msg, v); part != "" && !strings.Contains(string(data), part) {
				t.Errorf("the error shows %q of $%s, which the file references:\n%s", part, k, msg)
			}
		}
	})
}
