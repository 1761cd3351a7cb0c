package mailer

import (
	"bytes"
	"embed"
	"fmt"
	htemplate "html/template"
	"net/mail"
	"os"
	"strings"
	ttemplate "text/template"
	"time"
)

// TemplateData is what an onboarding message's templates see: the person's fields,
// the application's name, and the link that lets them in.
type TemplateData struct {
	FirstName, LastName, DisplayName, Username, Email string
	Application                                       string
	// Link is a credential: it goes into the message and nowhere else.
	Link string
	// Expires is when the link stops working; zero when the application does not say.
	Expires time.Time
}

// ExpiresOn is Expires as a date ("5 December 2026"), or "" when it is not known: for
// templates, {{with .ExpiresOn}}...{{end}}.
func (d TemplateData) ExpiresOn() string {
	if d.Expires.IsZero() {
		return ""
	}
	return d.Expires.Format("2 January 2006")
}

//go:embed templates
var defaults embed.FS

// TemplateConfig names a sink's templates; each empty one is the shipped default
// (templates/welcome.txt and welcome.html, and the subject below).
type TemplateConfig struct {
	Subject  string `yaml:"subject"`
	TextFile string `yaml:"text_template"`
	HTMLFile string `yaml:"html_template"`
}

// DefaultSubject is the subject when none is configured.
const DefaultSubject = "Your account in {{.Application}}"

// Templates render an onboarding message: the subject and text part with text/template,
// the HTML part with html/template, which escapes every value for its place (a name
// in the text, the link in href).
type Templates struct {
	subject, text *ttemplate.Template
	html          *htemplate.Template
}

// LoadTemplates parses the configured templates, or the defaults. A template that
// does not parse, or fails on sample data (an unknown field, say), is an error naming
// its file.
func LoadTemplates(c TemplateConfig) (*Templates, error) {
	read := func(file, def string) (string, string, error) {
		if file == "" {
			b, err := defaults.ReadFile("templates/" + def)
			return "(default) " + def, string(b), err
		}
		b, err := os.ReadFile(file)
		return file, string(b), err
	}
	t := &Templates{}
	subject := c.Subject
	if subject == "" {
		subject = DefaultSubject
	}
	var err error
	if t.subject, err = ttemplate.New("subject").Option("missingkey=error").Parse(subject); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	name, src, err := read(c.TextFile, "welcome.txt")
	if err != nil {
		return nil, fmt.Errorf("text_template: %w", err)
	}
	if t.text, err = ttemplate.New(name).Option("missingkey=error").Parse(src); err != nil {
		return nil, fmt.Errorf("text_template %s: %w", name, err)
	}
	name, src, err = read(c.HTMLFile, "welcome.html")
	if err != nil {
		return nil, fmt.Errorf("html_template: %w", err)
	}
	if t.html, err = htemplate.New(name).Option("missingkey=error").Parse(src); err != nil {
		return nil, fmt.Errorf("html_template %s: %w", name, err)
	}
	// Rendered once now, so that a template using a field that does not exist fails
	// when the configuration is loaded, not when someone is waiting for the message.
	sample := TemplateData{FirstName: "Ada", LastName: "Lovelace", Username: "ada", Email: "ada@example.org",
		Application: "Example", Link: "https://example.org/welcome/1", Expires: time.Now()}
	if _, err := t.Render(sample); err != nil {
		return nil, err
	}
	return t, nil
}

// Render makes the message of d, to d's email. A subject is one line.
func (t *Templates) Render(d TemplateData) (Message, error) {
	var subj, text, html bytes.Buffer
	if err := t.subject.Execute(&subj, d); err != nil {
		return Message{}, fmt.Errorf("subject: %w", err)
	}
	if err := t.text.Execute(&text, d); err != nil {
		return Message{}, fmt.Errorf("text template %s: %w", t.text.Name(), err)
	}
	if err := t.html.Execute(&html, d); err != nil {
		return Message{}, fmt.Errorf("html template %s: %w", t.html.Name(), err)
	}
	name := strings.TrimSpace(d.FirstName + " " + d.LastName)
	if name == "" {
		name = d.DisplayName
	}
	return Message{
		To:      mail.Address{Name: name, Address: d.Email},
		Subject: strings.Join(strings.Fields(subj.String()), " "),
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}
