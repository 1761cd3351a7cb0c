package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// Settings are the HTTP settings every sink's configuration has; sinks embed them
// with `yaml:",inline"`.
type Settings struct {
	// Concurrency is how many identities are applied at once. Default 8.
	Concurrency int `yaml:"concurrency"`
	// Timeout bounds one HTTP request. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries bounds the retries of one request on network errors, 5xx and 429.
	// Default 5.
	MaxRetries *int `yaml:"max_retries"`
	// RateLimit caps requests per second, with bursts of Burst; 0 (the default)
	// leaves requests unlimited but for Concurrency.
	RateLimit float64 `yaml:"rate_limit"`
	Burst     int     `yaml:"burst"`
	// AllowInsecureHTTP permits an http:// URL that is not on loopback.
	AllowInsecureHTTP bool `yaml:"allow_insecure_http"`
}

// Validate returns the settings' problems, each prefixed with path (sinks[0].haplo).
func (s *Settings) Validate(path string) []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{path, key}, a...)...))
	}
	if s.Concurrency < 0 || s.Concurrency > 256 {
		bad("concurrency", "%d: between 1 and 256", s.Concurrency)
	}
	if s.Timeout < 0 {
		bad("timeout", "must be positive")
	}
	if s.MaxRetries != nil && (*s.MaxRetries < 0 || *s.MaxRetries > 20) {
		bad("max_retries", "%d: between 0 and 20", *s.MaxRetries)
	}
	if s.RateLimit < 0 {
		bad("rate_limit", "must be positive (requests per second), or 0 for no limit")
	}
	if s.Burst < 0 || s.Burst > 0 && s.RateLimit == 0 {
		bad("burst", "a positive number, with rate_limit")
	}
	return errs
}

// SetDefaults fills in what is not set.
func (s *Settings) SetDefaults() {
	if s.Concurrency == 0 {
		s.Concurrency = 8
	}
	if s.Timeout == 0 {
		s.Timeout = 30 * time.Second
	}
	if s.MaxRetries == nil {
		n := 5
		s.MaxRetries = &n
	}
}

// NewClient returns a client for base with these settings (SetDefaults first). hc may
// be nil for an http.Client made from the settings.
func (s *Settings) NewClient(base string, hc *http.Client, c Client) *Client {
	if hc == nil {
		hc = NewHTTPClient(s.Timeout, s.Concurrency)
	}
	c.Base, c.HTTP, c.MaxRetries = base, hc, *s.MaxRetries
	if s.RateLimit > 0 {
		c.Limit = rate.NewLimiter(rate.Limit(s.RateLimit), max(s.Burst, 1))
	}
	return New(c)
}
