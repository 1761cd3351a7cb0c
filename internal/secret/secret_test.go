package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := New("hunter2-0123456789")
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "key", s)
	b, _ := json.Marshal(struct{ K Secret }{s})
	out := buf.String() + fmt.Sprint(s) + fmt.Sprintf("%v %+v %#v %s", s, s, s, s) + string(b)
	if strings.Contains(out, "hunter2") {
		t.Errorf("secret leaked: %s", out)
	}
	if got := s.Reveal(); got != "hunter2-0123456789" {
		t.Errorf("Reveal = %q", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "key")
	os.WriteFile(good, []byte("from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tests := []struct {
		inline, file, want, wantErr string
	}{
		{"inline", "", "inline", ""},
		{"", good, "from-file", ""},
		{"x", good, "", "set one, not both"},
		{"", "", "", "required"},
		{"", filepath.Join(dir, "missing"), "", "no such file"},
		{"", empty, "", "is empty"},
	}
	for _, tt := range tests {
		s, err := Load("api_key", tt.inline, tt.file)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Load(%q, %q) error %v, want %q", tt.inline, tt.file, err, tt.wantErr)
			}
			continue
		}
		if err != nil || s.Reveal() != tt.want {
			t.Errorf("Load(%q, %q) = %q, %v; want %q", tt.inline, tt.file, s.Reveal(), err, tt.want)
		}
	}
}
