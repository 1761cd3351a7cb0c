package testproc

import "syscall"

// GroupAttr puts a process in a process group of its own, and has the kernel kill it
// if the test binary dies without running its cleanups (its children follow it out, or
// are reached through the group).
func GroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
