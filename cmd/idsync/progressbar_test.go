package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	dsync "github.com/idsync/idsync/sync"
)

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	b := newProgressBar(&out)
	b.update(dsync.Progress{Sink: "haplo", Done: 250, Total: 1000, Elapsed: 5 * time.Second})
	want := "\r[=======>                      ] 250/1000 ops  50/s  ETA 15s\x1b[K"
	if out.String() != want {
		t.Errorf("one sink:\n got %q\nwant %q", out.String(), want)
	}
	out.Reset()
	b.update(dsync.Progress{Sink: "scim", Done: 1000, Total: 1000, Elapsed: 5 * time.Second})
	if got := out.String(); !strings.Contains(got, "1250/2000 ops  250/s") || !strings.HasSuffix(got, "haplo 250/1000, scim 1000/1000\x1b[K") {
		t.Errorf("two sinks: %q", got)
	}
	out.Reset()
	b.finish()
	if out.String() != "\n" {
		t.Errorf("finish: %q", out.String())
	}
	if isTerminal(&out) {
		t.Error("a buffer is no terminal")
	}
}
