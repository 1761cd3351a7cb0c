package ldap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unsafe"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// Reading LDAP messages.
//
// go-ldap decodes every response with asn1-ber's ReadPacket, which builds a tree of
// *ber.Packet with a copy of each element's bytes and a decoded value: ~450
// allocations and 24 KB for a person's entry, most of a read's time. The reader here
// takes a message whole into one []byte, makes one string of it, and slices both:
// an entry's DN, attribute names and Values are substrings of that string, its
// ByteValues subslices of the bytes. An entry costs its message's two allocations
// whatever its size; its slices are cut from its batch's arena (entryArena).
// (The mapper's identity then holds substrings of that string: Source.read copies
// them out, so that the message does not live as long as the identity.)
//
// Only what a read needs is decoded (RFC 4511 4.1.1, 4.2.2, 4.5.2, 4.5.3, 4.12), with
// one-byte tags and definite lengths: anything else is an error, never a guess.

// BER identifiers of the elements read here.
const (
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagEnumerated  = 0x0a
	tagSequence    = 0x30 // and SEQUENCE OF
	tagSet         = 0x31 // SET OF

	tagBindResponse     = 0x61 // [APPLICATION 1] constructed
	tagSearchEntry      = 0x64 // [APPLICATION 4]
	tagSearchDone       = 0x65 // [APPLICATION 5]
	tagSearchReference  = 0x73 // [APPLICATION 19]
	tagExtendedResponse = 0x78 // [APPLICATION 24]
	tagControls         = 0xa0 // [0] constructed, in LDAPMessage
)

// maxMessage bounds one message: an entry with a large photo is a few hundred KB;
// a length past this is a broken or hostile stream, not an entry.
const maxMessage = 64 << 20

// message is one decoded LDAPMessage.
type message struct {
	id int64
	op byte // the protocolOp's identifier: one of the tag* responses above
	// entry is a SearchResultEntry's.
	entry *ldap.Entry
	// refs are a SearchResultReference's URIs.
	refs []string
	// result is a SearchResultDone's, BindResponse's or ExtendedResponse's.
	result ldapResult
	// controls is the message's [0] Controls element, undecoded: see decodeControls.
	controls []byte
}

// ldapResult is an LDAPResult's first three fields; a referral, SASL credentials or
// an extended response's name and value that follow are not used and not kept.
type ldapResult struct {
	code       uint16
	matchedDN  string
	diagnostic string
}

// err is the result as go-ldap reports it: nil for success, else an *ldap.Error
// with the code, the matched DN and the diagnostic message.
func (r ldapResult) err() error {
	if r.code == ldap.LDAPResultSuccess {
		return nil
	}
	return &ldap.Error{ResultCode: r.code, MatchedDN: r.matchedDN, Err: errors.New(r.diagnostic)}
}

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed LDAP message")

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errMalformed}, a...)...)
}

// readMessage reads one LDAPMessage, its SEQUENCE header included, into a new slice.
func readMessage(r *bufio.Reader) ([]byte, error) {
	var hdr [6]byte // tag, and a length of at most 1+4 bytes
	tag, err := r.ReadByte()
	if err != nil {
		return nil, err // io.EOF: the server closed the connection between messages
	}
	if tag != tagSequence {
		return nil, malformed("message starts with 0x%02x, not a SEQUENCE", tag)
	}
	hdr[0] = tag
	l, err := r.ReadByte()
	if err != nil {
		return nil, noEOF(err)
	}
	hdr[1] = l
	n, h := int(l), 2
	if l&0x80 != 0 {
		k := int(l & 0x7f)
		switch {
		case k == 0:
			return nil, malformed("indefinite length")
		case k > 4:
			return nil, malformed("a length of %d bytes", k)
		}
		if _, err := io.ReadFull(r, hdr[2:2+k]); err != nil {
			return nil, noEOF(err)
		}
		var u uint64
		for _, c := range hdr[2 : 2+k] {
			u = u<<8 | uint64(c)
		}
		if u > maxMessage {
			return nil, malformed("a message of %d bytes", u)
		}
		n, h = int(u), 2+k
	}
	msg := make([]byte, h+n)
	copy(msg, hdr[:h])
	if _, err := io.ReadFull(r, msg[h:]); err != nil {
		return nil, noEOF(err)
	}
	return msg, nil
}

// noEOF turns an end of stream inside a message into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// cursor walks the elements inside b[off:end].
type cursor struct {
	b        []byte
	off, end int
}

// next reads the element at the cursor, which must have identifier tag, and returns
// where its contents start and end.
func (c *cursor) next(tag byte) (start, end int, err error) {
	off := c.off
	t, start, end, err := c.any()
	if err == nil && t != tag {
		err = malformed("element 0x%02x at %d, want 0x%02x", t, off, tag)
	}
	return start, end, err
}

