package haplotest

import "slices"

// The data-import instructions (data_import_instructions.js): each builder
// prepares one instruction of a control file for a run, reporting problems
// with it as the framework does.

var instructionBuilders map[string]func(r *run, inst map[string]any) (instr, error)

func init() {
	instructionBuilders = map[string]func(r *run, inst map[string]any) (instr, error){
		"field": buildField, "field-structured": buildFieldStructured,
		"set-value": buildSetValue, "remove-values": buildRemoveValues,
		"if-exists": buildIfExists, "if-value-one-of": buildIfValueOneOf,
		"if-has-value": buildIfHasValue, "within": buildWithin, "for-each": buildForEach,
		"new": buildNew, "load": buildLoad, "assert-destination": buildAssertDestination,
		"abort-record": buildAbortRecord, "log-error": buildLogError,
	}
}

// valueInstruction is what commonValueInstructionDecode finds.
type valueInstruction struct {
	d          *destination
	name       string
	multivalue bool
	vt         transformer
}

func (r *run) decodeValueInstruction(inst map[string]any, action, source string) (*valueInstruction, error) {
	dname := prop(inst, "destination")
	d, ok := r.model[dname]
	if !ok {
		r.report("Unknown destination in " + action + ": " + dname)
		return nil, nil
	}
	name := prop(inst, "name")
	def, ok := d.names[name]
	if !ok {
		r.report("Unknown name in " + action + " " + name + " for destination " + dname)
		return nil, nil
	}
	vt, err := r.transformerFor(def.typ, inst, source)
	if err != nil || vt == nil {
		return nil, err
	}
	if _, ok := inst["qualifier"]; ok {
		// No qualifiers exist in the fake application's schema.
		r.report("Invalid qualifier in " + action + " " + dname + "/" + name)
	}
	return &valueInstruction{d: d, name: name, multivalue: truthy(inst["multivalue"]), vt: vt}, nil
}

// set transforms v and, unless that gives undefined, adds it to the target.
func (vi *valueInstruction) set(t *transformation, v any) error {
	tv, err := vi.vt(v)
	if err != nil {
		return err
	}
	return vi.add(t, tv)
}

// add adds a transformed value to the target, unless it is undefined.
func (vi *valueInstruction) add(t *transformation, tv any) error {
	if tv == nil {
		return nil
	}
	target, err := t.getTarget(vi.d.name)
	if err != nil {
		return err
	}
	vi.d.addValue(tv, target, vi.name, vi.multivalue)
	return nil
}

func buildField(r *run, inst map[string]any) (instr, error) {
	source := prop(inst, "source")
	vi, err := r.decodeValueInstruction(inst, "field", "input field "+source)
	if vi == nil {
		return nil, err
	}
	return func(t *transformation, ctx any) error {
		v, err := ctxGet(ctx, source)
		if err != nil || !truthy(v) { // falsy values ("", 0, false, null) are skipped
			return err
		}
		return vi.set(t, v)
	}, nil
}

func buildFieldStructured(r *run, inst map[string]any) (instr, error) {
	structured := prop(inst, "structured")
	vi, err := r.decodeValueInstruction(inst, "field-structured", "structured input field "+structured)
	if vi == nil {
		return nil, err
	}
	if _, ok := r.model[structured]; !ok {
		r.report("Unknown structured value destination in field-structured: " + structured)
		return nil, nil
	}
	return func(t *transformation, ctx any) error {
		v, err := t.getTarget(structured)
		if err != nil {
			return err
		}
		if err := vi.set(t, v); err != nil {
			return err
		}
		t.clearTarget(structured)
		return nil
	}, nil
}

func buildSetValue(r *run, inst map[string]any) (instr, error) {
	vi, err := r.decodeValueInstruction(inst, "set-value", "set value "+prop(inst, "destination")+"/"+prop(inst, "name"))
	if vi == nil {
		return nil, err
	}
	constant := inst["value"]
	var transformed any
	done := 0 // the batch whose transformed constant is kept
	return func(t *transformation, ctx any) error {
		if done != t.r.batch { // the constant is transformed once per batch
			v, err := vi.vt(constant)
			if err != nil {
				return err
			}
			transformed, done = v, t.r.batch
		}
		return vi.add(t, transformed)
	}, nil
}

func buildRemoveValues(r *run, inst map[string]any) (instr, error) {
	dname := prop(inst, "destination")
	d, ok := r.model[dname]
	if !ok {
		r.report("Unknown destination in remove-values: " + dname)
		return nil, nil
	}
	name := prop(inst, "name")
	if _, ok := d.names[name]; !ok {
		r.report("Unknown name in remove-values for destination " + dname)
		return nil, nil
	}
	return func(t *transformation, ctx any) error {
		target, err := t.getTarget(dname) // loads the target, so existing objects are modified
		if err == nil {
			d.removeValues(target, name)
		}
		return err
	}, nil
}

func (r *run) thenElse(inst map[string]any) (thenList, elseList []instr, err error) {
	if thenList, err = r.prepareList(inst["then"]); err != nil {
		return nil, nil, err
	}
	elseList, err = r.prepareList(inst["else"])
	return thenList, elseList, err
}

