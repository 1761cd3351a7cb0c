package main

import (
	"os"
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
	url, stop, err := startServer(2 * time.Millisecond)
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
