package sambatest

import "syscall"

// procAttr puts samba in a process group of its own, so that Stop reaches all of its
// processes, and has the kernel kill its root process if the test binary dies without
// running its cleanups (samba's children follow their parent out).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
