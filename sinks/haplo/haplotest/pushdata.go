package haplotest

import (
	"errors"
	"io"
	"net/http"
	"slices"
)

// The push-data REST API (haplo_data_import_api).

type pushResponse struct {
	Result     string          `json:"result"`
	Applied    int             `json:"applied"`
	Failures   int             `json:"failures"`
	ErrorCount int             `json:"errorCount"`
	Errors     []string        `json:"errors"`
	Actions    []*recordAction `json:"actions"`
}

const pushIndent = "    " // the API pretty-prints its JSON with four spaces

func (s *Server) handlePushDataGet(w http.ResponseWriter, r *http.Request, c *caller, args []string) {
	if len(args) == 0 {
		badRequest(w)
		return
	}
	writeJSON(w, http.StatusBadRequest, struct {
		Result     string   `json:"result"`
		Applied    int      `json:"applied"`
		Failures   int      `json:"failures"`
		ErrorCount int      `json:"errorCount"`
		Errors     []string `json:"errors"`
	}{"error", 0, 0, 1, []string{"Only POST requests supported for push data REST APIs."}}, pushIndent)
}

func (s *Server) handlePushData(w http.ResponseWriter, r *http.Request, c *caller, args []string) {
	if len(args) == 0 {
		badRequest(w)
		return
	}
	resp := &pushResponse{Result: "success", Errors: []string{}, Actions: []*recordAction{}}
	switch name := args[0]; {
	case name != s.opt.ImportName:
		resp.Result, resp.ErrorCount = "error", 1
		resp.Errors = append(resp.Errors, "API not defined: "+name)
	case !c.importAPI:
		resp.Result, resp.ErrorCount = "not authorised", 1
	default:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			resp.Result = "error"
			resp.Errors = append(resp.Errors, "Exception when processing: "+err.Error())
			break
		}
		s.runImport(body, resp)
	}
	status := http.StatusOK
	switch resp.Result {
	case "success":
	case "not authorised":
		status = http.StatusForbidden
	default:
		status = http.StatusBadRequest
	}
	writeJSON(w, status, resp, pushIndent)
}

// runImport transforms and commits each record of body. s.mu is held.
func (s *Server) runImport(body []byte, resp *pushResponse) {
	r, err := s.preparedRun()
	err = func() error {
		if err != nil {
			return err
		}
		records, err := readRecords(fileSpec(s.control), body)
		if err != nil {
			return err
		}
		for _, record := range records {
			r.action = &recordAction{Changed: []changed{}}
			t := r.newTransformation()
			if err := t.transform(record); err != nil {
				return err
			}
			r.action.Record = r.recordID
			resp.Actions = append(resp.Actions, r.action)
			if !t.complete {
				resp.Failures++
				resp.Result = "failure"
				continue
			}
			if err := t.commit(); err != nil {
				return err
			}
			resp.Applied++
		}
		resp.ErrorCount = r.errorCount
		return nil
	}()
	resp.Errors = append(resp.Errors, r.errors...)
	if err != nil {
		resp.Result = "error"
		resp.Errors = append(resp.Errors, "Exception when processing: "+err.Error())
	}
}

// prepared is the control file's instructions as preparing them left them, with the
// run they are bound to. Haplo prepares them for every batch; preparing gives the same
// result while the control file and the schema stay the same, so the server prepares
// them once for each schema and resets their run for every push.
type prepared struct {
	run        *run
	err        error    // the exception preparing threw, if any
	errors     []string // what preparing reported
	errorCount int
}

// preparedRun returns the run for a push: its instructions prepared for the current
// schema (SetPersonHasBehaviour drops them), and what preparing them reported, as a new
// run would have them. s.mu is held.
func (s *Server) preparedRun() (*run, error) {
	p := s.prepared
	if p == nil {
		r := &run{s: s, model: s.model}
		var err error
		r.instructions, err = r.prepareList(s.control["instructions"])
		p = &prepared{run: r, err: err, errors: r.errors, errorCount: r.errorCount}
		s.prepared = p
	}
	r := p.run
	*r = run{s: s, model: r.model, instructions: r.instructions, batch: r.batch + 1,
		errors: slices.Clone(p.errors), errorCount: p.errorCount}
	return r, p.err
}

// readRecords is the json reader: the body is one record with singleRecord,
// otherwise an array (or object) of records.
func readRecords(spec map[string]any, body []byte) ([]any, error) {
	v, ok := decodeJSON(body)
	if !ok {
		return nil, errSyntax
	}
	if truthy(spec["singleRecord"]) {
		return []any{v}, nil
	}
	return eachValue(v), nil
}

var errSyntax = errors.New("SyntaxError: Unable to parse JSON string")
