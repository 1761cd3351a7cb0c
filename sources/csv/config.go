package csv

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Config is a CSV source's section of the config file.
type Config struct {
	// Path is the CSV file. Required. It is opened by each Read, never before, so it
	// need not exist when the config is checked.
	Path string `yaml:"path"`
	// Delimiter is the one character between fields: "," by default; "\t" (a tab, or
	// the two characters backslash and t) for tab-separated files.
	Delimiter string `yaml:"delimiter"`
	// Columns maps each identity field to the header of the column that holds it.
	Columns Columns `yaml:"columns"`
	// Attributes maps profile attribute names to headers.
	Attributes map[string]string `yaml:"attributes"`
	// Active lists the values of the active column that mean active and inactive.
	Active ActiveConfig `yaml:"active"`
	// GroupSeparator separates the groups in the groups column: ";" by default.
	GroupSeparator string `yaml:"group_separator"`
}

// Columns maps identity fields to header names. Headers match case-insensitively,
// after trimming spaces. ID and Email are required, the others optional.
type Columns struct {
	ID          string `yaml:"id"`
	Username    string `yaml:"username"`
	Email       string `yaml:"email"`
	FirstName   string `yaml:"first_name"`
	LastName    string `yaml:"last_name"`
	DisplayName string `yaml:"display_name"`
	// Active, when not set, makes every row active.
	Active string `yaml:"active"`
	Groups string `yaml:"groups"`
}

// ActiveConfig lists the values of the active column, matched case-insensitively after
// trimming spaces. A value in neither list is a problem with that row, never a guess.
// Each list left empty takes its default.
type ActiveConfig struct {
	True  []string `yaml:"true"`  // default: true, yes, 1, active
	False []string `yaml:"false"` // default: false, no, 0, inactive, disabled
}

var (
	defaultActiveTrue  = []string{"true", "yes", "1", "active"}
	defaultActiveFalse = []string{"false", "no", "0", "inactive", "disabled"}
)

const (
	defaultDelimiter      = ","
	defaultGroupSeparator = ";"
)

// withDefaults returns a copy of c with defaults in place of unset settings and header
// names trimmed.
func (c *Config) withDefaults() Config {
	d := *c
	if d.Delimiter == "" {
		d.Delimiter = defaultDelimiter
	}
	if d.GroupSeparator == "" {
		d.GroupSeparator = defaultGroupSeparator
	}
	if len(d.Active.True) == 0 {
		d.Active.True = slices.Clone(defaultActiveTrue)
	}
	if len(d.Active.False) == 0 {
		d.Active.False = slices.Clone(defaultActiveFalse)
	}
	col := &d.Columns
	for _, h := range []*string{&col.ID, &col.Username, &col.Email, &col.FirstName,
		&col.LastName, &col.DisplayName, &col.Active, &col.Groups} {
		*h = strings.TrimSpace(*h)
	}
	if c.Attributes != nil {
		d.Attributes = make(map[string]string, len(c.Attributes))
		for name, h := range c.Attributes {
			d.Attributes[name] = strings.TrimSpace(h)
		}
	}
	return d
}

// use is one place where the config names a header.
type use struct {
	key    string // config path below the source: "columns.email", "attributes.title"
	header string
}

// uses lists the headers the config names, identity columns first, then attributes by
// name. Unset optional columns are left out.
func (c *Config) uses() []use {
	col := c.Columns
	var us []use
	for _, u := range []use{
		{"columns.id", col.ID},
		{"columns.username", col.Username},
		{"columns.email", col.Email},
		{"columns.first_name", col.FirstName},
		{"columns.last_name", col.LastName},
		{"columns.display_name", col.DisplayName},
		{"columns.active", col.Active},
		{"columns.groups", col.Groups},
	} {
		if u.header != "" {
			us = append(us, u)
		}
	}
	for _, name := range sortedKeys(c.Attributes) {
		if h := c.Attributes[name]; h != "" {
			us = append(us, use{"attributes." + name, h})
		}
	}
	return us
}

// Validate reports every problem with the config at once, each prefixed with the
// config path it concerns: path is this section's ("sources[0].csv"). Unset settings
// are checked as their defaults. Validate does not touch the file system.
func (c *Config) Validate(path string) []error {
	d := c.withDefaults()
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", at(path, key), fmt.Sprintf(format, args...)))
	}

	if strings.TrimSpace(d.Path) == "" {
		add("path", "required")
	}
	if _, err := delimiter(d.Delimiter); err != nil {
		add("delimiter", "%v", err)
	}
	if d.Columns.ID == "" {
		add("columns.id", "required")
	}
	if d.Columns.Email == "" {
		add("columns.email", "required")
	}
	for _, name := range sortedKeys(d.Attributes) {
		switch {
		case strings.TrimSpace(name) == "":
			add("attributes", "attribute name must not be empty")
		case d.Attributes[name] == "":
			add("attributes."+name, "required")
		}
	}

	// Headers match case-insensitively, so "Email" and "email" are the same column.
	seen := make(map[string]string)
	for _, u := range d.uses() {
		k := headerKey(u.header)
		if prev, ok := seen[k]; ok && !loginByEmail(prev, u.key) {
			add(u.key, "header %q is also used for %s", u.header, prev)
			continue
		}
		seen[k] = u.key
	}

	falses := make(map[string]bool, len(d.Active.False))
	for _, v := range d.Active.False {
		falses[activeKey(v)] = true
	}
	reported := make(map[string]bool)
	for _, v := range d.Active.True {
		k := activeKey(v)
		if falses[k] && !reported[k] {
			reported[k] = true
			add("active", "%q is listed in both true and false", v)
		}
	}
	return errs
}

// delimiter returns the rune the delimiter setting names.
func delimiter(s string) (rune, error) {
	if s == `\t` {
		return '\t', nil
	}
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case size == 0 || size != len(s) || r == utf8.RuneError:
		return 0, fmt.Errorf("must be one character, got %q", s)
	case r == '"' || r == '\r' || r == '\n' || r == 0:
		return 0, fmt.Errorf("cannot be %q", s)
	}
	return r, nil
}

// at joins a config path and a key below it.
func at(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// headerKey is what header names are matched on.
func headerKey(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

// activeKey is what active values are matched on.
func activeKey(v string) string { return strings.ToLower(strings.TrimSpace(v)) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// loginByEmail reports whether two config keys are the username and the email, which
// may share a column: many people log in with their email address.
func loginByEmail(a, b string) bool {
	return a == "columns.username" && b == "columns.email" || a == "columns.email" && b == "columns.username"
}
