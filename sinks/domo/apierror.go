package domo

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/idsync/idsync/internal/httpapi"
	dsync "github.com/idsync/idsync/sync"
)

// APIError is an error answer of Domo's API: {status, statusReason, message, path,
// toe}, toe being Domo's trace id. The token endpoint may answer in OAuth's terms
// ({error, error_description}); those fill Message.
type APIError struct {
	Endpoint string
	Status   int
	Reason   string
	Message  string
	Toe      string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d", e.Endpoint, e.Status)
	if e.Reason != "" {
		msg += " " + e.Reason
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Toe != "" {
		msg += " (toe " + e.Toe + ")"
	}
	return msg
}

// Is maps Domo's answers to the engine's sentinels. A taken email is 409, or 400 with
// a message that says so (Domo's answer to a duplicate is not documented; the
// message is the only way to tell it from another 400). A refused token or client,
// and any 4xx of the token endpoint, stop the sink: no request can succeed without a
// token.
func (e *APIError) Is(target error) bool {
	switch target {
	case dsync.ErrNotFound:
		return e.Status == http.StatusNotFound && e.Endpoint != tokenEndpoint
	case dsync.ErrExists:
		return e.Status == http.StatusConflict || e.Status == http.StatusBadRequest && duplicate(e.Message)
	case dsync.ErrStopSink:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden ||
			e.Endpoint == tokenEndpoint && e.Status/100 == 4
	}
	return false
}

func duplicate(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range []string{"already exist", "duplicate", "already in use", "already taken"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func apiError(endpoint string, status int, _ http.Header, body []byte) error {
	e := &APIError{Endpoint: endpoint, Status: status}
	var b struct {
		StatusReason     string `json:"statusReason"`
		Message          string `json:"message"`
		Toe              string `json:"toe"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.Reason, e.Toe = b.StatusReason, b.Toe
		e.Message = cmp.Or(b.Message, b.ErrorDescription, b.Error)
	} else {
		e.Message = httpapi.Excerpt(body)
	}
	return e
}

// uncertain reports whether a failed request may have been carried out: Domo
// answered 5xx (a proxy's 502 or 504 come after the request was passed on), or did
// not answer at all. A request whose context ended is not tried again.
func uncertain(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status >= 500
	}
	return true
}
