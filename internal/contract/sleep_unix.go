//go:build unix

package contract

import (
	"syscall"
	"time"
)

// sleep blocks the thread in nanosleep: the kernel's high-resolution timers, not the
// Go runtime's.
func sleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil) // interrupted early: run looks at the time again
}
