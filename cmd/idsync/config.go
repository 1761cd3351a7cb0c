package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/idsync/idsync/internal/mailer"
	"github.com/idsync/idsync/internal/secret"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/idsync/idsync/sinks/descope"
	"github.com/idsync/idsync/sinks/domo"
	"github.com/idsync/idsync/sinks/haplo"
	"github.com/idsync/idsync/sinks/icure"
	"github.com/idsync/idsync/sinks/scim"
	"github.com/idsync/idsync/sources/csv"
	"github.com/idsync/idsync/sources/ldap"
	dsync "github.com/idsync/idsync/sync"
)

// Config is the whole configuration file.
type Config struct {
	StatePath string         `yaml:"state_path"`
	Schedule  string         `yaml:"schedule"`
	Listen    string         `yaml:"listen"`
	Safety    SafetyConfig   `yaml:"safety"`
	Sources   []SourceConfig `yaml:"sources"`
	Sinks     []SinkConfig   `yaml:"sinks"`
	// DrainTimeout is how long operations in flight may finish after a stop signal.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// LockTimeout is how long to wait for the state file's lock.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// UnreadyAfter: /readyz fails once runs have been failing for this long.
	UnreadyAfter time.Duration `yaml:"unready_after"`
	// VerifyEvery: the daemon reads back the accounts it manages this often, before
	// a run, so that the run repairs what was changed by hand. 0 turns it off.
	VerifyEvery time.Duration `yaml:"verify_every"`
	// StatusToken, when set, is asked of every request to the status page and the
	// /api/ endpoints (Authorization: Bearer, or ?token= for a browser's first visit).
	// /metrics, /healthz and /readyz stay open, for Prometheus and probes.
	StatusToken     string `yaml:"status_token"`
	StatusTokenFile string `yaml:"status_token_file"`
	// SMTP is the mail server onboarding emails go through (sinks' onboarding: email).
	SMTP *mailer.Config `yaml:"smtp"`
}

// statusToken loads the status page's token: empty when none is configured.
func (c *Config) statusToken() (secret.Secret, error) {
	if c.StatusToken == "" && c.StatusTokenFile == "" {
		return secret.Secret{}, nil
	}
	return secret.Load("status_token", c.StatusToken, c.StatusTokenFile)
}

// SafetyConfig is the guards' section; an unset key takes DESIGN.md's default, and -1
// turns a count or percentage guard off.
type SafetyConfig struct {
	MaxDisables       *int     `yaml:"max_disables"`
	MaxDisablePercent *float64 `yaml:"max_disable_percent"`
	MaxDeletes        *int     `yaml:"max_deletes"`
	MinSourceRatio    *float64 `yaml:"min_source_ratio"`
}

// SourceConfig is one source: a name and exactly one type section.
type SourceConfig struct {
	Name string       `yaml:"name"`
	CSV  *csv.Config  `yaml:"csv"`
	LDAP *ldap.Config `yaml:"ldap"`
}

// SinkConfig is one sink: a name and exactly one type section, with optional
// per-sink safety limits over the global ones.
type SinkConfig struct {
	Name   string        `yaml:"name"`
	Safety *SafetyConfig `yaml:"safety"`
	// CircuitBreaker: after this many operations failed in a row, nothing more is
	// sent to the sink in this run (default 10; 0 turns it off).
	CircuitBreaker *int `yaml:"circuit_breaker"`
	// DeleteAfter turns deletes on: an account idsync disabled at least this long
	// ago is deleted (sinks that can delete only; max_deletes must allow it).
	DeleteAfter time.Duration `yaml:"delete_after"`
	// Onboarding is how a new account's person gets in (README "Onboarding").
	Onboarding *OnboardingConfig `yaml:"onboarding"`
	// The type section: exactly one (sinks.go lists them).
	Haplo   *haplo.Config   `yaml:"haplo"`
	SCIM    *scim.Config    `yaml:"scim"`
	Descope *descope.Config `yaml:"descope"`
	Domo    *domo.Config    `yaml:"domo"`
	ICure   *icure.Config   `yaml:"icure"`
}

