package sync

import (
	"bytes"
	"log/slog"
	gosync "sync"
	"testing"
	"time"
)

// TestProgressReports: a long apply phase reports done / total as it goes, to a
// callback (the terminal's bar) or, without one, to the log.
func TestProgressReports(t *testing.T) {
	var mu gosync.Mutex
	var got []Progress
	store, sink := newMemStore(), &fakeSink{delay: 10 * time.Millisecond}
	e := New([]SourceSpec{{Name: "hr", Source: people(20)}},
		[]SinkSpec{{Name: "app", Sink: sink, Concurrency: 2, Safety: DefaultSafety}},
		store, Options{Safety: DefaultSafety, ProgressEvery: 15 * time.Millisecond, Progress: func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, p)
		}}, slog.New(slog.DiscardHandler))
	if _, err := e.Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 3 {
		t.Fatalf("%d reports over some 200 ms at one per 15 ms: %+v", len(got), got)
	}
	for i, p := range got {
		if p.Sink != "app" || p.Total != 40 || (i > 0 && p.Done < got[i-1].Done) {
			t.Errorf("report %d: %+v (after %+v)", i, p, got[max(i-1, 0)])
		}
	}
	if last := got[len(got)-1]; last.Done != 40 || last.ETA() != 0 {
		t.Errorf("last report %+v, ETA %v: want 40 of 40, nothing left", last, last.ETA())
	}
	if mid := got[len(got)/2]; mid.Done > 0 && mid.Done < 40 && (mid.Rate() <= 0 || mid.ETA() <= 0) {
		t.Errorf("a report midway: %+v, rate %v, ETA %v", mid, mid.Rate(), mid.ETA())
	}

	// Without a callback, the log says it, from ProgressEvery on.
	var logs bytes.Buffer
	e = New([]SourceSpec{{Name: "hr", Source: people(20)}},
		[]SinkSpec{{Name: "app", Sink: &fakeSink{delay: 10 * time.Millisecond}, Concurrency: 2, Safety: DefaultSafety}},
		newMemStore(), Options{Safety: DefaultSafety, ProgressEvery: 30 * time.Millisecond}, slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := e.Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logs.Bytes(), []byte("msg=progress phase=apply sink=app done=")) || !bytes.Contains(logs.Bytes(), []byte("total=40 rate_per_s=")) {
		t.Errorf("no progress in the log:\n%s", logs.String())
	}
}

func TestProgressETA(t *testing.T) {
	p := Progress{Done: 250, Total: 1000, Elapsed: 5 * time.Second}
	if p.Rate() != 50 || p.ETA() != 15*time.Second {
		t.Errorf("rate %v, ETA %v; want 50/s and 15s", p.Rate(), p.ETA())
	}
	if (Progress{Total: 10}).ETA() != 0 {
		t.Error("ETA with nothing done yet should be unknown (0)")
	}
}
