package sync

import (
	"context"
	"fmt"
)

// Lister is a sink that can list the accounts idsync owns in it (marked with its own
// id tag), to rebuild a lost snapshot. The engine finds it by type assertion.
type Lister interface {
	// Owned returns an entry for every account the sink can find that carries
	// idsync's mark: its ids and its current user fields (Schema.User and Active).
	Owned(ctx context.Context) ([]Entry, error)
}

// RebuildCount is what a rebuild found in one sink.
type RebuildCount struct {
	Sink  string
	Found int // accounts carrying idsync's mark
	Added int // of those, the ones the snapshot did not know
}

// Rebuild adds to the snapshot every account the sinks say idsync owns and the
// snapshot does not know. Entries it knows are left as they are. A rebuilt entry has
// no profile fields, so the next run writes each profile whole; an account found
// blocked counts as disabled by idsync, so a person who is back is re-enabled.
func (e *Engine) Rebuild(ctx context.Context) ([]RebuildCount, error) {
	var counts []RebuildCount
	for _, s := range e.sinks {
		l, ok := s.Sink.(Lister)
		if !ok {
			e.log.Warn("this sink cannot list its accounts: its snapshot is rebuilt by adoption, as people are created again", "sink", s.Name)
			continue
		}
		owned, err := l.Owned(ctx)
		if err != nil {
			return counts, fmt.Errorf("sink %s: list accounts: %w", s.Name, err)
		}
		snap, err := snapshot(e.store, s.Name)
		if err != nil {
			return counts, fmt.Errorf("sink %s: %w", s.Name, err)
		}
		c := RebuildCount{Sink: s.Name, Found: len(owned)}
		for _, en := range owned {
			if _, known := snap[en.ID]; known || en.ID == "" || en.User == nil {
				continue
			}
			en.Adopted = true
			if !en.User.Active {
				en.DisabledAt = e.opt.Now()
			}
			if err := e.store.Put(s.Name, en); err != nil {
				return counts, fmt.Errorf("sink %s: %w", s.Name, err)
			}
			c.Added++
		}
		e.log.Info("snapshot rebuilt from the sink", "sink", s.Name, "found", c.Found, "added", c.Added)
		counts = append(counts, c)
	}
	return counts, nil
}
