package domo

import (
	"bytes"
	"encoding/json"
	"maps"
	"regexp"
	"strconv"
	"strings"

	dsync "github.com/idsync/idsync/sync"
)

// record is a Domo user as the API answers it, every field kept as it came, so that
// the whole record can be sent back with PUT and nothing idsync does not manage is
// lost. Domo does not say whether PUT replaces the user or merges into it (the Rust
// SDK says both); sending everything is right either way.
type record map[string]json.RawMessage

// readOnly are the fields of an answer that are not the user's own data: they are not
// sent back. groups in particular is the user's group membership, which the user API
// does not manage.
var readOnly = []string{"id", "createdAt", "updatedAt", "image", "groups", "deleted"}

// text is a field's value as text: a string's, a number's digits, "" for null or none.
func (r record) text(key string) string {
	raw, ok := r[key]
	if !ok {
		return ""
	}
	return jsonText(raw)
}

func jsonText(raw json.RawMessage) string {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return string(raw)
	}
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return string(raw)
}

// deleted reports a deleted user, which GET answers with a few fields and
// "deleted": true rather than 404.
func (r record) deleted() bool { return r.text("deleted") == "true" }

// set gives key the value v (a string, a json.Number, or nil for null) and reports
// whether that changed it. A value equal as text is left as it came, so that a number
// sent back stays a number.
func (r record) set(key string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil || r.text(key) == jsonText(b) {
		return false
	}
	r[key] = b
	return true
}

// hasRole reports whether the user has the role ro.
func (r record) hasRole(ro role) bool {
	if ro.id != 0 {
		return r.text("roleId") == strconv.FormatInt(ro.id, 10)
	}
	return r.text("role") == ro.name
}

// setRole gives the user the role ro and reports whether that changed it. A standard
// role is sent by name and a custom one by roleId, the other field left out: sending
// the old one with the new would ask for two roles. (Domo does not say that a roleId
// may stand without role, though its docs list roleId for custom roles; the contract
// server takes it.)
func (r record) setRole(ro role) bool {
	if r.hasRole(ro) {
		return false
	}
	if ro.id != 0 {
		r["roleId"] = json.RawMessage(strconv.FormatInt(ro.id, 10))
		delete(r, "role")
	} else {
		r["role"], _ = json.Marshal(ro.name)
		delete(r, "roleId")
	}
	return true
}

// body is the record as PUT sends it: without the read-only fields.
func (r record) body() record {
	b := maps.Clone(r)
	for _, k := range readOnly {
		delete(b, k)
	}
	return b
}

// displayName is the Domo name of an identity: its display name, or its first and
// last names.
func displayName(id *dsync.Identity) string {
	if n := strings.Join(strings.Fields(id.DisplayName), " "); n != "" {
		return n
	}
	return strings.Join(strings.Fields(id.FirstName+" "+id.LastName), " ")
}

// attribute is the first value of an identity's attribute, trimmed; "" for none.
func attribute(id *dsync.Identity, name string) string {
	if v := id.Attributes.Get(name); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// plainInt is an employee number sent as a JSON number: Domo's docs type the field as
// a string but every example sends a number, and the Rust SDK reads a u64. A number
// is taken either way; other values (leading zeros, letters) go as strings, which a
// number would mangle.
var plainInt = regexp.MustCompile(`^(0|[1-9][0-9]{0,17})$`)

// fieldValue is what set gives a Domo field for the attribute value v.
func fieldValue(field, v string) any {
	switch {
	case field != "employeeNumber":
		return v
	case v == "":
		return nil
	case plainInt.MatchString(v):
		return json.Number(v)
	}
	return v
}
