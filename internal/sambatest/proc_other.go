//go:build unix && !linux

package sambatest

import "syscall"

// procAttr puts samba in a process group of its own, so that Stop reaches all of it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
