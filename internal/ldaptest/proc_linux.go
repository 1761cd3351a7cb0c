package ldaptest

import "syscall"

// procAttr puts slapd in a process group of its own, so that Stop and Kill reach all of
// it, and has the kernel kill it if the test binary dies without running its cleanups.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
