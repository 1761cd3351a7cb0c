// Package secret holds credentials read from the configuration so that they never
// reach a log line, a plan or a status page by accident.
package secret

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Secret is a credential. Its String, GoString and LogValue print REDACTED; only Reveal
// gives the value.
type Secret struct{ v string }

// New wraps a value.
func New(v string) Secret { return Secret{v} }

// Reveal returns the value, for the one place that sends it.
func (s Secret) Reveal() string { return s.v }

// Empty reports whether there is no value.
func (s Secret) Empty() bool { return s.v == "" }

func (s Secret) String() string   { return "REDACTED" }
func (s Secret) GoString() string { return "secret.Secret{REDACTED}" }

// LogValue keeps the value out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// MarshalText keeps the value out of JSON and YAML output.
func (s Secret) MarshalText() ([]byte, error) { return []byte("REDACTED"), nil }

// Load returns the secret given inline or in a file; exactly one of the two must be
// set. A file's trailing newline is dropped. name is the config key, for errors.
func Load(name, inline, file string) (Secret, error) {
	switch {
	case inline != "" && file != "":
		return Secret{}, fmt.Errorf("%s and %s_file: set one, not both", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("%s_file: %w", name, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return Secret{}, fmt.Errorf("%s_file: %s is empty", name, file)
		}
		return Secret{v}, nil
	case inline != "":
		return Secret{inline}, nil
	}
	return Secret{}, fmt.Errorf("%s or %s_file: required", name, name)
}
