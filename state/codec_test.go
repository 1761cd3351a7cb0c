package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"

	dsync "github.com/idsync/idsync/sync"
)

// sameTime compares times by instant and zone offset: what the encoding keeps. The
// Location itself is not kept (a fixed zone comes back without its name).
var sameTime = cmp.Comparer(func(a, b time.Time) bool {
	_, ao := a.Zone()
	_, bo := b.Zone()
	return a.Equal(b) && ao == bo && a.IsZero() == b.IsZero()
})

// codecEntries are entries at the edges of the encoding.
func codecEntries() map[string]dsync.Entry {
	userOnly := fullEntry("user-only")
	userOnly.Profile, userOnly.ProfileRef = nil, ""
	userOnly.DisabledAt, userOnly.LastErrorAt = time.Time{}, time.Time{}

	// A profile that exists but holds nothing is not the same as no profile.
	emptyProfile := dsync.Entry{ID: "empty-profile", ProfileRef: "p", Profile: &dsync.Identity{}}

	otherIDs := fullEntry("other-ids")
	otherIDs.User.ID, otherIDs.Profile.ID = "someone else", ""

	odd := dsync.Entry{
		ID:        "odd \x00\xff\xfe", // not UTF-8: kept byte for byte
		LastError: strings.Repeat("é", 300),
		Failures:  math.MinInt,
		User: &dsync.Identity{
			ID:         "odd \x00\xff\xfe",
			Groups:     []string{"", "b", "a", "a"}, // kept as they are, order and all
			Attributes: dsync.Attributes{{Name: "", Values: []string{""}}, {Name: "a"}, {Name: "\xff", Values: []string{"x"}}},
		},
		DisabledAt:  time.Unix(-1, 999_999_999).UTC(),
		LastErrorAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.FixedZone("", -maxZoneOffset)),
	}

	return map[string]dsync.Entry{
		"full":          fullEntry("1001"),
		"minimal":       {ID: "4"},
		"user only":     userOnly,
		"empty profile": emptyProfile,
		"other ids":     otherIDs,
		"odd":           odd,
		"local time": {
			ID: "local", DisabledAt: time.Now(), LastErrorAt: time.Date(9999, 12, 31, 23, 59, 59, 0, time.Local),
		},
		"far times": { // beyond what JSON's RFC 3339 could hold
			ID:          "far",
			DisabledAt:  time.Date(-10000, 1, 1, 0, 0, 0, 0, time.UTC),
			LastErrorAt: time.Date(1_000_000, 12, 4, 15, 30, 7, 999_999_999, time.FixedZone("", 3600)),
		},
		"max failures": {ID: "max", Failures: math.MaxInt},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for name, e := range codecEntries() {
		t.Run(name, func(t *testing.T) {
			checkRoundTrip(t, e)
		})
	}
}

// checkRoundTrip checks that e decodes to itself, lists aside (empty and nil are the
// same), and that its decoding encodes to the same bytes.
func checkRoundTrip(t *testing.T, e dsync.Entry) {
	t.Helper()
	v := encodeEntry(&e)
	got, err := decodeEntry(v)
	if err != nil {
		t.Fatalf("decodeEntry(encodeEntry(%+v)): %v", e, err)
	}
	if diff := cmp.Diff(e, got, sameTime, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("decodeEntry(encodeEntry(e)) (-want +got):\n%s", diff)
	}
	if again := encodeEntry(&got); !bytes.Equal(again, v) {
		t.Fatalf("encodeEntry(decodeEntry(v)):\ngot  %x\nwant %x", again, v)
	}
}

// TestEntryRoundTripGenerated is the round trip over many generated entries: every
// field on or off, strings of any bytes, times of any zone.
func TestEntryRoundTripGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 1))
	for i := range 5000 {
		e := randomEntry(r)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkRoundTrip(t, e)
		})
		if t.Failed() {
			return
		}
	}
}

// TestDecodeReuse: a decoder that reuses its identities, lists and maps (Entries)
// decodes each of many generated entries as a fresh decoder does, whatever the entry
// before it held: no list, map or field of the last entry shows through.
func TestDecodeReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 2))
	reused := decoder{reuse: true}
	for i := range 5000 {
		v := encodeEntry(new(randomEntry(r)))
		var fresh decoder
		want, err := fresh.entry(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := reused.entry(v)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, sameTime); diff != "" {
			t.Fatalf("entry %d decoded with reuse (-fresh +reused):\n%s", i, diff)
		}
	}
}

