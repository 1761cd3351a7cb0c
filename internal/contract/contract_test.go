package contract

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestTraffic(t *testing.T) {
	var tr Traffic
	arrived := make(chan bool, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := tr.Arrive(r, r.URL.Path)
		arrived <- ok
		if ok {
			b, _ := io.ReadAll(r.Body)
			w.Write(b) // the body Arrive read ahead is still there
		}
	}))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/a", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" || !<-arrived {
		t.Errorf("answer %q", b)
	}

	// A client that gives up during the latency ends the wait at once.
	tr.SetLatency(5 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/b", strings.NewReader("body"))
	start := time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request did not time out")
	}
	select {
	case ok := <-arrived:
		if ok {
			t.Error("Arrive reported a request whose client gave up")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the handler was still waiting 2 s after its client gave up")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if got := tr.Requests(); got["/a"] != 1 || got["/b"] != 1 || tr.Total() != 2 {
		t.Errorf("requests %v, total %d", got, tr.Total())
	}
}
