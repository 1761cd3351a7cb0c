package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(serveEnv); v != "" { // startServer started this binary
		serveFor(v)
		return
	}
	os.Exit(m.Run())
}

// The server in its own process answers every request, and no sooner than the
// latency: 400 requests 16 at a time at 2 ms take at least 25 rounds of 2 ms.
func TestCeiling(t *testing.T) {
	url, stop, err := startServer(2*time.Millisecond, false)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	d, _, _, err := client(url, "", 400, 16)
	if err != nil {
		t.Fatal(err)
	}
	if min := 25 * 2 * time.Millisecond; d < min {
		t.Errorf("400 requests took %v, less than the latency allows (%v)", d, min)
	}
}

// The Haplo contract server, started the same way, answers the client's request for a
// user that does not exist as Haplo does, after the latency.
func TestCeilingHaplo(t *testing.T) {
	url, stop, err := startServer(2*time.Millisecond, true)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("haplo:"+haploKey))
	req, _ := http.NewRequest(http.MethodGet, url+"api/v0-user/id/1", nil)
	req.Header.Set("Authorization", auth)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "no-such-user") || time.Since(start) < 2*time.Millisecond {
		t.Errorf("%d %s after %v: want Haplo's no-such-user 404, after 2 ms", resp.StatusCode, body, time.Since(start))
	}
	if _, _, _, err := client(url+"api/v0-user/id/1", auth, 100, 16); err != nil {
		t.Error(err)
	}
}
