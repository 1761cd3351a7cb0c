package haplotest

import (
	"slices"
	"strings"
)

// value is one attribute value of a store object.
type value struct {
	kind  string // data type: text, person-name, object-type, email-address, telephone-number, url
	text  string // as Haplo displays it, and as Profile.Attrs shows it
	parts string // what the display loses: a name's fields, a phone number's country
}

// object is a person object in the store.
type object struct {
	id    int64
	attrs map[string][]value
	saves int
}

func (o *object) clone() *object {
	c := &object{id: o.id, attrs: make(map[string][]value, len(o.attrs)), saves: o.saves}
	for k, vs := range o.attrs {
		c.attrs[k] = slices.Clone(vs)
	}
	return c
}

// valuesEqual is StoreObject.valuesEqual: the same values for every attribute.
func valuesEqual(a, b map[string][]value) bool {
	for k, vs := range a {
		if !slices.Equal(vs, b[k]) {
			return false
		}
	}
	for k, vs := range b {
		if len(vs) > 0 && len(a[k]) == 0 {
			return false
		}
	}
	return true
}

func (o *object) export() Profile {
	p := Profile{Ref: formatRef(o.id), Attrs: map[string][]string{}, Saves: o.saves}
	for k, vs := range o.attrs {
		if len(vs) == 0 {
			continue
		}
		texts := make([]string, len(vs))
		for i, v := range vs {
			texts[i] = v.text
		}
		p.Attrs[k] = texts
	}
	return p
}

// importObject builds an object from a seeded Profile, typing each value as
// the person schema does.
func importObject(p Profile) *object {
	o := &object{attrs: map[string][]value{}, saves: p.Saves}
	for _, code := range sortedKeys(p.Attrs) {
		for _, text := range p.Attrs[code] {
			o.attrs[code] = append(o.attrs[code], seededValue(code, text))
		}
	}
	return o
}

func seededValue(code, text string) value {
	kind := attributeTypes[code]
	switch kind {
	case "person-name":
		first, last := "", text
		if i := strings.LastIndexByte(text, ' '); i >= 0 {
			first, last = text[:i], text[i+1:]
		}
		return personName(map[string]string{"first": first, "last": last})
	case "telephone-number":
		return value{kind: kind, text: text, parts: "GB"}
	case "":
		kind = "text"
	}
	return value{kind: kind, text: text}
}

// personNameFields are the fields of a person-name value, in display order.
var personNameFields = []string{"title", "first", "middle", "last", "suffix"}

// personName builds a person-name value; it displays as its non-empty
// fields joined by spaces ("first last").
func personName(fields map[string]string) value {
	var shown, parts []string
	for _, f := range personNameFields {
		if v := fields[f]; v != "" {
			shown = append(shown, v)
		}
		parts = append(parts, fields[f])
	}
	return value{kind: "person-name", text: strings.Join(shown, " "), parts: strings.Join(parts, "\x00")}
}
