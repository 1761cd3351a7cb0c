//go:build !unix

package ldap

import "time"

// cpuTime is not measured here: the benchmarks report 0.
func cpuTime(children bool) time.Duration { return 0 }
