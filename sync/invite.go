package sync

import (
	"context"
	"fmt"
	"slices"
)

// deliver hands the invitations of ids (this run's new accounts, and those an
// earlier run could not deliver) to the sink's Inviter, once each, after the sink's
// operations. The link is read from the snapshot, where the create put it, durably,
// before anything was sent: a crash loses no invitation, and a failed delivery is
// tried again next run without creating anything again. A delivered link is erased
// from the snapshot. One that expired first is erased too, and the person reported as
// needing a manual password reset. invitees holds this run's people as the sources
// gave them; the others are rendered from what idsync last applied.
//
// The error is for what stops the sink: the snapshot could not be read or written.
func (e *Engine) deliver(ctx context.Context, s SinkSpec, ids []string, invitees map[string]Identity, sum *SinkSummary) error {
	if s.Inviter == nil || len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	log := e.log.With("sink", s.Name)
	count := func(result string) {
		if sum.Invitations == nil {
			sum.Invitations = map[string]int{}
		}
		sum.Invitations[result]++
		e.opt.Metrics.invitation(s.Name, result)
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return nil // the rest stay pending, for the next run
		}
		en, ok, err := e.store.Entry(s.Name, id)
		if err != nil {
			return fmt.Errorf("invitation of %s: %w", id, err)
		}
		if !ok || en.Invite == nil {
			continue
		}
		now := e.opt.Now()
		switch {
		case en.User == nil || !en.User.Active:
			// Disabled before the link could go out: nobody to invite.
			en.Invite = nil
		case !en.Invite.Expires.IsZero() && !now.Before(en.Invite.Expires):
			en.Invite, en.InviteLapsed = nil, now
			count("expired")
			log.Warn("an invitation's link expired before it could be delivered: reset this person's password by hand", "id", id)
		default:
			person, ok := invitees[id]
			if !ok {
				person = lastApplied(en)
				person.Active = true
			}
			if err := s.Inviter.Invite(ctx, person, en.Invite.Invite); err != nil {
				en.Invite.Attempts++
				en.Invite.LastError = err.Error()
				count("failed")
				log.Warn("invitation not delivered: tried again on the next run", "id", id, "attempts", en.Invite.Attempts, "err", err)
			} else {
				en.Invite = nil
				count("sent")
			}
		}
		if err := e.store.Put(s.Name, en); err != nil {
			return fmt.Errorf("invitation of %s: %w", id, err)
		}
	}
	return nil
}