func randomEntry(r *rand.Rand) dsync.Entry {
	str := func() string {
		if r.IntN(4) == 0 {
			return ""
		}
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(8) == 0 {
				b[i] = byte(r.Uint32()) // any byte
			} else {
				b[i] = byte('a' + r.IntN(26))
			}
		}
		return string(b)
	}
	list := func() []string {
		var l []string
		for range r.IntN(4) {
			l = append(l, str())
		}
		return l
	}
	tm := func() time.Time {
		switch r.IntN(4) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)).UTC()
		case 2:
			return time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)) // Local
		}
		offset := r.IntN(2*maxZoneOffset+1) - maxZoneOffset
		return time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)).In(time.FixedZone("", offset))
	}
	e := dsync.Entry{
		ID: str(), UserID: str(), ProfileRef: str(), Adopted: r.IntN(2) == 0,
		DisabledAt: tm(), LastError: str(), LastErrorAt: tm(), Failures: int(r.Int64()) >> r.IntN(64),
	}
	identity := func() *dsync.Identity {
		if r.IntN(3) == 0 {
			return nil
		}
		id := &dsync.Identity{
			ID: e.ID, Username: str(), Email: str(), FirstName: str(), LastName: str(),
			DisplayName: str(), Active: r.IntN(2) == 0, Groups: list(),
		}
		if r.IntN(4) == 0 {
			id.ID = str()
		}
		for range r.IntN(4) {
			id.Attributes.Set(str(), list())
		}
		return id
	}
	e.User, e.Profile = identity(), identity()
	if r.IntN(2) == 0 {
		e.LastOp, e.LastOpAt = dsync.OpKinds[r.IntN(len(dsync.OpKinds))], time.Unix(r.Int64N(1<<40), 0).UTC()
	}
	if r.IntN(3) == 0 {
		e.Invite = &dsync.PendingInvite{Invite: dsync.Invite{Link: str(), Expires: tm()}, Attempts: r.IntN(1000), LastError: str()}
	}
	if r.IntN(4) == 0 {
		e.InviteLapsed = time.Unix(r.Int64N(1<<40), 0).UTC()
	}
	return e
}

func TestEncodingIsDeterministic(t *testing.T) {
	e := fullEntry("1")
	for k := range 20 {
		e.User.Attributes.Set(fmt.Sprint("attr", k), []string{fmt.Sprint(k)})
	}
	want := encodeEntry(&e)
	// The same attributes listed in another order, one of them twice (the first
	// counts), encode to the same bytes.
	shuffled := slices.Clone(e.User.Attributes)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	dup := shuffled[0]
	shuffled = append(shuffled, dsync.Attribute{Name: dup.Name, Values: []string{"a second " + dup.Name}})
	e.User.Attributes = shuffled
	if got := encodeEntry(&e); !bytes.Equal(got, want) {
		t.Fatalf("encodeEntry: got %x in order, %x shuffled", want, got)
	}
	if _, err := decodeEntry(want); err != nil {
		t.Fatal(err)
	}
}

// entryBytes builds an encoded entry by hand, for values the encoder never writes.
type entryBytes []byte

// Each method returns a new slice, so that one prefix can start several values.
func (b entryBytes) byte(c ...byte) entryBytes   { return append(slices.Clip(b), c...) }
func (b entryBytes) uvarint(x uint64) entryBytes { return binary.AppendUvarint(slices.Clip(b), x) }
func (b entryBytes) varint(x int64) entryBytes   { return binary.AppendVarint(slices.Clip(b), x) }
func (b entryBytes) str(s string) entryBytes     { return appendString(slices.Clip(b), s) }

// minimalIdentity is an identity with the entry's id and nothing else.
func (b entryBytes) minimalIdentity() entryBytes {
	return b.byte(identitySameID).str("").str("").str("").str("").str("").uvarint(0).uvarint(0)
}

