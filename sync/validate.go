package sync

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Limits on what a source may give, so that one bad export cannot put a 10 MB name or
// an invisible id into every application. Every source applies them the same way.
const (
	MaxIDBytes    = 256  // an anchor
	MaxEmailBytes = 254  // RFC 5321's path limit
	MaxTextRunes  = 1024 // a name, username or group
	MaxAttrRunes  = 4096 // one value of a profile attribute
)

// CheckID returns why s cannot be an anchor, or "" when it can. An anchor must be
// printable as it is: no control characters, and no format characters such as bidi
// overrides or a byte order mark, which make two different ids look the same.
func CheckID(s string) string {
	if s != "" && len(s) <= MaxIDBytes && printableASCII(s) {
		return "" // most ids: a UUID, a number, a username
	}
	return checkID(s)
}

// checkID is CheckID rune by rune.
func checkID(s string) string {
	switch {
	case s == "":
		return "empty id"
	case len(s) > MaxIDBytes:
		return fmt.Sprintf("id longer than %d bytes", MaxIDBytes)
	case !utf8.ValidString(s):
		return "id is not UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Sprintf("id holds the invisible character %U", r)
		}
	}
	return ""
}

// CheckText returns why s cannot be the value of a text field of at most max
// characters, or "" when it can: it must be UTF-8 without control characters (NUL,
// ESC, line breaks...). Format characters such as a zero-width joiner are allowed:
// names in many scripts need them.
func CheckText(s string, max int) string { return checkText(s, max, false) }

// CheckMultiline is CheckText for a profile attribute's value, which may hold line
// breaks and tabs (an address, a note).
func CheckMultiline(s string, max int) string { return checkText(s, max, true) }

func checkText(s string, max int, lines bool) string {
	if len(s) <= max && printableASCII(s) {
		return "" // most names and emails
	}
	return checkRunes(s, max, lines)
}

// checkRunes is checkText rune by rune.
func checkRunes(s string, max int, lines bool) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	n := 0
	for _, r := range s {
		if unicode.IsControl(r) && !(lines && (r == '\n' || r == '\r' || r == '\t')) {
			return fmt.Sprintf("control character %U", r)
		}
		n++
	}
	if n > max {
		return fmt.Sprintf("longer than %d characters", max)
	}
	return ""
}

// printableASCII reports whether s is ASCII without control characters: text every
// check above accepts without looking up a Unicode table per character (CheckID's
// range lookups were a tenth of an LDAP read's CPU at 100,000 entries).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
