//go:build unix

package ldap

import (
	"syscall"
	"time"
)

// cpuTime is the user and system CPU time used so far by this process (self) or by
// its children that have been waited for (children: the benchmark's ldapsearch runs).
func cpuTime(children bool) time.Duration {
	who := syscall.RUSAGE_SELF
	if children {
		who = syscall.RUSAGE_CHILDREN
	}
	var ru syscall.Rusage
	if syscall.Getrusage(who, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
