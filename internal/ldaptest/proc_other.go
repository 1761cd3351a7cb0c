//go:build unix && !linux

package ldaptest

import "syscall"

// procAttr puts slapd in a process group of its own, so that Stop and Kill reach all of it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