// OnboardingConfig is a sink's onboarding section.
type OnboardingConfig struct {
	// Channel is none (the default); native, the application's own invitation (Domo's
	// sendInvite, Descope's invite); or email: idsync emails the link the sink gives
	// for a new account (Haplo's welcome link).
	Channel string `yaml:"channel"`
	// Application names the application in the message; default the sink's name.
	Application           string `yaml:"application"`
	mailer.TemplateConfig `yaml:",inline"`
	// InviteURL and SendMail are Descope's, for native: the invitation link's base,
	// and whether Descope emails it (default true).
	InviteURL string `yaml:"invite_url"`
	SendMail  *bool  `yaml:"send_mail"`
	// InviteAdopted also invites the people of accounts idsync adopts rather than
	// makes: iCure only (a new token); Haplo gives a link only with a create.
	InviteAdopted bool `yaml:"invite_adopted"`
}

// applyOnboarding turns onboarding: native into the sink's own settings.
func (c *Config) applyOnboarding() {
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if s.Onboarding != nil && s.Onboarding.InviteAdopted && s.ICure != nil {
			s.ICure.InviteAdopted = true
		}
		if s.Onboarding == nil || s.Onboarding.Channel != "native" {
			continue
		}
		for _, k := range s.kinds() {
			if k.native != nil {
				k.native(s.Onboarding)
			}
		}
	}
}

// breakAfter is the sink's circuit breaker threshold.
func (s *SinkConfig) breakAfter() int {
	if s.CircuitBreaker == nil {
		return 10
	}
	return *s.CircuitBreaker
}

var (
	namePattern   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	unknownField  = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)
	yamlLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)
	envReference  = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)
	cronParser    = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	defaultListen = "127.0.0.1:9464"
)

// LoadConfig reads, expands and validates a configuration file, and reports every
// problem at once, each with its file and line or key path.
//
// ${VAR} is expanded from the environment in values only, after parsing, so that a
// value cannot change the file's structure; an unset variable is an error, unless a
// default is given: ${VAR:-default}.
func LoadConfig(path string) (*Config, error) {
	var subs []substitution
	cfg, err := loadConfig(path, &subs)
	if err != nil {
		return nil, redact(err, subs)
	}
	return cfg, nil
}

// substitution is a value ${Name} put in the configuration.
type substitution struct{ name, value string }

// redact writes ${NAME} in an error wherever it shows a value taken from the
// environment (or the first characters yaml quotes of one): a secret referenced in a
// field that is checked must not end up in a log or on a terminal.
func redact(err error, subs []substitution) error {
	msg := err.Error()
	changed := false
	for _, s := range subs {
		if len(s.value) < 4 {
			continue // too short to be a secret, too common to replace
		}
		forms := []string{s.value}
		if len(s.value) > 7 {
			forms = append(forms, s.value[:7]) // yaml's type errors quote 7 characters
		}
		for _, f := range forms {
			if strings.Contains(msg, f) {
				msg, changed = strings.ReplaceAll(msg, f, "${"+s.name+"}"), true
			}
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}

func loadConfig(path string, subs *[]substitution) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	name := filepath.Base(path)
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, errors.New(withFile(name, err.Error()))
	}
	var errs []error
	// Unknown keys: yaml.v3 checks them only in Decoder.Decode, not Node.Decode, so
	// decode the raw text once for them (keys are never expanded).
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var typeErr *yaml.TypeError
	if err := dec.Decode(new(Config)); errors.As(err, &typeErr) {
		for _, msg := range typeErr.Errors {
			if m := unknownField.FindStringSubmatch(msg); m != nil {
				errs = append(errs, fmt.Errorf("%s:%s: unknown key %q", name, m[1], m[2]))
			}
		}
	}
	errs = append(errs, expandEnv(&root, name, subs)...)
	var cfg Config
	if err := root.Decode(&cfg); errors.As(err, &typeErr) {
		for _, msg := range typeErr.Errors {
			if !unknownField.MatchString(msg) {
				errs = append(errs, errors.New(withFile(name, msg)))
			}
		}
	} else if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.setDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.resolvePaths(filepath.Dir(path))
	cfg.applyOnboarding()
	return &cfg, nil
}

