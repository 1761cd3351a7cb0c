package haplotest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// An interpreter for data-import control files, following the Haplo data
// import framework: a run (Haplo's Batch) prepares the instructions, then
// transforms each record into destination targets and commits complete ones.

const maxErrorsToReport = 500

// run is one batch: one push-data request.
type run struct {
	s     *Server
	model map[string]*destination // the haplo:person model, as the schema is now

	instructions []instr
	errors       []string
	errorCount   int
	recordID     string
	recordCount  int
	// batch numbers the pushes a prepared run has served (see preparedRun): what an
	// instruction keeps for one batch, it keeps for one number.
	batch          int
	titleHintGiven bool
	action         *recordAction // the record being processed
}

type recordAction struct {
	Record  string    `json:"record"`
	Changed []changed `json:"changed"`
}

type changed struct {
	Kind        string `json:"kind"`
	Destination string `json:"destination"`
	Ref         string `json:"ref"`
	New         bool   `json:"new"`
}

// report is Batch._reportError: the message, suffixed with the record.
func (r *run) report(msg string) {
	r.errorCount++
	switch {
	case r.errorCount < maxErrorsToReport:
		if r.recordID != "" {
			msg += " (" + r.recordID + ")"
		}
		r.errors = append(r.errors, msg)
	case r.errorCount == maxErrorsToReport:
		r.errors = append(r.errors, "Too many errors in import batch, no further errors will be reported")
	}
}

// instr is a prepared instruction. An error is a JavaScript exception: it
// ends the whole request with result "error".
type instr func(t *transformation, ctx any) error

type transformation struct {
	r          *run
	targets    map[string]any
	order      []string // target names in insertion order, as a JS object keeps them
	committers []func() error
	complete   bool
}

func (r *run) newTransformation() *transformation {
	r.recordID = fmt.Sprintf("record %d", r.recordCount)
	r.recordCount++
	return &transformation{r: r, targets: map[string]any{}, complete: true}
}

func (t *transformation) abort() { t.complete = false }

func (t *transformation) exec(list []instr, ctx any) error {
	for _, in := range list {
		if err := in(t, ctx); err != nil {
			return err
		}
	}
	return nil
}

func (t *transformation) setTarget(name string, target any) {
	if _, ok := t.targets[name]; !ok {
		t.order = append(t.order, name)
	}
	t.targets[name] = target
}

func (t *transformation) clearTarget(name string) {
	if _, ok := t.targets[name]; ok {
		delete(t.targets, name)
		t.order = slices.DeleteFunc(t.order, func(n string) bool { return n == name })
	}
}

// getTarget returns the destination's target, making a blank one for a
// pseudo destination. A real destination must have been made ready by new
// or load, or the record is aborted.
func (t *transformation) getTarget(name string) (any, error) {
	if target, ok := t.targets[name]; ok {
		return target, nil
	}
	d, ok := t.r.model[name]
	if !ok {
		return nil, fmt.Errorf("No destination when requesting target: %s", name)
	}
	if !d.pseudo {
		t.abort()
		t.r.report(`Destination "` + name + `" needs be made ready with a "new" or "load" instruction`)
	}
	target := d.newTarget()
	t.setTarget(name, target)
	return target, nil
}

// commitCurrent queues the commit of the destination's current target, if
// any, so that a new or loaded one can replace it.
func (t *transformation) commitCurrent(name string) (*destination, error) {
	d, ok := t.r.model[name]
	if !ok {
		return nil, fmt.Errorf("Unknown destination: %s", name)
	}
	if current, ok := t.targets[name]; ok {
		d.check(current, t)
		t.committers = append(t.committers, d.committer(current, t))
		t.clearTarget(name)
	}
	return d, nil
}

func (t *transformation) transform(record any) error {
	if err := t.exec(t.r.instructions, record); err != nil {
		return err
	}
	if t.complete {
		for _, name := range personDestinations {
			d := t.r.model[name]
			if d.pseudo {
				continue
			}
			d.check(t.targets[name], t) // no destination of haplo:person is optional
		}
	}
	return nil
}

func (t *transformation) commit() error {
	committers := t.committers
	for _, name := range t.order {
		committers = append(committers, t.r.model[name].committer(t.targets[name], t))
	}
	for _, c := range committers {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

// ctxGet is context[key].
func ctxGet(ctx any, key string) (any, error) {
	switch c := ctx.(type) {
	case map[string]any:
		return c[key], nil
	case []any:
		if i, ok := arrayIndex(key); ok && i < len(c) {
			return c[i], nil
		}
		return nil, nil
	case nil:
		return nil, fmt.Errorf(`Cannot read property "%s" from null`, key)
	}
	return nil, nil
}

// ctxHas is (key in context).
func ctxHas(ctx any, key string) (bool, error) {
	switch c := ctx.(type) {
	case map[string]any:
		_, ok := c[key]
		return ok, nil
	case []any:
		i, ok := arrayIndex(key)
		return ok && i < len(c), nil
	}
	return false, fmt.Errorf("Cannot use 'in' operator to search for '%s' in %s", key, jsString(ctx))
}

// arrayIndex parses a canonical array index ("0", "1", ...).
func arrayIndex(key string) (int, bool) {
	i, err := strconv.Atoi(key)
	return i, err == nil && i >= 0 && strconv.Itoa(i) == key
}

// prop is String(instruction[key]), "undefined" when it is missing.
func prop(inst map[string]any, key string) string {
	v, ok := inst[key]
	if !ok {
		return "undefined"
	}
	return jsString(v)
}

var errNoBatch = errors.New(`Cannot call method "_reportError" of undefined`)

// prepareList is Batch._prepareInstructionList.
func (r *run) prepareList(v any) ([]instr, error) {
	if !truthy(v) {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("Cannot find function forEach in object %s.", jsString(v))
	}
	var out []instr
	for _, e := range list {
		inst, _ := e.(map[string]any)
		if inst == nil {
			inst = map[string]any{}
		}
		action := "field"
		if truthy(inst["action"]) {
			action = jsString(inst["action"])
		}
		build, ok := instructionBuilders[action]
		if !ok {
			// The framework reports this through a property it does not have.
			return nil, errNoBatch
		}
		in, err := build(r, inst)
		if err != nil {
			return nil, err
		}
		if in != nil {
			out = append(out, in)
		}
	}
	return out, nil
}
