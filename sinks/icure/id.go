package icure

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"unicode"
)

// defaultNamespace is the UUID idsync derives iCure user ids under, unless
// id_namespace says otherwise. It was drawn at random once and must never change:
// every account idsync made is named under it.
const defaultNamespace = "a86350a5-c1f6-414c-827e-23e9fe257789"

// parseUUID reads a UUID in its canonical 8-4-4-4-12 hex form.
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, errors.New("not a UUID such as a86350a5-c1f6-414c-827e-23e9fe257789")
	}
	if _, err := hex.Decode(u[:], []byte(strings.ReplaceAll(s, "-", ""))); err != nil {
		return u, errors.New("not a UUID such as a86350a5-c1f6-414c-827e-23e9fe257789")
	}
	return u, nil
}

// nameUUID returns the name-based UUID (RFC 9562 version 5: SHA-1) of name in
// namespace.
func nameUUID(namespace [16]byte, name string) string {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// nameBased reports whether id is a version 5 UUID: one idsync derived, under some
// namespace, for some identity. iCure asks clients for random (version 4) ids, so an
// account with a name-based id is almost surely idsync's.
func nameBased(id string) bool {
	u, err := parseUUID(strings.ToLower(id))
	return err == nil && u[6]>>4 == 5 && u[8]&0xc0 == 0x80
}

// validID applies iCure's rule for the ids of documents it creates
// (EntityIdValidation): not empty, and no / \ ? # % ; whitespace or control character.
// Patient and healthcare party ids are such ids, so a value that breaks it cannot name
// one.
func validID(id string) bool {
	return id != "" && !strings.ContainsFunc(id, func(r rune) bool {
		return strings.ContainsRune(`/\?#%;`, r) || unicode.IsSpace(r) || unicode.IsControl(r)
	})
}
