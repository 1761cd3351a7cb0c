package main

import (
	"log/slog"

	"github.com/idsync/idsync/internal/httpapi"
	"github.com/idsync/idsync/sinks/descope"
	"github.com/idsync/idsync/sinks/domo"
	"github.com/idsync/idsync/sinks/haplo"
	"github.com/idsync/idsync/sinks/icure"
	"github.com/idsync/idsync/sinks/scim"
	dsync "github.com/idsync/idsync/sync"
)

// sinkTypes names the sink types for error messages.
const sinkTypes = "haplo, scim, descope, domo or icure"

// appSink is what build needs of a sink.
type appSink interface {
	dsync.Sink
	Concurrency() int
}

// sinkKind is one type section of a sink's configuration: how to check it, its secret
// files, and how to build the sink.
type sinkKind struct {
	name     string
	validate func(path string) []error
	// files are the section's *_file secrets, resolved against the config's directory.
	files []*string
	// canDelete: the application's API can delete accounts (delete_after is allowed).
	canDelete bool
	// welcome: the sink can give a new account's link for idsync to email
	// (onboarding: email).
	welcome bool
	// native turns on the application's own invitations (onboarding: native).
	native func(o *OnboardingConfig)
	build  func(obs httpapi.Observer, log *slog.Logger) (appSink, error)
}

// kinds returns the type sections that are set; a valid sink has exactly one.
func (s *SinkConfig) kinds() []sinkKind {
	var ks []sinkKind
	if c := s.Haplo; c != nil {
		ks = append(ks, sinkKind{name: "haplo", validate: c.Validate, welcome: true,
			files: []*string{&c.UserAPIKeyFile, &c.ImportAPIKeyFile},
			build: func(obs httpapi.Observer, log *slog.Logger) (appSink, error) { return haplo.New(*c, nil, obs, log) }})
	}
	if c := s.SCIM; c != nil {
		ks = append(ks, sinkKind{name: "scim", validate: c.Validate, canDelete: true,
			files: []*string{&c.TokenFile, &c.PasswordFile},
			build: func(obs httpapi.Observer, log *slog.Logger) (appSink, error) { return scim.New(*c, nil, obs, log) }})
	}
	if c := s.Descope; c != nil {
		ks = append(ks, sinkKind{name: "descope", validate: c.Validate, canDelete: true,
			native: func(o *OnboardingConfig) { c.Invite, c.InviteURL, c.SendMail = true, o.InviteURL, o.SendMail },
			files:  []*string{&c.ManagementKeyFile},
			build:  func(obs httpapi.Observer, log *slog.Logger) (appSink, error) { return descope.New(*c, nil, obs, log) }})
	}
	if c := s.Domo; c != nil {
		ks = append(ks, sinkKind{name: "domo", validate: c.Validate, canDelete: true,
			native: func(*OnboardingConfig) { c.SendInvite = true },
			files:  []*string{&c.ClientSecretFile},
			build:  func(obs httpapi.Observer, log *slog.Logger) (appSink, error) { return domo.New(*c, nil, obs, log) }})
	}
	if c := s.ICure; c != nil {
		ks = append(ks, sinkKind{name: "icure", validate: c.Validate, canDelete: true, welcome: true,
			files: []*string{&c.PasswordFile},
			build: func(obs httpapi.Observer, log *slog.Logger) (appSink, error) { return icure.New(*c, nil, obs, log) }})
	}
	return ks
}