// resolvePaths makes relative paths relative to the configuration file's folder.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.StatePath)
	abs(&c.StatusTokenFile)
	if c.SMTP != nil {
		abs(&c.SMTP.PasswordFile)
		abs(&c.SMTP.CAFile)
	}
	for _, s := range c.Sources {
		if s.CSV != nil {
			abs(&s.CSV.Path)
		}
		if s.LDAP != nil {
			abs(&s.LDAP.CAFile)
			abs(&s.LDAP.BindPasswordFile)
		}
	}
	for _, s := range c.Sinks {
		for _, k := range s.kinds() {
			for _, f := range k.files {
				abs(f)
			}
		}
		if o := s.Onboarding; o != nil {
			abs(&o.TextFile)
			abs(&o.HTMLFile)
		}
	}
}

// withFile turns yaml's "line 7: ..." into "config.yaml:7: ...".
func withFile(name, msg string) string {
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		return name + ":" + msg[m[2]:m[3]] + ": " + msg[m[1]:]
	}
	return name + ": " + msg
}

// expandEnv replaces ${VAR} in every scalar value, and records what it put in.
func expandEnv(n *yaml.Node, file string, subs *[]substitution) []error {
	var errs []error
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = envReference.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envReference.FindStringSubmatch(ref)
			v, ok := os.LookupEnv(m[1])
			switch {
			case ok && v != "":
				*subs = append(*subs, substitution{m[1], v})
				return v
			case m[2] != "": // ${VAR:-default}
				return m[2][2:]
			case !ok:
				errs = append(errs, fmt.Errorf("%s:%d: environment variable %s is not set", file, n.Line, m[1]))
			}
			return v
		})
		if n.Style == 0 {
			n.Tag = "" // a plain value resolves again: ${MAX} may be a number
		}
		return errs
	}
	for i, c := range n.Content {
		// Keys (even positions of a mapping) are never expanded.
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue
		}
		errs = append(errs, expandEnv(c, file, subs)...)
	}
	return errs
}

func (c *Config) setDefaults() {
	if c.StatePath == "" {
		c.StatePath = "./idsync.db"
	}
	if c.Schedule == "" {
		c.Schedule = "@every 15m"
	}
	if c.Listen == "" {
		c.Listen = defaultListen
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = time.Second
	}
	if c.UnreadyAfter == 0 {
		c.UnreadyAfter = time.Hour
	}
}

