package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

// An entry is stored in a binary layout of its own rather than as JSON: a snapshot
// decodes every entry of a sink, and JSON decoding was most of that time and of its
// garbage. The layout, format 1:
//
//	entry    = format:byte(1) flags:byte id user_id profile_ref
//	           [user:identity] [profile:identity] [disabled_at:time]
//	           last_error [last_error_at:time] failures:varint
//	           [last_op:byte last_op_at:time]
//	           [invite: link expires_set:byte [expires:time] attempts:uvarint last_error]
//	           [invite_lapsed:time]
//	identity = flags:byte [id] username email first_name last_name display_name
//	           groups:list attributes:(uvarint count, count × (key list))
//	list     = uvarint count, count × string
//	string   = uvarint length, length bytes (any bytes: nothing is checked or replaced)
//	time     = varint Unix seconds, uvarint nanoseconds, varint zone offset in seconds
//
// An entry's flags say which of the optional parts are present, so that a nil User or
// Profile (not yet created) stays nil and a zero time stays zero; an identity's flags
// hold Active and whether its id is the entry's, which it nearly always is. Empty and
// nil lists are the same (a count of 0 decodes as nil), as they are to Diff.
//
// The encoding is canonical: attribute keys are written in increasing byte order,
// varints in their shortest form, and the decoder refuses anything else, so an entry has
// exactly one encoding and encodeEntry(decodeEntry(v)) == v whenever decoding succeeds.
// A value that is truncated, has bytes left over or breaks a rule is an error, never a
// panic or a guess.
//
// The first byte is the format version so that a later layout can be told apart; a new
// layout comes with a schema migration that rewrites every entry (see schema.go).
const entryFormat = 1

// Entry flags.
const (
	entryHasUser = 1 << iota
	entryHasProfile
	entryAdopted
	entryHasDisabledAt
	entryHasLastErrorAt
	// entryHasLastOp: the last operation applied and when (schema version 3 on).
	entryHasLastOp
	// entryHasInvite, entryHasInviteLapsed: an invitation to deliver; when one expired
	// undelivered (schema version 3 on).
	entryHasInvite
	entryHasInviteLapsed
	entryFlags = entryHasUser | entryHasProfile | entryAdopted | entryHasDisabledAt | entryHasLastErrorAt | entryHasLastOp |
		entryHasInvite | entryHasInviteLapsed
)

// Identity flags.
const (
	identityActive = 1 << iota
	// identitySameID: the identity's id is the entry's, and is not written again.
	identitySameID
	identityFlags = identityActive | identitySameID
)

// maxZoneOffset bounds a time's zone offset, in seconds: RFC 3339 (the JSON the entries
// were before) allows less than a day either way, and so does every real zone.
const maxZoneOffset = 24*60*60 - 1

// encodeEntry returns e in the binary layout.
func encodeEntry(e *dsync.Entry) []byte {
	return appendEntry(make([]byte, 0, entrySizeHint(e)), e)
}

// entrySizeHint is a little more than the encoded size of e, so that encodeEntry
// allocates once: bbolt keeps each value until its transaction commits, so a buffer
// cannot be reused.
func entrySizeHint(e *dsync.Entry) int {
	n := 64 + len(e.ID) + len(e.UserID) + len(e.ProfileRef) + len(e.LastError)
	for _, id := range []*dsync.Identity{e.User, e.Profile} {
		if id == nil {
			continue
		}
		n += 16 + len(id.ID) + len(id.Username) + len(id.Email) + len(id.FirstName) +
			len(id.LastName) + len(id.DisplayName)
		for _, g := range id.Groups {
			n += 2 + len(g)
		}
		for _, a := range id.Attributes {
			n += 4 + len(a.Name)
			for _, v := range a.Values {
				n += 2 + len(v)
			}
		}
	}
	return n
}

