package sync

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Reader is a sink that can read back an account idsync manages. The engine finds it
// by type assertion, to check for drift: changes made in the application by hand.
type Reader interface {
	// ReadUser returns the account's current fields (those of Schema.User, and
	// Active), or ErrNotFound.
	ReadUser(ctx context.Context, e Entry) (Identity, error)
}

// Drift is one account whose state in the sink differs from what idsync applied.
type Drift struct {
	Sink   string   `json:"sink"`
	ID     string   `json:"id"`
	Fields FieldSet `json:"fields,omitempty"`
	// Active is set when the account was blocked or unblocked outside idsync.
	Active bool `json:"active,omitempty"`
	// Gone is set when the account no longer exists.
	Gone bool `json:"gone,omitempty"`
}

// Verify reads back every account idsync manages in the sinks that can be read, and
// records what it finds in the snapshot, so that the next plan repairs the drift: a
// changed field becomes an update, an account blocked or unblocked by hand an enable
// or disable, a deleted account a create. It changes nothing in the sinks itself.
func (e *Engine) Verify(ctx context.Context) ([]Drift, error) {
	var drifts []Drift
	e.drifted = make(map[string]map[string]bool)
	for _, s := range e.sinks {
		r, ok := s.Sink.(Reader)
		if !ok {
			continue
		}
		d, err := e.verify(ctx, s, r)
		drifts = append(drifts, d...)
		if err != nil {
			return drifts, fmt.Errorf("sink %s: verify: %w", s.Name, err)
		}
	}
	return drifts, nil
}

func (e *Engine) verify(ctx context.Context, s SinkSpec, r Reader) ([]Drift, error) {
	snap, err := snapshot(e.store, s.Name)
	if err != nil {
		return nil, err
	}
	schema := s.Sink.Schema()
	var drifts []Drift
	start := e.opt.Now()
	for _, en := range snap {
		if en.User == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return drifts, err
		}
		got, err := r.ReadUser(ctx, en)
		d := Drift{Sink: s.Name, ID: en.ID}
		switch {
		case errors.Is(err, ErrNotFound):
			// Deleted by hand: forget the account, so that the next run creates it
			// again if the person is still there.
			d.Gone = true
			en.User, en.UserID, en.DisabledAt = nil, "", time.Time{}
		case err != nil:
			return drifts, fmt.Errorf("read %s: %w", en.ID, err)
		default:
			d.Fields = Changed(en.User, &got, schema.User)
			d.Active = got.Active != en.User.Active
			if d.Fields == 0 && !d.Active {
				continue
			}
			u := Project(got, schema.User)
			en.User = &u
			if d.Active && !got.Active && en.DisabledAt.IsZero() {
				// Blocked by hand: the next run enables it if the person is active.
				en.DisabledAt = start
			}
		}
		e.log.Warn("drift: the account was changed outside idsync", "sink", s.Name, "id", en.ID,
			"fields", d.Fields.String(), "active_changed", d.Active, "gone", d.Gone)
		if err := e.store.Put(s.Name, en); err != nil {
			return drifts, err
		}
		e.opt.Metrics.drift(s.Name, d)
		drifts = append(drifts, d)
		if e.drifted[s.Name] == nil {
			e.drifted[s.Name] = make(map[string]bool)
		}
		e.drifted[s.Name][en.ID] = true
	}
	return drifts, nil
}
