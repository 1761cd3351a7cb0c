package sync

import (
	"sync/atomic"
	"time"
)

// Progress is how far one sink's apply phase has come.
type Progress struct {
	Sink string
	// Done counts the operations settled (applied, failed or not attempted) of Total.
	Done, Total int
	Elapsed     time.Duration
}

// Rate is operations settled per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// ETA is the time left at the rate so far; 0 when unknown or done.
func (p Progress) ETA() time.Duration {
	r := p.Rate()
	if r == 0 || p.Done >= p.Total {
		return 0
	}
	eta := time.Duration(float64(p.Total-p.Done) / r * float64(time.Second))
	if eta >= 10*time.Second {
		return eta.Round(time.Second)
	}
	return max(eta.Round(100*time.Millisecond), 100*time.Millisecond)
}

// progress reports one sink's apply phase while it lasts: every ProgressEvery to the
// Progress callback, or, without one, as a log line, the first one only once the
// phase has lasted that long (short runs log nothing). The returned stop ends it,
// after one last report to a callback.
func (e *Engine) progress(sink string, total int, done *atomic.Int64) (stop func()) {
	every := e.opt.ProgressEvery
	start := time.Now()
	report := func() {
		p := Progress{Sink: sink, Done: int(done.Load()), Total: total, Elapsed: time.Since(start)}
		if e.opt.Progress != nil {
			e.opt.Progress(p)
			return
		}
		e.log.Info("progress", "phase", "apply", "sink", sink, "done", p.Done, "total", p.Total,
			"rate_per_s", int(p.Rate()), "eta", p.ETA())
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				if e.opt.Progress != nil {
					report()
				}
				return
			case <-t.C:
				report()
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}
