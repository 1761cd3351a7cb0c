package haplotest

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The haplo:person data-import model: the profile destination (a
// std:type:person object) and the pseudo destinations load:by-ref and
// value:person-name.

const (
	attrTitle     = "dc:attribute:title"
	attrType      = "dc:attribute:type"
	attrBehaviour = "std:attribute:configured-behaviour"
	typePerson    = "std:type:person"
)

// personSchema maps the attributes of std:type:person in the fake
// application's schema to their data types. Like Haplo's default schema, it
// lacks std:attribute:configured-behaviour unless Options.PersonHasBehaviour
// adds it.
var personSchema = map[string]string{
	attrTitle:                        "person-name",
	attrType:                         "object-type",
	"std:attribute:email":            "email-address",
	"std:attribute:telephone-number": "telephone-number",
	"std:attribute:job-title":        "text",
	"std:attribute:url":              "url",
}

// attributeTypes is the data type of every attribute the application defines,
// whether or not std:type:person has it: the configured behaviour is a
// configuration name (O.T_IDENTIFIER_CONFIGURATION_NAME).
var attributeTypes = func() map[string]string {
	m := map[string]string{attrBehaviour: "configuration-name"}
	for code, typ := range personSchema {
		m[code] = typ
	}
	return m
}()

// configName is what O.text(O.T_IDENTIFIER_CONFIGURATION_NAME, ...) accepts.
var configName = regexp.MustCompile(`^[a-zA-Z0-9_-]+:[:a-zA-Z0-9_-]+$`)

// nameDef is a Name of a destination: a slot for values.
type nameDef struct {
	typ      string // value data type
	required bool
}

type destination struct {
	name   string
	pseudo bool // only collects values: never committed, never checked
	object bool // a store object; otherwise a dictionary
	names  map[string]nameDef
}

// personDestinations is the model's destinations in the order Haplo checks them.
var personDestinations = []string{"profile", "load:by-ref", "value:person-name"}

// newPersonModel builds the model from std:type:person's attributes: the
// profile destination has a Name for each. withBehaviour adds
// std:attribute:configured-behaviour to the type, as an application must for
// haplo:code-to-ref to find people.
func newPersonModel(withBehaviour bool) map[string]*destination {
	profile := &destination{name: "profile", object: true, names: map[string]nameDef{}}
	for code, typ := range personSchema {
		profile.names[code] = nameDef{typ: typ, required: code == attrTitle}
	}
	if withBehaviour {
		profile.names[attrBehaviour] = nameDef{typ: attributeTypes[attrBehaviour]}
	}
	return map[string]*destination{
		"profile": profile,
		"load:by-ref": {name: "load:by-ref", pseudo: true, names: map[string]nameDef{
			"ref": {typ: "ref"},
		}},
		"value:person-name": {name: "value:person-name", pseudo: true, names: map[string]nameDef{
			"title": {typ: "text"}, "first": {typ: "text"}, "middle": {typ: "text"},
			"last": {typ: "text", required: true}, "suffix": {typ: "text"},
		}},
	}
}

// objectTarget is a mutable copy of a store object, or a new one.
type objectTarget struct {
	id    int64 // 0 until a new object's ref is allocated
	isNew bool  // version 0: never saved
	attrs map[string][]value
}

func (d *destination) newTarget() any {
	if d.object {
		return &objectTarget{isNew: true, attrs: map[string][]value{}}
	}
	return map[string]any{}
}

// tryLoad loads a mutable copy of the object named by the load info's ref.
// A stale ref, or anything but a Ref, loads nothing.
func (d *destination) tryLoad(s *Server, loadInfo any) any {
	if !d.object {
		return nil
	}
	var ref any
	switch li := loadInfo.(type) {
	case map[string]any:
		ref = li["ref"]
	case *objectTarget:
		if li.id != 0 {
			ref = refValue(li.id)
		}
	}
	r, ok := ref.(refValue)
	if !ok {
		return nil
	}
	o, ok := s.objects[int64(r)]
	if !ok {
		return nil
	}
	c := o.clone()
	return &objectTarget{id: c.id, attrs: c.attrs}
}

func (d *destination) addValue(v any, target any, name string, multivalue bool) {
	switch t := target.(type) {
	case map[string]any:
		t[name] = v
	case *objectTarget:
		if !multivalue {
			delete(t.attrs, name)
		}
		t.attrs[name] = append(t.attrs[name], attrValue(v))
	}
}

func (d *destination) removeValues(target any, name string) {
	switch t := target.(type) {
	case map[string]any:
		delete(t, name)
	case *objectTarget:
		delete(t.attrs, name)
	}
}

func (d *destination) hasValue(target any, name string) bool {
	switch t := target.(type) {
	case map[string]any:
		_, ok := t[name]
		return ok
	case *objectTarget:
		return len(t.attrs[name]) > 0
	}
	return false
}

// check is checkTarget: a required destination must have a target, and an
// object must have a title.
func (d *destination) check(target any, t *transformation) {
	r := t.r
	switch tg := target.(type) {
	case nil:
		t.abort()
		r.report("No data set in required destination " + d.name)
	case map[string]any:
		var missing []string
		for n, def := range d.names {
			if _, ok := tg[n]; def.required && !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			t.abort()
			r.report("Missing values in " + d.name + ": " + strings.Join(missing, ", "))
		}
	case *objectTarget:
		if len(tg.attrs[attrTitle]) == 0 {
			t.abort()
			r.report("dc:attribute:title is not set in object " + d.name)
			if !r.titleHintGiven {
				r.titleHintGiven = true
				r.report("To set defaults for dc:attribute:title, see example of if-has-value instruction at https://docs.haplo.org/import/control/instruction/if-has-value")
			}
		}
	}
}

// committer returns what commits target when the record is complete. An
// object is saved only if it is new or its values changed, and each save is
// reported as an object:save action.
func (d *destination) committer(target any, t *transformation) func() error {
	tg, ok := target.(*objectTarget)
	if !ok {
		return func() error { return fmt.Errorf("Delegate for %s does not implement commit()", d.name) }
	}
	return func() error {
		s := t.r.s
		if len(tg.attrs[attrType]) == 0 {
			tg.attrs[attrType] = []value{{kind: "object-type", text: typePerson}}
		}
		if !tg.isNew {
			if cur, ok := s.objects[tg.id]; ok && valuesEqual(cur.attrs, tg.attrs) {
				return nil
			}
		}
		if tg.id == 0 {
			tg.id = s.allocObject()
		}
		t.r.action.Changed = append(t.r.action.Changed, changed{
			Kind: "object:save", Destination: d.name, Ref: formatRef(tg.id), New: tg.isNew,
		})
		saved := (&object{id: tg.id, attrs: tg.attrs}).clone()
		if cur, ok := s.objects[tg.id]; ok {
			saved.saves = cur.saves
		}
		saved.saves++
		s.putObject(saved)
		tg.isNew = false
		return nil
	}
}

// refValue is a Ref, as made by the haplo:string-to-ref filter.
type refValue int64

// attrValue turns a transformed value into an attribute value.
func attrValue(v any) value {
	switch v := v.(type) {
	case value:
		return v
	case string:
		return value{kind: "text", text: v}
	case refValue:
		return value{kind: "ref", text: formatRef(int64(v))}
	default:
		return value{kind: "text", text: jsString(v)}
	}
}

// transformer converts an input value to a destination's data type; a nil
// result is JavaScript's undefined and sets nothing.
type transformer func(v any) (any, error)

var (
	validURL     = regexp.MustCompile(`^[a-zA-Z+.\-]+:`)
	typeCodeLike = regexp.MustCompile(`^[a-zA-Z0-9_-]+:type:[:a-zA-Z0-9_-]+$`)
	fixableURL   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z+.\-/]+$`)
)

// typeExists reports whether code is in the application's TYPE dictionary.
func (s *Server) typeExists(code string) bool {
	if code == typePerson {
		return true
	}
	if s.opt.Types == nil {
		return typeCodeLike.MatchString(code)
	}
	return slices.Contains(s.opt.Types, code)
}

// baseTransformer is the value transformer for a data type.
func (r *run) baseTransformer(typ string, spec map[string]any, source string) transformer {
	switch typ {
	case "text":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case string:
				return v, nil
			case float64, bool:
				return jsString(v), nil
			}
			return nil, nil
		}
	case "ref":
		return func(v any) (any, error) {
			if ref, ok := v.(refValue); ok {
				return ref, nil
			}
			return nil, nil
		}
	case "object-type":
		return func(v any) (any, error) {
			code := "undefined"
			if v != nil {
				code = jsString(v)
			}
			if r.s.typeExists(code) {
				return value{kind: "object-type", text: code}, nil
			}
			return nil, nil
		}
	case "email-address":
		return func(v any) (any, error) {
			str, ok := v.(string)
			if !ok {
				return nil, nil
			}
			if strings.Index(str, "@") > 0 {
				return value{kind: "email-address", text: str}, nil
			}
			r.report("Invalid email address for " + source + ": " + str)
			return nil, nil
		}
	case "url":
		return func(v any) (any, error) {
			str, ok := v.(string)
			if !ok {
				return nil, nil
			}
			if validURL.MatchString(str) {
				return value{kind: "url", text: str}, nil
			}
			r.report("Invalid URL for " + source + ": " + str)
			return nil, nil
		}
	case "telephone-number":
		country := "GB"
		if c := spec["country"]; truthy(c) {
			country = jsString(c)
		}
		return func(v any) (any, error) {
			if str, ok := v.(string); ok {
				return value{kind: "telephone-number", text: str, parts: country}, nil
			}
			return nil, nil
		}
	case "configuration-name":
		// makeSimpleTextValueType: O.text throws for a bad code, which ends the
		// whole request with result "error".
		return func(v any) (any, error) {
			if !truthy(v) {
				return nil, nil
			}
			str, ok := v.(string)
			if !ok {
				return nil, errors.New("O.text(O.T_IDENTIFIER_CONFIGURATION_NAME,...) must be passed a String.")
			}
			if !configName.MatchString(str) {
				return nil, errors.New("O.text(O.T_IDENTIFIER_CONFIGURATION_NAME,...) must be formed of a-zA-Z0-9_ and contain at least one : separator.")
			}
			return value{kind: "configuration-name", text: str}, nil
		}
	case "person-name":
		return func(v any) (any, error) {
			if v == nil {
				return nil, fmt.Errorf(`Cannot read property "last" from null`)
			}
			m, ok := v.(map[string]any)
			if !ok || !truthy(m["last"]) {
				return nil, nil
			}
			fields := map[string]string{}
			for _, f := range personNameFields {
				if x := m[f]; x != nil {
					fields[f] = jsString(x)
				}
			}
			return personName(fields), nil
		}
	}
	return nil
}

// filterNames are the filters the fake application provides.
var filterNames = []string{
	"haplo:string-to-ref", "haplo:code-to-ref", "haplo:username-to-ref",
	"haplo:fix-up-url", "haplo:to-lower-case", "haplo:to-upper-case", "haplo:to-string",
}

func (r *run) filter(name string) (func(any) (any, error), bool) {
	switch name {
	case "haplo:string-to-ref":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case string:
				if id, ok := parseRef(v); ok {
					return refValue(id), nil
				}
			case refValue:
				return v, nil
			}
			return nil, nil
		}, true
	case "haplo:code-to-ref":
		// O.behaviourRefMaybe: the object whose std:attribute:configured-behaviour
		// holds the code (the lowest id if several do), whatever its type.
		return func(v any) (any, error) {
			switch v := v.(type) {
			case string:
				if id, ok := r.s.behaviourRef(v); ok {
					return refValue(id), nil
				}
			case refValue:
				return v, nil
			}
			return nil, nil
		}, true
	case "haplo:username-to-ref":
		return func(v any) (any, error) {
			str, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("Cannot find function toLowerCase in object %s.", jsString(v))
			}
			users := r.s.usersByTags(map[string]string{"username": strings.ToLower(str)})
			if len(users) == 0 || users[0].ref == "" {
				return nil, nil
			}
			id, _ := parseRef(users[0].ref)
			return refValue(id), nil
		}, true
	case "haplo:fix-up-url":
		return func(v any) (any, error) {
			str, ok := v.(string)
			if !ok {
				return nil, nil
			}
			if !strings.Contains(str, ":") && fixableURL.MatchString(str) {
				return "https://" + str, nil
			}
			return str, nil
		}, true
	case "haplo:to-lower-case", "haplo:to-upper-case":
		change := strings.ToLower
		if name == "haplo:to-upper-case" {
			change = strings.ToUpper
		}
		return func(v any) (any, error) {
			if str, ok := v.(string); ok {
				return change(str), nil
			}
			return v, nil
		}, true
	case "haplo:to-string":
		return func(v any) (any, error) {
			if v == nil {
				return nil, fmt.Errorf(`Cannot call method "toString" of null`)
			}
			return jsString(v), nil
		}, true
	}
	return nil, false
}

// transformerFor is Name.constructValueTransformerFor: the data type's
// transformer, behind the instruction's filters, behind its input mapping.
func (r *run) transformerFor(typ string, spec map[string]any, source string) (transformer, error) {
	vt := r.baseTransformer(typ, spec, source)
	if vt == nil {
		r.report("Unknown data type in model: " + typ)
		return nil, nil
	}
	if fs, ok := spec["filters"]; ok {
		list, _ := fs.([]any)
		for i := len(list) - 1; i >= 0; i-- {
			name := jsString(list[i])
			f, ok := r.filter(name)
			if !ok {
				return nil, fmt.Errorf("no filter defined for name: %s", name)
			}
			next := vt
			vt = func(v any) (any, error) {
				fv, err := f(v)
				if err != nil {
					return nil, err
				}
				return next(fv)
			}
		}
	}
	if mapping, ok := spec["mapInputValue"]; ok {
		def, haveDefault := spec["mapInputValueDefault"]
		next := vt
		vt = func(v any) (any, error) {
			m, ok := mapping.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("Cannot use 'in' operator to search for '%s' in %s", jsString(v), jsString(mapping))
			}
			key := "undefined"
			if v != nil {
				key = jsString(v)
			}
			if mv, ok := m[key]; ok {
				v = mv
			} else if haveDefault {
				v = def
			}
			return next(v)
		}
	}
	return vt, nil
}
