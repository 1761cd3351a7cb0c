package sync

import (
	"fmt"
	"log/slog"
	"strings"
)

// OpKind is what an operation does. Its order is the order of the phases: an identity's
// operations run in this order, and a plan is sorted by it.
type OpKind uint8

const (
	CreateProfile OpKind = iota + 1
	CreateUser
	UpdateProfile
	UpdateUser
	EnableUser
	DisableUser
	DeleteUser
)

// OpKinds lists every kind in phase order.
var OpKinds = []OpKind{CreateProfile, CreateUser, UpdateProfile, UpdateUser, EnableUser, DisableUser, DeleteUser}

var opKindNames = [...]string{
	CreateProfile: "create_profile",
	CreateUser:    "create_user",
	UpdateProfile: "update_profile",
	UpdateUser:    "update_user",
	EnableUser:    "enable_user",
	DisableUser:   "disable_user",
	DeleteUser:    "delete_user",
}

func (k OpKind) String() string {
	if int(k) < len(opKindNames) && opKindNames[k] != "" {
		return opKindNames[k]
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// ParseOpKind is String's inverse.
func ParseOpKind(s string) (OpKind, bool) {
	for _, k := range OpKinds {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// MarshalText and UnmarshalText make OpKind readable in JSON (golden plans, run history).
func (k OpKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k *OpKind) UnmarshalText(b []byte) error {
	v, ok := ParseOpKind(string(b))
	if !ok {
		return fmt.Errorf("unknown operation %q", b)
	}
	*k = v
	return nil
}

// Op is one operation on one identity in one sink: a plain value.
type Op struct {
	Kind OpKind `json:"kind"`
	// ID is the identity's anchor.
	ID string `json:"id"`
	// Want is the identity as it should be after the operation: the sources' truth, or,
	// for a disable or delete of a person who left, the fields last applied.
	Want Identity `json:"want"`
	// Have is what idsync last applied to the record that an update changes; nil for
	// the other kinds.
	Have *Identity `json:"have,omitempty"`
	// Fields are the fields an update changes.
	Fields FieldSet `json:"fields,omitempty"`
	// UserID and ProfileRef are the sink's own ids, as far as the snapshot knows them.
	UserID     string `json:"user_id,omitempty"`
	ProfileRef string `json:"profile_ref,omitempty"`
	// Invite asks a create_user for a way in that idsync delivers (the sink has an
	// Inviter): the engine sets it as it applies the operation.
	Invite bool `json:"-"`
}

// String is one line: the kind, the identity and, for updates, the fields changed. It
// carries no one's data beyond the id and username.
func (op Op) String() string {
	var b strings.Builder
	b.WriteString(op.Kind.String())
	b.WriteString(" ")
	b.WriteString(op.ID)
	if op.Want.Username != "" {
		fmt.Fprintf(&b, " (%s)", op.Want.Username)
	}
	if op.Fields != 0 {
		fmt.Fprintf(&b, " [%s]", op.Fields)
	}
	return b.String()
}

// LogValue keeps people's data out of logs: the kind and the anchor only.
func (op Op) LogValue() slog.Value {
	return slog.GroupValue(slog.String("op", op.Kind.String()), slog.String("id", op.ID))
}

// Held is an identity that a plan leaves exactly as it is, and why.
type Held struct {
	ID     string   `json:"id"`
	Where  string   `json:"where,omitempty"`
	Reason []string `json:"reason"`
}

// Plan is the ordered list of operations that turns one sink's snapshot into the
// sources' truth.
type Plan struct {
	Sink string `json:"sink"`
	// Ops are sorted by phase (OpKind), then by identity id.
	Ops []Op `json:"ops"`
	// Held lists the identities left alone because they are present but invalid,
	// sorted by id.
	Held []Held `json:"held,omitempty"`
	// Managed is how many accounts the snapshot says idsync manages in this sink and
	// are active: the base of the max_disable_percent guard.
	Managed int `json:"managed"`
	// Invites lists the identities with an invitation still to deliver, from an
	// earlier run, sorted: the run tries them again after its operations.
	Invites []string `json:"invites,omitempty"`
}

// Count returns how many operations of kind k the plan holds.
func (p *Plan) Count(k OpKind) int {
	n := 0
	for _, op := range p.Ops {
		if op.Kind == k {
			n++
		}
	}
	return n
}

// Counts returns the number of operations per kind.
func (p *Plan) Counts() map[OpKind]int {
	c := make(map[OpKind]int)
	for _, op := range p.Ops {
		c[op.Kind]++
	}
	return c
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Ops) == 0 }
