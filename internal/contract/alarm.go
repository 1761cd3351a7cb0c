package contract

import (
	"container/heap"
	"runtime"
	gosync "sync"
	"time"
)

// alarm wakes waiters at their deadlines within the operating system's sleep precision
// rather than the Go runtime's. Go's timers on Linux wait in epoll_wait, whose timeout
// is in whole milliseconds (golang/go#44343), and a process with little else to do
// wakes up to a millisecond late: time.Sleep(2ms) took 2.80 ms on average on the
// 2-core benchmark machine, nanosleep(2) 2.27 ms. The latency a benchmark asks of a
// contract server is then the latency it gets, not 40% more.
//
// One goroutine, locked to its thread, sleeps until the earliest deadline and closes
// the channels due; it ends when no one is waiting, so an idle server holds no thread.
// Its zero value is ready.
type alarm struct {
	mu      gosync.Mutex
	due     deadlines
	running bool
}

// after returns a channel closed once d has passed.
func (a *alarm) after(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	a.mu.Lock()
	defer a.mu.Unlock()
	heap.Push(&a.due, deadline{at: time.Now().Add(d), c: c})
	if !a.running {
		a.running = true
		go a.run()
	}
	return c
}

// run closes the channels due, in deadline order, until none is left.
func (a *alarm) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		a.mu.Lock()
		if len(a.due) == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		next := a.due[0]
		wait := time.Until(next.at)
		if wait <= 0 {
			heap.Pop(&a.due)
		}
		a.mu.Unlock()
		if wait > 0 {
			// A waiter that arrives meanwhile with an earlier deadline waits for this
			// sleep to end: the servers' latency is the same for every request, so
			// deadlines arrive in order.
			sleep(wait)
			continue
		}
		close(next.c)
	}
}

type deadline struct {
	at time.Time
	c  chan struct{}
}

// deadlines is a heap, the earliest first.
type deadlines []deadline

func (h deadlines) Len() int           { return len(h) }
func (h deadlines) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlines) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlines) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlines) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
