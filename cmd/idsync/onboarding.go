package main

import (
	"context"
	"fmt"

	"github.com/idsync/idsync/internal/mailer"
	dsync "github.com/idsync/idsync/sync"
)

// emailInviter is a sink's onboarding by email: the link the sink gave for a new
// account, rendered into the sink's templates and sent through the smtp section's
// server.
type emailInviter struct {
	mail        *mailer.Mailer
	templates   *mailer.Templates
	application string
}

func (i *emailInviter) Invite(ctx context.Context, p dsync.Identity, inv dsync.Invite) error {
	msg, err := i.templates.Render(mailer.TemplateData{
		FirstName: p.FirstName, LastName: p.LastName, DisplayName: p.DisplayName, Username: p.Username, Email: p.Email,
		Application: i.application, Link: inv.Link, Expires: inv.Expires,
	})
	if err != nil {
		return fmt.Errorf("onboarding message: %w", err)
	}
	return i.mail.Send(ctx, msg)
}

// inviters builds each sink's Inviter (nil for a sink without onboarding: email), with
// one Mailer for all.
func inviters(cfg *Config) (map[string]dsync.Inviter, error) {
	out := map[string]dsync.Inviter{}
	var m *mailer.Mailer
	for i, s := range cfg.Sinks {
		o := s.Onboarding
		if o == nil || o.Channel != "email" {
			continue
		}
		if m == nil {
			var err error
			if m, err = mailer.New(*cfg.SMTP); err != nil {
				return nil, err
			}
		}
		t, err := mailer.LoadTemplates(o.TemplateConfig)
		if err != nil {
			return nil, fmt.Errorf("sinks[%d].onboarding: %w", i, err)
		}
		out[s.Name] = &emailInviter{mail: m, templates: t, application: cmpOr(o.Application, s.Name)}
	}
	return out, nil
}
