package haplotest

import (
	"errors"
	"slices"
	"strings"
)

// Control-file validation, as the data import framework's
// validate-control service does it, with its messages.

var instructionExpectedProperties = map[string][]string{
	"field":              {"source", "destination", "name"},
	"field-structured":   {"structured", "destination", "name"},
	"set-value":          {"destination", "name", "value"},
	"remove-values":      {"destination", "name"},
	"if-exists":          {"source"},
	"if-value-one-of":    {"source"},
	"if-has-value":       {"destination", "name"},
	"within":             {"source"},
	"for-each":           {"source"},
	"assert-destination": {"destination", "exists"},
	"abort-record":       {"message"},
	"log-error":          {"message"},
	"new":                {"destination"},
	"load":               {"destination", "using"},
}

var instructionNested = map[string][]string{
	"if-exists":       {"then", "else"},
	"if-value-one-of": {"then", "else"},
	"if-has-value":    {"then", "else"},
	"for-each":        {"instructions"},
	"within":          {"instructions"},
}

var assignmentInstructions = []string{"field", "field-structured", "set-value"}

// The fake application implements one model and one reader.
var (
	availableModels  = []string{"haplo:person"}
	availableReaders = []string{"json"}
)

// parseControl parses and validates a control file. Errors read as Haplo's
// control-file form validation reads them.
func parseControl(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, errors.New("haplotest: Options.ControlFile is required")
	}
	v, ok := decodeJSON(b)
	if !ok {
		return nil, errors.New("haplotest: Not a valid JSON file")
	}
	c, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("haplotest: Not a valid control file: Not a control file")
	}
	if errs := validateControl(c); len(errs) > 0 {
		return nil, errors.New("haplotest: Not a valid control file: " + strings.Join(errs, ", "))
	}
	// What Haplo would only find when a request arrives.
	if fileSpec(c) == nil {
		return nil, errors.New("haplotest: Could not find file specification in control file for file body (and DEFAULT file entry does not exist)")
	}
	if usesRefMapping(c["instructions"]) {
		return nil, errors.New("haplotest: refMapping is not implemented")
	}
	return c, nil
}

func validateControl(c map[string]any) []string {
	var errs []string
	add := func(e string) {
		if e != "" {
			errs = append(errs, e)
		}
	}
	// Version
	if v, ok := c["dataImportControlFileVersion"]; !ok {
		add("Not a control file")
	} else if v != float64(0) {
		add("Bad version of control file, should be 0")
	}
	// Model
	if m, ok := c["model"]; !ok {
		add("Control file does not specify model in the model property")
	} else if !slices.Contains(availableModels, jsString(m)) {
		add("Model not implemented: " + jsString(m))
	}
	// Instructions
	if inst, ok := c["instructions"]; !ok {
		add("Control file does not specify processing instructions in the instructions property")
	} else {
		add(validateInstructions(inst, nil))
	}
	// Input files
	if files, ok := c["files"]; !ok {
		add("Control file does not have files property")
	} else {
		m, _ := files.(map[string]any)
		e := ""
		for _, name := range sortedKeys(m) {
			spec, _ := m[name].(map[string]any)
			if read, ok := spec["read"]; !ok {
				e = "Reader not specified for file " + name
			} else if !slices.Contains(availableReaders, jsString(read)) {
				e = "Unknown reader for file " + name + ": " + jsString(read)
			}
		}
		add(e)
	}
	// Record processor
	if p, ok := c["recordProcessor"]; ok {
		add("Unknown record processor specified in recordProcessor property: " + jsString(p))
	}
	return errs
}

// validateInstructions returns the first problem in a list of instructions.
// valid is the framework's validSingleAssignDestinations: nil outside a
// for-each, otherwise the destinations made ready by new or load.
func validateInstructions(v any, valid *[]string) string {
	list, _ := v.([]any)
	for _, e := range list {
		inst, ok := e.(map[string]any)
		if !ok {
			return "Instruction is not an object: " + jsString(e)
		}
		action := "field"
		if truthy(inst["action"]) {
			action = jsString(inst["action"])
		}
		expected, known := instructionExpectedProperties[action]
		if !known {
			return "Unknown action in instruction: " + prop(inst, "action")
		}
		var missing []string
		for _, p := range expected {
			if _, ok := inst[p]; !ok {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return "Expected property not found in " + action + " instruction: " + strings.Join(missing, ", ")
		}
		if valid != nil {
			dest := prop(inst, "destination")
			permitted := slices.Contains(*valid, dest)
			switch {
			case slices.Contains(assignmentInstructions, action) && !truthy(inst["multivalue"]) && !permitted:
				return "Assigning values within for-each without a new/load statement or setting multivalue property will result in overwritten data"
			case (action == "new" || action == "load") && !permitted:
				*valid = append(*valid, dest)
			}
		}
		for _, n := range instructionNested[action] {
			nested := valid
			if action == "for-each" {
				nested = &[]string{}
			}
			if e := validateInstructions(inst[n], nested); e != "" {
				return e
			}
		}
		if action == "field" {
			if fs, ok := inst["filters"]; ok {
				list, ok := fs.([]any)
				if !ok {
					return "'filters' property is not an array"
				}
				for _, f := range list {
					if !slices.Contains(filterNames, jsString(f)) {
						return "Filter " + jsString(f) + " is not available."
					}
				}
			}
		}
	}
	return ""
}

// fileSpec is the control file's specification for the request body, the
// single input file of a push-data request, which is named "body".
func fileSpec(c map[string]any) map[string]any {
	files, _ := c["files"].(map[string]any)
	if spec, ok := files["body"].(map[string]any); ok {
		return spec
	}
	spec, _ := files["DEFAULT"].(map[string]any)
	return spec
}

func usesRefMapping(v any) bool {
	switch v := v.(type) {
	case []any:
		return slices.ContainsFunc(v, usesRefMapping)
	case map[string]any:
		if _, ok := v["refMapping"]; ok {
			return true
		}
		for _, k := range []string{"then", "else", "otherwise", "instructions"} {
			if usesRefMapping(v[k]) {
				return true
			}
		}
	}
	return false
}
