package mailer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultTemplates(t *testing.T) {
	tpl, err := LoadTemplates(TemplateConfig{})
	if err != nil {
		t.Fatal(err)
	}
	link := "https://app.example.org/do/authentication/welcome/42/abc?x=1&y=2"
	d := TemplateData{FirstName: "<script>alert(1)</script>", LastName: "O'Hara", Username: "zoh", Email: "zoe@example.org",
		Application: "Haplo", Link: link, Expires: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	m, err := tpl.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Your account in Haplo" || m.To.Address != "zoe@example.org" || m.To.Name != "<script>alert(1)</script> O'Hara" {
		t.Errorf("subject %q, to %v", m.Subject, m.To)
	}
	for _, want := range []string{link, "username zoh", "until 5 December 2026", "Hello <script>"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{`<a href="https://app.example.org/do/authentication/welcome/42/abc?x=1&amp;y=2">`, "Hello &lt;script&gt;alert(1)&lt;/script&gt;,", "<strong>zoh</strong>"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("html part lacks %q:\n%s", want, m.HTML)
		}
	}
	if strings.Contains(m.HTML, "<script>") {
		t.Error("a name reached the HTML unescaped")
	}
	d.Expires = time.Time{}
	if m, _ := tpl.Render(d); !strings.Contains(m.Text, "The link works once. If") {
		t.Errorf("without an expiry:\n%s", m.Text)
	}
}

func TestTemplateOverrides(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	tpl, err := LoadTemplates(TemplateConfig{Subject: "Welcome, {{.FirstName}}\nBcc: evil@example.org",
		TextFile: write("t.txt", "Hi {{.FirstName}}: {{.Link}}"), HTMLFile: write("h.html", `<a href="{{.Link}}">{{.FirstName}}</a>`)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := tpl.Render(TemplateData{FirstName: "Ann", Email: "ann@example.org", Link: "https://x/1"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Welcome, Ann Bcc: evil@example.org" || m.Text != "Hi Ann: https://x/1" || m.HTML != `<a href="https://x/1">Ann</a>` {
		t.Errorf("got %+v", m)
	}
	for _, tt := range []struct {
		cfg  TemplateConfig
		want string
	}{
		{TemplateConfig{TextFile: write("bad.txt", "{{.Link")}, "text_template " + filepath.Join(dir, "bad.txt")},
		{TemplateConfig{HTMLFile: write("field.html", "{{.Password}}")}, "can't evaluate field Password"},
		{TemplateConfig{TextFile: filepath.Join(dir, "missing.txt")}, "text_template: open"},
		{TemplateConfig{Subject: "{{.Nope}}"}, "subject"},
	} {
		if _, err := LoadTemplates(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
