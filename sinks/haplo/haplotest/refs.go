package haplotest

import "strings"

// Haplo presents an object reference as the object id in hexadecimal, with the
// digits a-f replaced by q v w x y z so that a ref never reads as a word.
const refDigits = "0123456789qvwxyz"

// firstObjectID is where object ids start, so that refs look like Haplo's ("80000").
const firstObjectID = 0x80000

// formatRef returns the presentation string of an object id.
func formatRef(id int64) string {
	if id <= 0 {
		return ""
	}
	var b [16]byte
	i := len(b)
	for ; id > 0; id /= 16 {
		i--
		b[i] = refDigits[id%16]
	}
	return string(b[i:])
}

// parseRef parses a ref presentation string as O.ref does: it reports false
// for anything that does not match ^[0-9qvwxyz]+$ or names no possible object.
func parseRef(s string) (int64, bool) {
	if s == "" || len(s) > 15 {
		return 0, false
	}
	var id int64
	for _, c := range s {
		d := strings.IndexRune(refDigits, c)
		if d < 0 {
			return 0, false
		}
		id = id*16 + int64(d)
	}
	return id, id > 0
}
