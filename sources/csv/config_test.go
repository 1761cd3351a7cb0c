package csv

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func TestValidate(t *testing.T) {
	valid := func() Config {
		return Config{
			Path:    "people.csv",
			Columns: Columns{ID: "employee_id", Email: "email"},
		}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"valid", func(*Config) {}, nil},
		{"valid with everything", func(c *Config) {
			c.Delimiter = "\t"
			c.Columns = Columns{ID: "id", Username: "login", Email: "mail", FirstName: "given",
				LastName: "family", DisplayName: "name", Active: "status", Groups: "teams"}
			c.Attributes = map[string]string{"title": "job_title", "phone": "phone"}
			c.Active = ActiveConfig{True: []string{"active"}, False: []string{"left"}}
			c.GroupSeparator = "|"
		}, nil},
		{"backslash t is a tab", func(c *Config) { c.Delimiter = `\t` }, nil},
		{"one non-ASCII character", func(c *Config) { c.Delimiter = "§" }, nil},
		{"empty", func(c *Config) { *c = Config{} }, []string{
			"sources[0].csv.path: required",
			"sources[0].csv.columns.id: required",
			"sources[0].csv.columns.email: required",
		}},
		{"blank header names", func(c *Config) { c.Path = " "; c.Columns.ID = "  " }, []string{
			"sources[0].csv.path: required",
			"sources[0].csv.columns.id: required",
		}},
		{"two-character delimiter", func(c *Config) { c.Delimiter = ";;" },
			[]string{`sources[0].csv.delimiter: must be one character, got ";;"`}},
		{"quote as delimiter", func(c *Config) { c.Delimiter = `"` },
			[]string{`sources[0].csv.delimiter: cannot be "\""`}},
		{"newline as delimiter", func(c *Config) { c.Delimiter = "\n" },
			[]string{`sources[0].csv.delimiter: cannot be "\n"`}},
		{"invalid UTF-8 delimiter", func(c *Config) { c.Delimiter = "\xff" },
			[]string{`sources[0].csv.delimiter: must be one character, got "\xff"`}},
		{"header used twice", func(c *Config) { c.Columns.FirstName = "Email " }, []string{
			`sources[0].csv.columns.first_name: header "Email" is also used for columns.email`,
		}},
		{"username and email may share a header", func(c *Config) { c.Columns.Username = "Email " }, nil},
		{"header used by a column and an attribute", func(c *Config) {
			c.Attributes = map[string]string{"id": "EMPLOYEE_ID"}
		}, []string{
			`sources[0].csv.attributes.id: header "EMPLOYEE_ID" is also used for columns.id`,
		}},
		{"attribute without header", func(c *Config) { c.Attributes = map[string]string{"title": ""} },
			[]string{"sources[0].csv.attributes.title: required"}},
		{"attribute without name", func(c *Config) { c.Attributes = map[string]string{"": "title"} },
			[]string{"sources[0].csv.attributes: attribute name must not be empty"}},
		{"active value in both lists", func(c *Config) {
			c.Active = ActiveConfig{True: []string{"active", "Yes"}, False: []string{"left", " yes"}}
		}, []string{`sources[0].csv.active: "Yes" is listed in both true and false`}},
		{"active value in both lists, with a default", func(c *Config) {
			c.Active = ActiveConfig{False: []string{"1"}}
		}, []string{`sources[0].csv.active: "1" is listed in both true and false`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mod(&c)
			var got []string
			for _, err := range c.Validate("sources[0].csv") {
				got = append(got, err.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateWithoutPath(t *testing.T) {
	c := Config{Columns: Columns{ID: "id", Email: "email"}}
	errs := c.Validate("")
	if len(errs) != 1 || errs[0].Error() != "path: required" {
		t.Errorf("got %v, want [path: required]", errs)
	}
}

func TestNew(t *testing.T) {
	// New must not open the file: it need not exist yet.
	path := filepath.Join(t.TempDir(), "absent.csv")
	s, err := New("hr", Config{Path: path, Columns: Columns{ID: "id", Email: "email"}}, nil)
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	if s.comma != ',' || s.cfg.GroupSeparator != ";" {
		t.Errorf("got delimiter %q and group separator %q, want defaults", s.comma, s.cfg.GroupSeparator)
	}
	for _, v := range []string{"true", "yes", "1", "active"} {
		if a, ok := s.active[v]; !ok || !a {
			t.Errorf("active %q: got %v, %v, want true, true", v, a, ok)
		}
	}
	for _, v := range []string{"false", "no", "0", "inactive", "disabled"} {
		if a, ok := s.active[v]; !ok || a {
			t.Errorf("active %q: got %v, %v, want false, true", v, a, ok)
		}
	}

	_, err = New("hr", Config{Delimiter: "ab"}, nil)
	if err == nil {
		t.Fatal("got no error, want one")
	}
	for _, want := range []string{"path: required", "delimiter: must be one character", "columns.id: required", "columns.email: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	}
}

// TestConfigYAML checks the yaml tags: the config is decoded with unknown keys as
// errors.
func TestConfigYAML(t *testing.T) {
	const doc = `
path: ./people.csv
delimiter: "\t"
columns:
  id: employee_id
  username: login
  email: email
  first_name: given_name
  last_name: family_name
  display_name: name
  active: status
  groups: teams
attributes:
  title: job_title
active:
  true: [active]
  false: [left]
group_separator: "|"
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var got Config
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Path:      "./people.csv",
		Delimiter: "\t",
		Columns: Columns{ID: "employee_id", Username: "login", Email: "email", FirstName: "given_name",
			LastName: "family_name", DisplayName: "name", Active: "status", Groups: "teams"},
		Attributes:     map[string]string{"title": "job_title"},
		Active:         ActiveConfig{True: []string{"active"}, False: []string{"left"}},
		GroupSeparator: "|",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded config (-want +got):\n%s", diff)
	}
	if errs := got.Validate(""); len(errs) > 0 {
		t.Errorf("got %v, want no errors", errs)
	}

	dec = yaml.NewDecoder(strings.NewReader("path: x\ncolumns: {id: a, mail: b}\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err == nil {
		t.Error("unknown key columns.mail: got no error, want one")
	}
}