func buildIfExists(r *run, inst map[string]any) (instr, error) {
	source := prop(inst, "source")
	thenList, elseList, err := r.thenElse(inst)
	if err != nil {
		return nil, err
	}
	return func(t *transformation, ctx any) error {
		has, err := ctxHas(ctx, source)
		if err != nil {
			return err
		}
		if has {
			return t.exec(thenList, ctx)
		}
		return t.exec(elseList, ctx)
	}, nil
}

func buildIfValueOneOf(r *run, inst map[string]any) (instr, error) {
	source := prop(inst, "source")
	values, _ := inst["values"].([]any)
	thenList, elseList, err := r.thenElse(inst)
	if err != nil {
		return nil, err
	}
	return func(t *transformation, ctx any) error {
		v, err := ctxGet(ctx, source)
		if err != nil {
			return err
		}
		has, err := ctxHas(ctx, source)
		if err != nil {
			return err
		}
		if has && slices.ContainsFunc(values, func(x any) bool { return strictEqual(x, v) }) {
			return t.exec(thenList, ctx)
		}
		return t.exec(elseList, ctx)
	}, nil
}

func buildIfHasValue(r *run, inst map[string]any) (instr, error) {
	thenList, elseList, err := r.thenElse(inst)
	if err != nil {
		return nil, err
	}
	vi, err := r.decodeValueInstruction(inst, "if-has-value", "name "+prop(inst, "name"))
	if vi == nil {
		return nil, err
	}
	return func(t *transformation, ctx any) error {
		target, err := t.getTarget(vi.d.name)
		if err != nil {
			return err
		}
		if vi.d.hasValue(target, vi.name) {
			return t.exec(thenList, ctx)
		}
		return t.exec(elseList, ctx)
	}, nil
}

func buildWithin(r *run, inst map[string]any) (instr, error) {
	source := prop(inst, "source")
	list, err := r.prepareList(inst["instructions"])
	if err != nil {
		return nil, err
	}
	return func(t *transformation, ctx any) error {
		nested, err := ctxGet(ctx, source)
		if err != nil || !truthy(nested) {
			return err
		}
		return t.exec(list, nested)
	}, nil
}

func buildForEach(r *run, inst map[string]any) (instr, error) {
	source := prop(inst, "source")
	wrap := truthy(inst["wrapValues"])
	list, err := r.prepareList(inst["instructions"])
	if err != nil {
		return nil, err
	}
	return func(t *transformation, ctx any) error {
		v, err := ctxGet(ctx, source)
		if err != nil {
			return err
		}
		for _, nested := range eachValue(v) {
			if wrap {
				nested = map[string]any{"value": nested}
			}
			if err := t.exec(list, nested); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// eachValue is what underscore's _.each visits: an array's elements or an
// object's values (here in key order).
func eachValue(v any) []any {
	switch v := v.(type) {
	case []any:
		return v
	case map[string]any:
		var vs []any
		for _, k := range sortedKeys(v) {
			vs = append(vs, v[k])
		}
		return vs
	}
	return nil
}

func buildNew(r *run, inst map[string]any) (instr, error) {
	dname := prop(inst, "destination")
	return func(t *transformation, ctx any) error {
		d, err := t.commitCurrent(dname)
		if err == nil {
			t.setTarget(dname, d.newTarget())
		}
		return err
	}, nil
}

func buildLoad(r *run, inst map[string]any) (instr, error) {
	dname, using := prop(inst, "destination"), prop(inst, "using")
	_, haveOtherwise := inst["otherwise"]
	otherwise, err := r.prepareList(inst["otherwise"])
	if err != nil {
		return nil, err
	}
	return func(t *transformation, ctx any) error {
		loadInfo, err := t.getTarget(using)
		if err != nil {
			return err
		}
		d, err := t.commitCurrent(dname)
		if err != nil {
			return err
		}
		loaded := d.tryLoad(t.r.s, loadInfo)
		if loaded != nil {
			t.setTarget(dname, loaded)
		}
		t.clearTarget(using)
		if loaded != nil {
			return nil
		}
		if haveOtherwise {
			return t.exec(otherwise, ctx)
		}
		t.abort()
		t.r.report("Couldn't load destination: " + dname)
		return nil
	}, nil
}

func buildAssertDestination(r *run, inst map[string]any) (instr, error) {
	dname := prop(inst, "destination")
	if _, ok := r.model[dname]; !ok {
		r.report("Unknown destination in assert-destination: " + dname)
		return nil, nil
	}
	// haplo:person has no dependent destinations.
	r.report("Can only use dependent destinations in assert-destination: " + dname)
	return nil, nil
}

func buildAbortRecord(r *run, inst map[string]any) (instr, error) {
	message := "abort"
	if truthy(inst["message"]) {
		message = jsString(inst["message"])
	}
	return func(t *transformation, ctx any) error {
		t.abort()
		t.r.report(message)
		return nil
	}, nil
}

func buildLogError(r *run, inst map[string]any) (instr, error) {
	message := "error"
	if truthy(inst["message"]) {
		message = jsString(inst["message"])
	}
	return func(t *transformation, ctx any) error {
		t.r.report(message)
		return nil
	}, nil
}
