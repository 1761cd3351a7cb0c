//go:build !unix

package contract

import "time"

func sleep(d time.Duration) { time.Sleep(d) }