func TestDecodeEntryRejects(t *testing.T) {
	head := entryBytes{entryFormat}
	// Flags, id, user id, profile ref.
	plain := func(flags byte) entryBytes { return head.byte(flags).str("1").str("").str("") }
	// An entry with a user, cut off where the user's attributes begin.
	withAttrs := plain(entryHasUser).byte(identitySameID).str("").str("").str("").str("").str("").uvarint(0)
	tail := func(b entryBytes) entryBytes { return b.str("").varint(0) } // last error, failures

	tests := []struct {
		name string
		v    []byte
		want string
	}{
		{"empty", nil, "byte 0 of 0: truncated"},
		{"format 0", entryBytes{0, 0}, "format 0, want 1"},
		{"format 2", append(entryBytes{2}, tail(plain(0)[1:])...), "format 2, want 1"},
		{"json", []byte(`{"id":"1"}`), "JSON, as schema version 1 stored entries"},
		{"unknown identity flag", tail(plain(entryHasUser).byte(0x04)), "unknown identity flags 0x4"},
		{"no failures", plain(0).str(""), "truncated varint"},
		{"byte left over", tail(plain(0)).byte(0), "1 bytes after the entry"},
		{"unknown last operation", tail(plain(entryHasLastOp)).byte(99).varint(1).uvarint(0).varint(0), "unknown last operation 99"},
		{"last operation, no time", tail(plain(entryHasLastOp)).byte(byte(dsync.UpdateUser)), "truncated varint"},
		{"invitation, bad expiry flag", tail(plain(entryHasInvite)).str("https://x").byte(7), "invitation expiry flag 7"},
		{"invitation, truncated", tail(plain(entryHasInvite)).str("https://x").byte(0), "truncated varint"},
		{"string past the end", head.byte(0).uvarint(5).byte('a'), "string of 5 bytes but 1 left"},
		{"huge string", head.byte(0).uvarint(math.MaxUint64), "string of 18446744073709551615 bytes"},
		{"huge count", withAttrs.uvarint(1 << 40), "count 1099511627776 but 0 bytes left"},
		{"varint too long", head.byte(0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), "varint overflows 64 bits"},
		{"varint padded", head.byte(0).byte(0x81).byte(0x00), "varint not in its shortest form"},
		{"zero padded", head.byte(0).byte(0x80).byte(0x00), "varint not in its shortest form"},
		{
			"attributes out of order",
			tail(withAttrs.uvarint(2).str("b").uvarint(0).str("a").uvarint(0)),
			`attribute "a" after "b": keys out of order`,
		},
		{
			"attribute twice",
			tail(withAttrs.uvarint(2).str("a").uvarint(0).str("a").uvarint(0)),
			`attribute "a" after "a": keys out of order`,
		},
		{
			"identity id written out",
			tail(plain(entryHasUser).byte(0).str("1").str("").str("").str("").str("").str("").uvarint(0).uvarint(0)),
			`identity id "1" written out though it is the entry's`,
		},
		{
			"zero time written out",
			tail(plain(entryHasDisabledAt).varint(time.Time{}.Unix()).uvarint(0).varint(0)),
			"zero time written out",
		},
		{
			"nanoseconds",
			tail(plain(entryHasDisabledAt).varint(0).uvarint(1e9).varint(0)),
			"time with 1000000000 nanoseconds",
		},
		{
			"zone offset",
			tail(plain(entryHasDisabledAt).varint(0).uvarint(0).varint(maxZoneOffset + 1)),
			"time zone offset 86400s",
		},
		{"profile missing", tail(plain(entryHasProfile)), "truncated"},
		{"second identity missing", plain(entryHasUser | entryHasProfile).minimalIdentity(), "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeEntry(tt.v)
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeEntry(%x): got %v, want an error wrapping errCorrupt", tt.v, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decodeEntry(%x): got %q, want it to contain %q", tt.v, err, tt.want)
			}
		})
	}
}

// TestDecodeEntryTruncated cuts every test entry at every length: each cut is an error.
func TestDecodeEntryTruncated(t *testing.T) {
	for name, e := range codecEntries() {
		v := encodeEntry(&e)
		for n := range len(v) {
			if _, err := decodeEntry(v[:n]); !errors.Is(err, errCorrupt) {
				t.Errorf("%s cut to %d of %d bytes: got %v, want an error wrapping errCorrupt", name, n, len(v), err)
			}
		}
	}
}

