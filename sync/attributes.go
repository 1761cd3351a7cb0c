package sync

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// Attributes are an identity's profile attributes: each name once, with its values,
// in the order of their names. A person has a handful, so a list is both smaller and
// faster than a map: a map of one attribute took 463 bytes in 3 allocations and 786 ns
// to build, and a quarter of a 100,000-person no-op's peak RSS went with the maps
// (docs/DESIGN-NOTES.md).
// Get, Set and Delete keep the order; Normalize restores it on a list built otherwise.
// Set and Delete change the list, never the values in it: a copy made with
// slices.Clone can be changed without touching the original.
// In JSON (plan files) they are an object, as they were when they were a map.
type Attributes []Attribute

// Attribute is one profile attribute and its values.
type Attribute struct {
	Name   string
	Values []string
}

// AttributesOf returns m as Attributes, in order, its empty values left out; nil when
// none is left.
func AttributesOf(m map[string][]string) Attributes {
	var a Attributes
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if len(m[name]) > 0 {
			a = append(a, Attribute{Name: name, Values: m[name]})
		}
	}
	return a
}

// Get returns the values of the attribute name, nil when there is none.
func (a Attributes) Get(name string) []string {
	for _, x := range a {
		if x.Name == name {
			return x.Values
		}
	}
	return nil
}

// Set gives the attribute name values: in its place, on a list in order (Normalize
// puts one in order).
func (a *Attributes) Set(name string, values []string) {
	i, found := slices.BinarySearchFunc(*a, name, byName)
	if found {
		(*a)[i].Values = values
		return
	}
	*a = slices.Insert(*a, i, Attribute{Name: name, Values: values})
}

// Delete removes the attribute name, if there is one. A list left empty becomes nil.
func (a *Attributes) Delete(name string) {
	*a = slices.DeleteFunc(*a, func(x Attribute) bool { return x.Name == name })
	if len(*a) == 0 {
		*a = nil
	}
}

// Equal reports whether a and b have the same attributes with the same values, in
// the same order.
func (a Attributes) Equal(b Attributes) bool {
	return slices.EqualFunc(a, b, func(x, y Attribute) bool {
		return x.Name == y.Name && slices.Equal(x.Values, y.Values)
	})
}

// Ordered returns a with its names in order, each once (of a name given twice, the
// first): a itself when it already is so, otherwise a sorted copy.
func (a Attributes) Ordered() Attributes {
	if a.ordered() {
		return a
	}
	c := slices.Clone(a)
	slices.SortStableFunc(c, compareNames)
	return slices.CompactFunc(c, func(x, y Attribute) bool { return x.Name == y.Name })
}

func (a Attributes) ordered() bool {
	for i := 1; i < len(a); i++ {
		if a[i-1].Name >= a[i].Name {
			return false
		}
	}
	return true
}

// Clone returns a copy of a that shares no list with it.
func (a Attributes) Clone() Attributes {
	if a == nil {
		return nil
	}
	c := make(Attributes, len(a))
	for i, x := range a {
		c[i] = Attribute{Name: x.Name, Values: slices.Clone(x.Values)}
	}
	return c
}

// Map returns the attributes as a map, nil when there are none.
func (a Attributes) Map() map[string][]string {
	if len(a) == 0 {
		return nil
	}
	m := make(map[string][]string, len(a))
	for _, x := range a {
		m[x.Name] = x.Values
	}
	return m
}

// MarshalJSON writes the attributes as an object: {"name": ["value"]}.
func (a Attributes) MarshalJSON() ([]byte, error) { return json.Marshal(a.Map()) }

// UnmarshalJSON reads an object such as MarshalJSON writes, in any order.
func (a *Attributes) UnmarshalJSON(b []byte) error {
	var m map[string][]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*a = AttributesOf(m)
	return nil
}

func byName(x Attribute, name string) int { return strings.Compare(x.Name, name) }

func compareNames(x, y Attribute) int { return strings.Compare(x.Name, y.Name) }