func appendEntry(b []byte, e *dsync.Entry) []byte {
	var flags byte
	if e.User != nil {
		flags |= entryHasUser
	}
	if e.Profile != nil {
		flags |= entryHasProfile
	}
	if e.Adopted {
		flags |= entryAdopted
	}
	if !e.DisabledAt.IsZero() {
		flags |= entryHasDisabledAt
	}
	if !e.LastErrorAt.IsZero() {
		flags |= entryHasLastErrorAt
	}
	if e.LastOp != 0 && !e.LastOpAt.IsZero() { // the engine sets both, always
		flags |= entryHasLastOp
	}
	if e.Invite != nil {
		flags |= entryHasInvite
	}
	if !e.InviteLapsed.IsZero() {
		flags |= entryHasInviteLapsed
	}
	b = append(b, entryFormat, flags)
	b = appendString(b, e.ID)
	b = appendString(b, e.UserID)
	b = appendString(b, e.ProfileRef)
	if e.User != nil {
		b = appendIdentity(b, e.User, e.ID)
	}
	if e.Profile != nil {
		b = appendIdentity(b, e.Profile, e.ID)
	}
	if flags&entryHasDisabledAt != 0 {
		b = appendTime(b, e.DisabledAt)
	}
	b = appendString(b, e.LastError)
	if flags&entryHasLastErrorAt != 0 {
		b = appendTime(b, e.LastErrorAt)
	}
	b = binary.AppendVarint(b, int64(e.Failures))
	if flags&entryHasLastOp != 0 {
		b = append(b, byte(e.LastOp))
		b = appendTime(b, e.LastOpAt)
	}
	if inv := e.Invite; inv != nil {
		b = appendString(b, inv.Link)
		if inv.Expires.IsZero() {
			b = append(b, 0)
		} else {
			b = appendTime(append(b, 1), inv.Expires)
		}
		b = binary.AppendUvarint(b, uint64(max(inv.Attempts, 0)))
		b = appendString(b, inv.LastError)
	}
	if flags&entryHasInviteLapsed != 0 {
		b = appendTime(b, e.InviteLapsed)
	}
	return b
}

func appendIdentity(b []byte, id *dsync.Identity, entryID string) []byte {
	var flags byte
	if id.Active {
		flags |= identityActive
	}
	if id.ID == entryID {
		flags |= identitySameID
	}
	b = append(b, flags)
	if flags&identitySameID == 0 {
		b = appendString(b, id.ID)
	}
	for _, s := range []string{id.Username, id.Email, id.FirstName, id.LastName, id.DisplayName} {
		b = appendString(b, s)
	}
	b = appendList(b, id.Groups)
	// In order and each name once, as the decoder insists: equal entries encode to
	// equal bytes.
	attrs := id.Attributes.Ordered()
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	for _, a := range attrs {
		b = appendString(b, a.Name)
		b = appendList(b, a.Values)
	}
	return b
}

func appendList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = appendString(b, s)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(offset))
}

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("corrupt entry")

// decodeEntry decodes one value on its own.
func decodeEntry(v []byte) (dsync.Entry, error) {
	var d decoder
	return d.entry(v)
}

// A decoder decodes entries. One decoder serves many entries, one at a time, so that
// what they share is allocated once: their time zones, and blocks of the identities and
// string slices they point to. The zero decoder is ready to use.
type decoder struct {
	s   string // the entry being decoded
	off int    // how far into s
	err error  // the first error, after which every read returns zero values

	// zones holds the fixed zones made for offsets that are neither UTC nor Local's.
	zones map[int]*time.Location
	// identities and strings are blocks that entries' identities and lists are cut
	// from, one allocation for many entries instead of one each; the sizes are those
	// of the last blocks made.
	identities               []dsync.Identity
	strings                  []string
	identitySize, stringSize int
	// reuse decodes every entry into the same identities, lists and maps, for
	// entries that are looked at one at a time and mostly dropped: decoding a 100,000
	// entry snapshot then makes one allocation an entry (its strings) instead of a
	// dozen. Each entry's strings are still its own.
	reuse bool
	// The reused parts: the identities (user, profile), their attributes, and the
	// items of the entry's lists; next is the identity to decode into next.
	scratch [2]dsync.Identity
	attrs   [2]dsync.Attributes
	items   []string
	next    int
}

