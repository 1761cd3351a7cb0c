//go:build unix && !linux

package testproc

import "syscall"

// GroupAttr puts a process in a process group of its own.
func GroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
