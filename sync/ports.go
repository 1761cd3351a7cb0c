package sync

import (
	"context"
	"errors"
	"time"
)

// Source reads identities. Read returns everything or an error, never a partial list:
// an error ends the run before anything is planned. Identities that are present but
// invalid come back with Problems set; a row whose anchor cannot be read comes back with
// an empty ID and Problems, so that the run knows its read of that source is not a
// complete list of who is there. The identities returned are the caller's: the engine
// marks them in place (their Source, and problems found across sources).
type Source interface {
	Read(ctx context.Context) ([]Identity, error)
}

// DeltaSource is a source that can also read only what changed since an earlier read
// (an LDAP directory's modifyTimestamp). The engine keeps the source's mark in the run
// history and hands it back; the source decides whether a delta can be trusted or a
// full read is due.
type DeltaSource interface {
	Source
	// ReadDelta reads what changed since the read that gave mark (nil when there is
	// none), or everyone when the source decides on a full read.
	ReadDelta(ctx context.Context, mark []byte) (Delta, error)
}

// Sizer is a source that reads faster when told how many identities to expect: the
// engine tells it, before each read, how many the source gave the last run (0 when
// unknown). The number is only a hint: a source must read everyone whatever it says.
type Sizer interface {
	Expect(n int)
}

// Delta is what ReadDelta returns.
type Delta struct {
	Identities []Identity
	// Full is set when the read lists everyone: only then do departures count.
	Full bool
	// Mark is the source's JSON record of this read, kept once the run has applied
	// everything it planned, and handed to the next ReadDelta.
	Mark []byte
}

// Sink applies operations to one application's user-management API.
type Sink interface {
	// Apply carries out op and returns the sink's ids for the identity. It is safe to
	// repeat: a create that meets an account idsync already made adopts it.
	Apply(ctx context.Context, op Op) (Outcome, error)
	// Schema says which record kinds the sink holds and which fields each one takes.
	Schema() Schema
}

// Checker is a sink with rules of its own on what it accepts (Haplo's email pattern,
// required names). The engine finds it by type assertion and holds, in that sink only,
// every identity Check finds problems with: nothing is created that could not be
// finished. Check must not change id: every sink is handed the same identity.
type Checker interface {
	Check(id *Identity) []string
}

// Schema describes what a sink holds per identity.
type Schema struct {
	// User is the set of fields the account takes.
	User FieldSet
	// Profile is the set of fields the person profile takes; zero for a sink without
	// profiles, which then never sees a profile operation.
	Profile FieldSet
	// Delete reports whether the sink can delete accounts.
	Delete bool
}

// Outcome is what a sink reports of an applied operation.
type Outcome struct {
	UserID     string
	ProfileRef string
	// Adopted is set when a create found an existing account and took it over.
	Adopted bool
	// Invite is the way in the sink gave for a new account, when the operation asked
	// for one (Op.Invite): the engine keeps it until its SinkSpec.Inviter delivers it.
	Invite *Invite
}

// Invite is a way in for a new account that idsync delivers itself: Haplo's welcome
// link, or a link made from a temporary token. Link is a credential: it goes into the
// snapshot until delivered, into the message, and nowhere else (no log, metric, plan
// or JSON).
type Invite struct {
	Link string `json:"-"`
	// Expires is when the link stops working; zero when the application does not say.
	Expires time.Time `json:"expires,omitzero"`
}

// Inviter delivers invitations (an email with the link). Errors must not hold the link.
type Inviter interface {
	Invite(ctx context.Context, person Identity, inv Invite) error
}

// Errors sinks return, for the engine and tests to act on with errors.Is.
var (
	// ErrExists: the account or profile already exists.
	ErrExists = errors.New("already exists")
	// ErrNotFound: the account or profile does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: an account that idsync does not own holds this person's email or
	// username; a person must decide.
	ErrConflict = errors.New("conflict with an account idsync does not own")
	// ErrUnsupported: the sink cannot do this operation.
	ErrUnsupported = errors.New("not supported by this sink")
	// ErrStopSink: the sink can take no operation now (credentials refused,
	// throttled). The engine stops calling it for the rest of the run; what was not
	// attempted is retried on the next.
	ErrStopSink = errors.New("sink refuses all operations")
	// ErrCircuitOpen: the engine stopped calling a sink after too many failures in a
	// row.
	ErrCircuitOpen = errors.New("circuit breaker open")
)

// Entry is what the snapshot keeps for one identity in one sink: what idsync last
// applied, the sink's ids, and the state idsync left the account in. An entry exists
// only for accounts idsync created or adopted, which is what makes them its own.
type Entry struct {
	ID         string `json:"id"`
	UserID     string `json:"user_id,omitempty"`
	ProfileRef string `json:"profile_ref,omitempty"`
	// User is what idsync last applied to the account (Schema.User fields, plus
	// Active); nil until the account exists.
	User *Identity `json:"user,omitempty"`
	// Profile is what idsync last applied to the profile; nil until it exists.
	Profile *Identity `json:"profile,omitempty"`
	// Adopted is set when idsync took over an account it found rather than made.
	Adopted bool `json:"adopted,omitempty"`
	// DisabledAt is when idsync disabled the account; zero while it is active.
	DisabledAt time.Time `json:"disabled_at,omitzero"`
	// LastError is the error of the last failed operation, cleared by a success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Failures counts failed operations in a row.
	Failures int `json:"failures,omitempty"`
	// LastOp is the last operation applied, and LastOpAt when: for idsync inspect.
	LastOp   OpKind    `json:"last_op,omitempty"`
	LastOpAt time.Time `json:"last_op_at,omitzero"`
	// Invite is an invitation not yet delivered: kept until it is, then erased.
	Invite *PendingInvite `json:"invite,omitempty"`
	// InviteLapsed is when an undelivered invitation's link expired: the person needs
	// their password reset by hand, since idsync never makes a second account for a
	// new link.
	InviteLapsed time.Time `json:"invite_lapsed,omitzero"`
}

// PendingInvite is an invitation waiting for delivery, and its failed attempts.
type PendingInvite struct {
	Invite
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// Clone returns a copy of e that shares nothing writable with it.
func (e Entry) Clone() Entry {
	if e.User != nil {
		e.User = e.User.Clone()
	}
	if e.Profile != nil {
		e.Profile = e.Profile.Clone()
	}
	if e.Invite != nil {
		inv := *e.Invite
		e.Invite = &inv
	}
	return e
}

// Store keeps the snapshot and the run history. Put is durable when it returns.
type Store interface {
	// Entry returns sink's entry for id, and whether there is one.
	Entry(sink, id string) (Entry, bool, error)
	// Entries calls fn with every entry of sink, one at a time, and returns fn's
	// first error. An entry's identities, lists and maps may be reused for the next
	// one: fn keeps a Clone of what it keeps. fn must not use the store.
	Entries(sink string, fn func(Entry) error) error
	Put(sink string, e Entry) error
	Delete(sink, id string) error
	RecordRun(r RunSummary) error
	// Runs returns up to limit run summaries, newest first; all when limit <= 0.
	Runs(limit int) ([]RunSummary, error)
}

// snapshot reads all of sink's entries into a map, keyed by id.
func snapshot(st Store, sink string) (map[string]Entry, error) {
	snap := make(map[string]Entry)
	err := st.Entries(sink, func(e Entry) error {
		snap[e.ID] = e.Clone()
		return nil
	})
	return snap, err
}
