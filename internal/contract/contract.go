// Package contract holds what the sinks' in-process contract servers (haplotest,
// descopetest, domotest, icuretest) share: the count of their requests by endpoint,
// and the latency tests add to every request, which a client that gives up cuts short.
// Each server keeps its own API's faults, rate limits and error bodies.
package contract

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	gosync "sync"
	"time"
)

// maxBody bounds the request body Arrive reads ahead.
const maxBody = 8 << 20

// Traffic counts a server's requests by endpoint, and delays each by a latency tests
// change while the server runs. Its zero value is ready; it is safe for concurrent
// use. Servers embed it, and so have its SetLatency, Requests and Total.
type Traffic struct {
	mu       gosync.Mutex
	requests map[string]int
	latency  time.Duration
	alarm    alarm
}

// Arrive counts a request to endpoint and waits out the latency. It returns false when
// the client gave up meanwhile: the request is then to be answered nothing. The body
// is read first and put back, since net/http notices a client that went away (and
// ends r.Context()) only once the handler has read the whole body.
func (t *Traffic) Arrive(r *http.Request, endpoint string) bool {
	t.mu.Lock()
	if t.requests == nil {
		t.requests = make(map[string]int)
	}
	t.requests[endpoint]++
	d := t.latency
	t.mu.Unlock()
	if d <= 0 {
		return true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	select {
	case <-t.alarm.after(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

// SetLatency changes the latency added to every request.
func (t *Traffic) SetLatency(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latency = d
}

// Requests returns how many requests each endpoint has received, faults and refusals
// included.
func (t *Traffic) Requests() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.requests)
}

// Total returns how many requests the server has received.
func (t *Traffic) Total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.requests {
		n += c
	}
	return n
}