// any reads the element at the cursor, whatever its identifier.
func (c *cursor) any() (tag byte, start, end int, err error) {
	off := c.off
	if off+2 > c.end {
		return 0, 0, 0, malformed("truncated at %d", off)
	}
	tag = c.b[off]
	if tag&0x1f == 0x1f {
		return 0, 0, 0, malformed("multi-byte identifier at %d", off)
	}
	l := int(c.b[off+1])
	off += 2
	if l&0x80 != 0 {
		k := l & 0x7f
		if k == 0 || k > 4 {
			return 0, 0, 0, malformed("length of %d bytes at %d", k, off-2)
		}
		if off+k > c.end {
			return 0, 0, 0, malformed("truncated at %d", off)
		}
		var u uint64
		for _, x := range c.b[off : off+k] {
			u = u<<8 | uint64(x)
		}
		if u > uint64(c.end-off-k) {
			return 0, 0, 0, malformed("element of %d bytes at %d overruns its container", u, off-2)
		}
		l, off = int(u), off+k
	}
	if l > c.end-off {
		return 0, 0, 0, malformed("element of %d bytes at %d overruns its container", l, off-2)
	}
	c.off = off + l
	return tag, off, off + l, nil
}

func (c *cursor) more() bool { return c.off < c.end }

// integer decodes an INTEGER's or ENUMERATED's contents, two's complement, up to
// eight bytes.
func integer(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 8 {
		return 0, malformed("integer of %d bytes", len(b))
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return v, nil
}

// decodeMessage decodes one LDAPMessage; b must hold exactly that message. The
// entry's strings are substrings of one copy of b and its ByteValues subslices of b
// itself: b must not be changed afterwards.
func decodeMessage(b []byte) (*message, error) { return decodeMessageIn(b, nil) }

// decodeMessageIn is decodeMessage cutting an entry's slices from ar (nil: allocating
// them).
func decodeMessageIn(b []byte, ar *entryArena) (*message, error) {
	top := cursor{b: b, end: len(b)}
	start, end, err := top.next(tagSequence)
	if err != nil {
		return nil, err
	}
	if end != len(b) {
		return nil, malformed("%d bytes after the message", len(b)-end)
	}
	c := cursor{b: b, off: start, end: end}
	is, ie, err := c.next(tagInteger)
	if err != nil {
		return nil, err
	}
	id, err := integer(b[is:ie])
	if err != nil {
		return nil, err
	}
	if id < 0 || id > 1<<31-1 {
		return nil, malformed("message ID %d", id)
	}
	m := &message{id: id}
	op, os, oe, err := c.any()
	if err != nil {
		return nil, err
	}
	m.op = op
	// One string for all of the message's strings: b itself, which readMessage made for
	// this message alone and nothing writes to again (unsafe.String shares it rather
	// than copy it: a copy was a sixth of a read's allocations).
	s := unsafe.String(unsafe.SliceData(b), len(b))
	switch op {
	case tagSearchEntry:
		m.entry, err = decodeEntry(b, s, os, oe, ar)
	case tagSearchReference:
		m.refs, err = decodeReference(b, s, os, oe)
	case tagSearchDone, tagBindResponse, tagExtendedResponse:
		m.result, err = decodeResult(b, s, os, oe)
	default:
		err = malformed("unexpected protocol operation 0x%02x", op)
	}
	if err != nil {
		return nil, err
	}
	if c.more() {
		cs := c.off
		if _, _, err := c.next(tagControls); err != nil {
			return nil, err
		}
		m.controls = b[cs:c.off]
	}
	if c.more() {
		return nil, malformed("%d bytes after the controls", c.end-c.off)
	}
	return m, nil
}

// decodeEntry decodes a SearchResultEntry's contents, b[start:end]:
//
//	SEQUENCE { objectName OCTET STRING, attributes SEQUENCE OF
//	    SEQUENCE { type OCTET STRING, vals SET OF OCTET STRING } }
//
// It walks the attributes twice: once to check them and count, once to fill slices
// allocated to size.
func decodeEntry(b []byte, s string, start, end int, ar *entryArena) (*ldap.Entry, error) {
	c := cursor{b: b, off: start, end: end}
	ds, de, err := c.next(tagOctetString)
	if err != nil {
		return nil, err
	}
	as, ae, err := c.next(tagSequence)
	if err != nil {
		return nil, err
	}
	if c.more() {
		return nil, malformed("entry %q: bytes after its attributes", s[ds:de])
	}
	var nAttrs, nValues int
	for a := (cursor{b: b, off: as, end: ae}); a.more(); {
		ps, pe, err := a.next(tagSequence)
		if err != nil {
			return nil, err
		}
		p := cursor{b: b, off: ps, end: pe}
		if _, _, err := p.next(tagOctetString); err != nil {
			return nil, err
		}
		vs, ve, err := p.next(tagSet)
		if err != nil {
			return nil, err
		}
		if p.more() {
			return nil, malformed("entry %q: bytes after an attribute's values", s[ds:de])
		}
		for v := (cursor{b: b, off: vs, end: ve}); v.more(); nValues++ {
			if _, _, err := v.next(tagOctetString); err != nil {
				return nil, err
			}
		}
		nAttrs++
	}

	if ar == nil { // one entry alone: its slices exactly
		ar = &entryArena{attrs: make([]ldap.EntryAttribute, 0, nAttrs), ptrs: make([]*ldap.EntryAttribute, 0, nAttrs),
			values: make([]string, 0, nValues), raw: make([][]byte, 0, nValues), entries: make([]ldap.Entry, 0, 1)}
	}
	attrs := carve(&ar.attrs, nAttrs)
	ptrs := carve(&ar.ptrs, nAttrs)
	values := carve(&ar.values, nValues)
	raw := carve(&ar.raw, nValues)
	entry := &carve(&ar.entries, 1)[0]
	i, k := 0, 0
	// Checked above: no errors now.
	for a := (cursor{b: b, off: as, end: ae}); a.more(); i++ {
		ps, pe, _ := a.next(tagSequence)
		p := cursor{b: b, off: ps, end: pe}
		ns, ne, _ := p.next(tagOctetString)
		vs, ve, _ := p.next(tagSet)
		first := k
		for v := (cursor{b: b, off: vs, end: ve}); v.more(); k++ {
			s0, e0, _ := v.next(tagOctetString)
			values[k] = s[s0:e0]
			raw[k] = b[s0:e0:e0]
		}
		attrs[i] = ldap.EntryAttribute{Name: s[ns:ne], Values: values[first:k:k], ByteValues: raw[first:k:k]}
		ptrs[i] = &attrs[i]
	}
	*entry = ldap.Entry{DN: s[ds:de], Attributes: ptrs}
	return entry, nil
}

// entryArena is what a batch of entries' slices are cut from: a few allocations for
// many entries, reused for a later batch once the entries have been mapped. Without
// it, each entry's five slices were 1.2 KB of pointers to allocate and collect, 120 MB
// a read of 100,000. The entries' strings are not the arena's: they are their
// messages', which are never reused. Its zero value is ready.
type entryArena struct {
	entries []ldap.Entry
	attrs   []ldap.EntryAttribute
	ptrs    []*ldap.EntryAttribute
	values  []string
	raw     [][]byte
}

// reset makes the whole arena free again: nothing may use what was cut from it.
func (a *entryArena) reset() {
	a.entries, a.attrs, a.ptrs, a.values, a.raw = a.entries[:0], a.attrs[:0], a.ptrs[:0], a.values[:0], a.raw[:0]
}

// carve cuts n places from the block *s, starting a new block when it is full (the
// places already cut keep the old one), and returns them with their capacity cut.
// Their contents are a former use's: the caller sets every one.
func carve[T any](s *[]T, n int) []T {
	if cap(*s)-len(*s) < n {
		*s = make([]T, 0, max(2*cap(*s), n, 64))
	}
	l := len(*s)
	*s = (*s)[:l+n]
	return (*s)[l : l+n : l+n]
}

// decodeReference decodes a SearchResultReference's contents: SEQUENCE OF URI, at
// least one.
func decodeReference(b []byte, s string, start, end int) ([]string, error) {
	var refs []string
	for c := (cursor{b: b, off: start, end: end}); c.more(); {
		us, ue, err := c.next(tagOctetString)
		if err != nil {
			return nil, err
		}
		refs = append(refs, s[us:ue])
	}
	if len(refs) == 0 {
		return nil, malformed("a continuation reference without a URI")
	}
	return refs, nil
}

// decodeResult decodes an LDAPResult's first three fields from a response's contents;
// the optional fields after them must be well-formed elements of a context-specific
// tag ([3] referral, [7] serverSaslCreds, [10] responseName, [11] responseValue).
func decodeResult(b []byte, s string, start, end int) (ldapResult, error) {
	c := cursor{b: b, off: start, end: end}
	cs, ce, err := c.next(tagEnumerated)
	if err != nil {
		return ldapResult{}, err
	}
	code, err := integer(b[cs:ce])
	if err != nil {
		return ldapResult{}, err
	}
	if code < 0 || code > 1<<16-1 {
		return ldapResult{}, malformed("result code %d", code)
	}
	ms, me, err := c.next(tagOctetString)
	if err != nil {
		return ldapResult{}, err
	}
	ds, de, err := c.next(tagOctetString)
	if err != nil {
		return ldapResult{}, err
	}
	for c.more() {
		tag, _, _, err := c.any()
		if err != nil {
			return ldapResult{}, err
		}
		if tag&0xc0 != 0x80 {
			return ldapResult{}, malformed("element 0x%02x after a result", tag)
		}
	}
	return ldapResult{code: uint16(code), matchedDN: s[ms:me], diagnostic: s[ds:de]}, nil
}

// decodeControls decodes a message's Controls with go-ldap: they come once per page.
func decodeControls(raw []byte) ([]ldap.Control, error) {
	if raw == nil {
		return nil, nil
	}
	p, err := ber.DecodePacketErr(raw)
	if err != nil {
		return nil, malformed("controls: %v", err)
	}
	var ctrls []ldap.Control
	for _, child := range p.Children {
		ctrl, err := ldap.DecodeControl(child)
		if err != nil {
			return nil, malformed("control: %v", err)
		}
		ctrls = append(ctrls, ctrl)
	}
	return ctrls, nil
}
