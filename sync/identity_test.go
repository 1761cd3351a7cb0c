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
