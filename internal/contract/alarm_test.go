package contract

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Every channel closes, none before its time, and the alarm's goroutine ends once no
// one waits.
func TestAlarm(t *testing.T) {
	var a alarm
	var wg sync.WaitGroup
	for i := range 200 {
		d := time.Duration(rand.IntN(3000)) * time.Microsecond
		if i%50 == 0 {
			d = 0
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			<-a.after(d)
			if got := time.Since(start); got < d {
				t.Errorf("woken after %v, want at least %v", got, d)
			}
		}()
	}
	wg.Wait()
	for range 100 {
		a.mu.Lock()
		running := a.running
		a.mu.Unlock()
		if !running {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("the alarm's goroutine still runs with no one waiting")
}
