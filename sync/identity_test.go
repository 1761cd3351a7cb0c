package sync

import (
	"math/rand/v2"
	"net/mail"
	"strings"
	"testing"
)

// TestSimpleEmail: every address the fast path takes, the parser takes too.
func TestSimpleEmail(t *testing.T) {
	slow := func(s string) bool {
		a, err := mail.ParseAddress(s)
		return err == nil && a.Address == s && CheckText(s, MaxEmailBytes) == "" && strings.Count(s, "@") == 1
	}
	for _, s := range []string{"ann@example.org", "a.b+c@x-y.example", "!#$%&'*+-/=?^_`{|}~@a.b", "a@b", "A@B.C"} {
		if !simpleEmail(s) || !slow(s) {
			t.Errorf("%q: fast %v, parser %v; want both true", s, simpleEmail(s), slow(s))
		}
	}
	for _, s := range []string{"", "@a.b", "a@", "a..b@c", ".a@b", "a.@b", "a@b..c", "a@.b", "a@b.", "a b@c", "a@b_c", "é@a.b", "a@@b", "\"a\"@b"} {
		if simpleEmail(s) {
			t.Errorf("%q: the fast path takes it", s)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "ab9.@-_+\"' é<>"
	buf := make([]byte, 0, 12)
	for range 300000 {
		buf = buf[:0]
		for range rng.IntN(10) {
			buf = append(buf, alphabet[rng.IntN(len(alphabet))])
		}
		if s := string(buf); simpleEmail(s) && !slow(s) {
			t.Fatalf("%q: the fast path takes it, the parser does not", s)
		}
	}
}

// The ASCII fast paths of CheckID and checkText answer as the rune-by-rune checks do,
// over random strings weighted towards ASCII, control characters, the edges of the
// printable range and format characters.
func TestChecksFastPathsAgree(t *testing.T) {
	pieces := []string{"a", "Z", "0", " ", "~", "@", ".", "-", "\x1f", "\x7f", "\x00", "\t", "\n", "\r",
		"\u00ad", "\u200b", "\u200d", "\ufeff", "é", "漢", "\xff", "\xc3", "\u0080", "\u009f"}
	r := rand.New(rand.NewPCG(8, 8))
	for range 200_000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		s := b.String()
		if got, want := CheckID(s), checkID(s); got != want {
			t.Fatalf("CheckID(%q) = %q, want %q", s, got, want)
		}
		max := r.IntN(14)
		for _, lines := range []bool{false, true} {
			if got, want := checkText(s, max, lines), checkRunes(s, max, lines); got != want {
				t.Fatalf("checkText(%q, %d, %v) = %q, want %q", s, max, lines, got, want)
			}
		}
	}
	if got := CheckID(strings.Repeat("a", MaxIDBytes+1)); got != checkID(strings.Repeat("a", MaxIDBytes+1)) {
		t.Errorf("CheckID of %d bytes: %q", MaxIDBytes+1, got)
	}
}
