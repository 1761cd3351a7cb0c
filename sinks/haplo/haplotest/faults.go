package haplotest

import (
	"net/http"
	"strconv"
)

var injected5xx = []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}

// injectFault answers the request with an injected failure, if one is due,
// before the request has any effect. s.mu is held.
func (s *Server) injectFault(w http.ResponseWriter) bool {
	status, retryAfter := 0, s.faults.RetryAfter
	switch {
	case s.faults.Down:
		status = http.StatusServiceUnavailable
	case s.failNext > 0:
		s.failNext--
		status = s.failStatus
		if retryAfter == "" {
			retryAfter = "0"
		}
	case s.faults.Rate429 > 0 && s.rng.Float64() < s.faults.Rate429:
		status = http.StatusTooManyRequests
	case s.faults.Rate5xx > 0 && s.rng.Float64() < s.faults.Rate5xx:
		codes := injected5xx
		if len(s.faults.Statuses5xx) > 0 {
			codes = s.faults.Statuses5xx
		}
		status = codes[s.rng.IntN(len(codes))]
	default:
		return false
	}
	if status == http.StatusTooManyRequests && retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeText(w, status, "haplotest: injected "+strconv.Itoa(status)+" "+http.StatusText(status))
	return true
}

// loseResponse reports whether the response to a request to endpoint label is to
// be lost. s.mu is held.
func (s *Server) loseResponse(label string) bool {
	if s.loseNext > 0 && (s.loseLabel == "" || s.loseLabel == label) {
		s.loseNext--
		return true
	}
	return s.faults.LoseResponses > 0 && s.rng.Float64() < s.faults.LoseResponses
}

// abortResponse closes the client's connection without writing a response.
func abortResponse(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// Without a hijackable connection, net/http's own way to abort a response.
	panic(http.ErrAbortHandler)
}