// Validate returns every problem, each with its key path.
func (c *Config) Validate() []error {
	var errs []error
	bad := func(path, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{path}, a...)...))
	}
	if _, err := cronParser.Parse(c.Schedule); err != nil {
		bad("schedule", "%q: %v", c.Schedule, err)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q: %v", c.Listen, err)
	}
	if c.DrainTimeout < 0 {
		bad("drain_timeout", "must be positive")
	}
	if c.LockTimeout < 0 {
		bad("lock_timeout", "must be positive")
	}
	if c.UnreadyAfter < 0 {
		bad("unready_after", "must be positive")
	}
	if c.VerifyEvery < 0 {
		bad("verify_every", "must be positive, or 0 for never")
	}
	if _, err := c.statusToken(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Safety.validate("safety")...)
	if len(c.Sources) == 0 {
		bad("sources", "at least one source is required")
	}
	if len(c.Sinks) == 0 {
		bad("sinks", "at least one sink is required")
	}
	names := map[string]string{}
	checkName := func(path, name string) {
		switch prev, dup := names[name]; {
		case name == "":
			bad(path+".name", "required")
		case !namePattern.MatchString(name):
			bad(path+".name", "%q: lowercase letters, digits, - and _, starting with a letter", name)
		case dup:
			bad(path+".name", "%q is already the name of %s", name, prev)
		default:
			names[name] = path
		}
	}
	for i, s := range c.Sources {
		path := fmt.Sprintf("sources[%d]", i)
		checkName(path, s.Name)
		switch {
		case s.CSV != nil && s.LDAP != nil:
			bad(path, "one type only: csv or ldap")
		case s.CSV != nil:
			errs = append(errs, s.CSV.Validate(path+".csv")...)
		case s.LDAP != nil:
			errs = append(errs, s.LDAP.Validate(path+".ldap")...)
		default:
			bad(path, "needs a type: csv or ldap")
		}
	}
	for i, s := range c.Sinks {
		path := fmt.Sprintf("sinks[%d]", i)
		checkName(path, s.Name)
		if s.Safety != nil {
			errs = append(errs, s.Safety.validate(path+".safety")...)
		}
		if s.DeleteAfter < 0 {
			bad(path+".delete_after", "must be positive")
		}
		kinds := s.kinds()
		if s.CircuitBreaker != nil && *s.CircuitBreaker < 0 {
			bad(path+".circuit_breaker", "%d: failures in a row, or 0 for no breaker", *s.CircuitBreaker)
		}
		switch len(kinds) {
		case 0:
			bad(path, "needs a type: "+sinkTypes)
			continue
		case 1:
		default:
			bad(path, "one type only: "+sinkTypes)
			continue
		}
		k := kinds[0]
		errs = append(errs, k.validate(path+"."+k.name)...)
		if s.DeleteAfter > 0 && !k.canDelete {
			bad(path+".delete_after", "%s's API cannot delete accounts: leave delete_after out", k.name)
		}
		if s.Domo != nil && s.Domo.DisableAction == "delete" && s.DeleteAfter == 0 {
			bad(path+".delete_after", "required with domo.disable_action: delete: the grace period before a leaver's account is deleted")
		}
		if o := s.Onboarding; o != nil {
			switch o.Channel {
			case "", "none":
			case "email":
				if !k.welcome {
					bad(path+".onboarding.channel", "email: %s gives idsync no link to send (haplo and icure do; native for the application's own invitations)", k.name)
				}
				if c.SMTP == nil {
					bad(path+".onboarding.channel", "email needs the smtp section")
				}
				if s.ICure != nil && s.ICure.InviteLink == "" {
					bad(path+".icure.invite_link", "required with onboarding: email: the link, with {token}, that the email carries")
				}
			case "native":
				if k.native == nil {
					bad(path+".onboarding.channel", "native: %s sends no invitations of its own (email, where the sink supports it)", k.name)
				}
			default:
				bad(path+".onboarding.channel", "%q: none, native or email", o.Channel)
			}
			if o.InviteAdopted && (s.ICure == nil || o.Channel != "email") {
				bad(path+".onboarding.invite_adopted", "only iCure, by email, can invite the person of an account idsync did not make (a new token)")
			}
		}
	}
	if c.SMTP != nil {
		errs = append(errs, c.SMTP.Validate("smtp")...)
	}
	return errs
}

func (s *SafetyConfig) validate(path string) []error {
	var errs []error
	count := func(key string, v *int) {
		if v != nil && *v < -1 {
			errs = append(errs, fmt.Errorf("%s.%s: %d: a count, or -1 for no limit", path, key, *v))
		}
	}
	count("max_disables", s.MaxDisables)
	count("max_deletes", s.MaxDeletes)
	if v := s.MaxDisablePercent; v != nil && (*v < 0 && *v != -1 || *v > 100) {
		errs = append(errs, fmt.Errorf("%s.max_disable_percent: %g: between 0 and 100, or -1 for no limit", path, *v))
	}
	if v := s.MinSourceRatio; v != nil && (*v < 0 || *v > 1) {
		errs = append(errs, fmt.Errorf("%s.min_source_ratio: %g: between 0 and 1 (0 turns it off)", path, *v))
	}
	return errs
}

// resolve lays s over base.
func (s *SafetyConfig) resolve(base dsync.Safety) dsync.Safety {
	if s == nil {
		return base
	}
	if s.MaxDisables != nil {
		base.MaxDisables = *s.MaxDisables
	}
	if s.MaxDisablePercent != nil {
		base.MaxDisablePercent = *s.MaxDisablePercent
	}
	if s.MaxDeletes != nil {
		base.MaxDeletes = *s.MaxDeletes
	}
	if s.MinSourceRatio != nil {
		base.MinSourceRatio = *s.MinSourceRatio
	}
	return base
}

// secretFiles lists the configuration's *_file secrets.
func (c *Config) secretFiles() []string {
	var files []string
	if c.StatusTokenFile != "" {
		files = append(files, c.StatusTokenFile)
	}
	for _, s := range c.Sources {
		if s.LDAP != nil && s.LDAP.BindPasswordFile != "" {
			files = append(files, s.LDAP.BindPasswordFile)
		}
	}
	for _, s := range c.Sinks {
		for _, k := range s.kinds() {
			for _, f := range k.files {
				if *f != "" {
					files = append(files, *f)
				}
			}
		}
	}
	return files
}