// TestDecodeSharesNothingWritable checks that lists cut from a shared block do not
// reach into each other: appending to every list of one entry changes no other list.
func TestDecodeSharesNothingWritable(t *testing.T) {
	var d decoder
	want := []dsync.Entry{fullEntry("a"), fullEntry("b")}
	var got []dsync.Entry
	for _, e := range want {
		e, err := d.entry(encodeEntry(&e))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	for _, id := range []*dsync.Identity{got[0].User, got[0].Profile} {
		_ = append(id.Groups, "appended")
		_ = append(id.Attributes, dsync.Attribute{Name: "appended"})
		for _, a := range id.Attributes {
			_ = append(a.Values, "appended")
		}
	}
	if diff := cmp.Diff(want, got, sameTime); diff != "" {
		t.Errorf("entries changed by appends to the first one's lists (-want +got):\n%s", diff)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, e := range codecEntries() {
		f.Add(encodeEntry(&e))
	}
	f.Add([]byte(nil))
	f.Add([]byte(`{"id":"1"}`))
	f.Add([]byte{entryFormat, entryHasUser | entryHasProfile, 1, '1', 0, 0, identityActive, 1, '2'})
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := decodeEntry(v)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeEntry: got %v, want an error wrapping errCorrupt", err)
			}
			return
		}
		// The encoding is canonical: what decodes encodes back to the same bytes.
		again := encodeEntry(&e)
		if !bytes.Equal(again, v) {
			t.Fatalf("encodeEntry(decodeEntry(v)):\ngot  %x\nwant %x", again, v)
		}
		e2, err := decodeEntry(again)
		if err != nil {
			t.Fatalf("decodeEntry(encodeEntry(decodeEntry(v))): %v", err)
		}
		if diff := cmp.Diff(e, e2, sameTime); diff != "" {
			t.Fatalf("decoding again (-first +second):\n%s", diff)
		}
	})
}

func TestSnapshotCorruptEntry(t *testing.T) {
	good := fullEntry("1")
	v := encodeEntry(&good)
	tests := []struct {
		name string
		key  string
		v    []byte
		want string
	}{{
		name: "truncated",
		key:  "2",
		v:    v[:len(v)-3],
		want: `state: snapshot of haplo: entry "2": corrupt entry: byte `,
	}, {
		name: "json",
		key:  "2",
		v:    []byte(`{"id":"2"}`),
		want: `state: snapshot of haplo: entry "2": corrupt entry: JSON, as schema version 1 stored entries`,
	}, {
		name: "under another id",
		key:  "2",
		v:    v,
		want: `state: snapshot of haplo: entry "2": corrupt entry: it holds the entry of "1"`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, tempPath(t), Options{})
			fillSink(t, s, "haplo", 100, func(i int) dsync.Entry { return fullEntry(fmt.Sprint("ok", i)) })
			err := s.db.Update(func(tx *bolt.Tx) error { return sinkBucket(tx, "haplo").Put([]byte(tt.key), tt.v) })
			if err != nil {
				t.Fatal(err)
			}
			snap, err := s.Snapshot("haplo")
			if err == nil {
				t.Fatalf("Snapshot: got %d entries and no error, want an error", len(snap))
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Snapshot: got %q, want it to start %q", err, tt.want)
			}
			if _, err := entriesOf(s, "haplo"); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Entries: got %v, want an error starting %q", err, tt.want)
			}
			if _, err := s.Snapshot("scim"); err != nil {
				t.Errorf("Snapshot of another sink: %v", err)
			}
		})
	}
}

// TestSnapshotNestedBucket: a sink's bucket holds entries only; a bucket inside it is
// an error, not something to skip.
func TestSnapshotNestedBucket(t *testing.T) {
	s := openStore(t, tempPath(t), Options{})
	if err := s.Put("haplo", fullEntry("1")); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := sinkBucket(tx, "haplo").CreateBucket([]byte("2"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `state: snapshot of haplo: "2" is a bucket, not an entry`
	if _, err := s.Snapshot("haplo"); err == nil || err.Error() != want {
		t.Errorf("Snapshot: got %v, want %q", err, want)
	}
	if _, err := entriesOf(s, "haplo"); err == nil || err.Error() != want {
		t.Errorf("Entries: got %v, want %q", err, want)
	}
}