// Block sizes: each new block is twice the last, from minBlock up to maxBlock items, so
// that decoding a few entries allocates little and decoding many allocates seldom.
const (
	minBlock = 8
	maxBlock = 1024
)

// cut returns n zero items from *block, which it first replaces by a new block when
// fewer than n are left. A large n gets an allocation of its own rather than a block.
// The result's capacity is n, so that an append to it copies rather than writing over
// the next items of the block.
func cut[T any](block *[]T, size *int, n int) []T {
	if n > maxBlock/4 {
		return make([]T, n)
	}
	if n > len(*block) {
		*size = min(max(2**size, minBlock), maxBlock)
		*block = make([]T, max(*size, n))
	}
	s := (*block)[:n:n]
	*block = (*block)[n:]
	return s
}

// entry decodes v. Its strings are cut from a single copy of v.
func (d *decoder) entry(v []byte) (dsync.Entry, error) {
	// One copy of the whole value, which every string of the entry is a part of: one
	// allocation instead of one per string. The parts keep the whole copy alive, but
	// the entry as a whole is what a snapshot keeps.
	d.s, d.off, d.err = string(v), 0, nil
	d.next, d.items = 0, d.items[:0]
	var e dsync.Entry
	switch format := d.byte(); {
	case d.err != nil:
	case format == '{':
		return e, fmt.Errorf("%w: JSON, as schema version 1 stored entries", errCorrupt)
	case format != entryFormat:
		return e, fmt.Errorf("%w: format %d, want %d", errCorrupt, format, entryFormat)
	}
	flags := d.byte()
	if flags&^entryFlags != 0 {
		d.failf("unknown entry flags %#x", flags&^entryFlags)
	}
	e.ID = d.string()
	e.UserID = d.string()
	e.ProfileRef = d.string()
	if flags&entryHasUser != 0 {
		e.User = d.identity(e.ID)
	}
	if flags&entryHasProfile != 0 {
		e.Profile = d.identity(e.ID)
	}
	e.Adopted = flags&entryAdopted != 0
	if flags&entryHasDisabledAt != 0 {
		e.DisabledAt = d.time()
	}
	e.LastError = d.string()
	if flags&entryHasLastErrorAt != 0 {
		e.LastErrorAt = d.time()
	}
	e.Failures = d.int()
	if flags&entryHasLastOp != 0 {
		op := dsync.OpKind(d.byte())
		if _, known := dsync.ParseOpKind(op.String()); !known && d.err == nil {
			d.failf("unknown last operation %d", op)
		}
		e.LastOp = op
		e.LastOpAt = d.time()
	}
	if flags&entryHasInvite != 0 {
		inv := &dsync.PendingInvite{}
		inv.Link = d.string()
		switch set := d.byte(); {
		case set == 1:
			inv.Expires = d.time()
		case set != 0 && d.err == nil:
			d.failf("invitation expiry flag %d", set)
		}
		if a := d.uvarint(); a > 1<<31 {
			d.failf("%d invitation attempts", a)
		} else {
			inv.Attempts = int(a)
		}
		inv.LastError = d.string()
		e.Invite = inv
	}
	if flags&entryHasInviteLapsed != 0 {
		e.InviteLapsed = d.time()
	}
	if d.err == nil && d.off != len(d.s) {
		d.failf("%d bytes after the entry", len(d.s)-d.off)
	}
	if d.err != nil {
		return dsync.Entry{}, d.err
	}
	return e, nil
}

