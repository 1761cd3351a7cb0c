package haplotest

import (
	"bytes"
	"net/http"
)

// The API v0 response envelope (haplo_api_v0), shared by the v0 APIs.

// apiError is an API v0 failure: {success:false, kind, error:{message}}.
type apiError struct {
	kind    string
	message string
	status  int
}

type envelopeError struct {
	Success bool         `json:"success"`
	Kind    string       `json:"kind"`
	Error   errorMessage `json:"error"`
}

type errorMessage struct {
	Message string `json:"message"`
}

func (e *apiError) write(w http.ResponseWriter) {
	status := e.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, envelopeError{Kind: e.kind, Error: errorMessage{e.message}}, "")
}

func userError(kind, message string, status int) *apiError {
	return &apiError{"haplo:api-v0:user:" + kind, message, status}
}

// exception is what the envelope reports when the handler throws.
func exception(message string) *apiError {
	return &apiError{"haplo:api-v0:generic:exception", message, http.StatusBadRequest}
}

var (
	errNotPermitted = &apiError{"haplo:api-v0:generic:not-permitted", "User is not permitted to use this API", http.StatusForbidden}
	errNoResponse   = &apiError{"haplo:api-v0:generic:no-response", "API implementation did not respond", http.StatusNotFound}
)

// field is one property of a success response, after success and kind.
type field struct {
	name  string
	value any
}

func writeSuccess(w http.ResponseWriter, kind string, fields ...field) {
	var b bytes.Buffer
	enc := newEncoder(&b)
	b.WriteString(`{"success":true,"kind":`)
	enc.put(kind)
	for _, f := range fields {
		b.WriteByte(',')
		enc.put(f.name)
		b.WriteByte(':')
		enc.put(f.value)
	}
	b.WriteByte('}')
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}
