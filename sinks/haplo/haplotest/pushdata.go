package haplotest

import (
	"errors"
	"io"
	"net/http"
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
	r := &run{s: s, model: s.model}
	err := func() error {
		var err error
		if r.instructions, err = r.prepareList(s.control["instructions"]); err != nil {
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

// readRecords is the json reader: the body is one record with singleRecord,
// otherwise an array (or object) of records.
func readRecords(spec map[string]any, body []byte) ([]any, error) {
	v, _, ok := decodeJSON(body)
	if !ok {
		return nil, errSyntax
	}
	if truthy(spec["singleRecord"]) {
		return []any{v}, nil
	}
	return eachValue(v), nil
}

var errSyntax = errors.New("SyntaxError: Unable to parse JSON string")