func (d *decoder) identity(entryID string) *dsync.Identity {
	var id *dsync.Identity
	if d.reuse {
		id = &d.scratch[d.next]
		*id = dsync.Identity{}
	} else {
		id = &cut(&d.identities, &d.identitySize, 1)[0]
	}

	flags := d.byte()
	if flags&^identityFlags != 0 {
		d.failf("unknown identity flags %#x", flags&^identityFlags)
	}
	id.Active = flags&identityActive != 0
	if flags&identitySameID != 0 {
		id.ID = entryID
	} else if id.ID = d.string(); id.ID == entryID {
		d.failf("identity id %q written out though it is the entry's", id.ID)
	}
	id.Username = d.string()
	id.Email = d.string()
	id.FirstName = d.string()
	id.LastName = d.string()
	id.DisplayName = d.string()
	id.Groups = d.list()
	if n := d.count(); n > 0 {
		if d.reuse {
			id.Attributes = d.attrs[d.next][:0]
		} else {
			id.Attributes = make(dsync.Attributes, 0, n)
		}
		prev := ""
		for i := range n {
			k := d.string()
			if i > 0 && k <= prev {
				d.failf("attribute %q after %q: keys out of order", k, prev)
			}
			id.Attributes = append(id.Attributes, dsync.Attribute{Name: k, Values: d.list()})
			prev = k
		}
		if d.reuse {
			d.attrs[d.next] = id.Attributes
		}
	}
	d.next++
	return id
}

// list reads a list of strings: nil when it is empty.
func (d *decoder) list() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	var l []string
	if d.reuse {
		if len(d.items)+n > cap(d.items) { // the entry's earlier lists keep the old array
			d.items = make([]string, 0, max(2*cap(d.items), n, minBlock))
		}
		start := len(d.items)
		d.items = d.items[:start+n]
		l = d.items[start : start+n : start+n]
	} else {
		l = cut(&d.strings, &d.stringSize, n)
	}
	for i := range l {
		l[i] = d.string()
	}
	return l
}

// count reads the number of items that follow. Each takes at least a byte, so a count
// larger than what is left is corrupt: checking it here keeps a corrupt count from
// making a huge allocation.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.off) {
		d.failf("count %d but %d bytes left", n, len(d.s)-d.off)
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.off) {
		d.failf("string of %d bytes but %d left", n, len(d.s)-d.off)
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	offset := d.varint()
	switch {
	case d.err != nil:
		return time.Time{}
	case nsec >= uint64(time.Second):
		d.failf("time with %d nanoseconds", nsec)
		return time.Time{}
	case offset < -maxZoneOffset || offset > maxZoneOffset:
		d.failf("time zone offset %ds", offset)
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec)) // in Local
	if t.IsZero() {
		// The zero time is written as absent, never as a time.
		d.failf("zero time written out")
		return time.Time{}
	}
	// The instant is what counts; the zone is kept for display, as the JSON did. A
	// time written in Local comes back in Local when Local has that offset then.
	if offset == 0 {
		return t.UTC()
	}
	if _, local := t.Zone(); int64(local) == offset {
		return t
	}
	loc, ok := d.zones[int(offset)]
	if !ok {
		loc = time.FixedZone("", int(offset))
		if d.zones == nil {
			d.zones = make(map[int]*time.Location)
		}
		d.zones[int(offset)] = loc
	}
	return t.In(loc)
}

func (d *decoder) int() int {
	x := d.varint()
	if int64(int(x)) != x {
		d.failf("%d does not fit an int", x)
		return 0
	}
	return int(x)
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// uvarint reads an unsigned varint as encoding/binary writes it, refusing the longer
// forms of a number that binary.Uvarint accepts: the encoding is canonical.
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	for i, shift := 0, uint(0); ; i, shift = i+1, shift+7 {
		if d.off+i >= len(d.s) {
			d.failf("truncated varint")
			return 0
		}
		c := d.s[d.off+i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			d.failf("varint overflows 64 bits")
			return 0
		}
		if c < 0x80 {
			if c == 0 && i > 0 {
				d.failf("varint not in its shortest form")
				return 0
			}
			d.off += i + 1
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.s) {
		d.failf("truncated")
		return 0
	}
	c := d.s[d.off]
	d.off++
	return c
}

// failf records the first error, with where it was found; later ones follow from it.
func (d *decoder) failf(format string, args ...any) {
	if d.err != nil {
		return
	}
	d.err = fmt.Errorf("%w: byte %d of %d: %s", errCorrupt, d.off, len(d.s), fmt.Sprintf(format, args...))
}
