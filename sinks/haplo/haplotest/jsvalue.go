package haplotest

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Haplo's plugins are JavaScript. These helpers give decoded JSON values
// (nil, bool, float64, string, []any, map[string]any) the JavaScript
// semantics the plugins rely on. nil stands for both null and undefined.

// truthy is JavaScript's truthiness.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case float64:
		return v != 0 && !math.IsNaN(v)
	default:
		return true
	}
}

// jsString is JavaScript's String(v).
func jsString(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return jsNumber(v)
	case refValue:
		return formatRef(int64(v))
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			if e != nil {
				parts[i] = jsString(e)
			}
		}
		return strings.Join(parts, ",")
	default:
		return "[object Object]"
	}
}

// jsNumber formats a number as JavaScript does, for the usual cases.
func jsNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == math.Trunc(f) && math.Abs(f) < 1e21:
		return strconv.FormatFloat(f, 'f', -1, 64)
	default:
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
}

// strictEqual is JavaScript's === for decoded JSON values: objects and
// arrays are never equal to a separately decoded value.
func strictEqual(a, b any) bool {
	switch a := a.(type) {
	case nil, bool, string, float64, refValue:
		return a == b
	default:
		return false
	}
}

// deepEqual is underscore's _.isEqual for decoded JSON values.
func deepEqual(a, b any) bool { return reflect.DeepEqual(a, b) }

// toGeneric turns v into decoded-JSON form by a round trip.
func toGeneric(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var g any
	_ = json.Unmarshal(b, &g)
	return g
}

// decodeJSON decodes one JSON value, reporting false for anything that is not exactly
// one well-formed value (json.Unmarshal refuses trailing data). An object's keys, in
// the order JavaScript iterates them, are objectKeys'.
func decodeJSON(b []byte) (v any, ok bool) {
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, false
	}
	return v, true
}

// objectKeys returns the distinct top-level keys of a JSON object in order.
func objectKeys(b []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var keys []string
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		k, _ := t.(string)
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return keys
		}
	}
	return keys
}

// encoder appends values to a buffer as JSON.stringify would, without HTML escaping,
// with one json.Encoder for them all.
type encoder struct {
	b   *bytes.Buffer
	enc *json.Encoder
}

func newEncoder(b *bytes.Buffer) encoder {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	return encoder{b, enc}
}

// put appends v's JSON, or null if v cannot be encoded (Encode writes nothing then).
func (e encoder) put(v any) {
	if err := e.enc.Encode(v); err != nil {
		e.b.WriteString("null")
		return
	}
	e.b.Truncate(e.b.Len() - 1) // Encode's newline
}
