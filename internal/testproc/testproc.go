// Package testproc starts the servers tests run as processes of their own (slapd,
// samba, node): each the leader of its own process group, so that a signal reaches
// everything it started, and, on Linux, killed by the kernel if the test binary dies
// without running its cleanups.
package testproc

import (
	"os"
	"os/exec"
	"syscall"
)

// Proc is a started server.
type Proc struct {
	Pid  int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs path with args, its standard output and error written to logPath.
func Start(logPath, path string, args ...string) (*Proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = GroupAttr()
	err = cmd.Start()
	out.Close()
	if err != nil {
		return nil, err
	}
	p := &Proc{Pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// State says how the process ended, once it has.
func (p *Proc) State() string {
	if !p.Exited() {
		return "running"
	}
	return p.cmd.ProcessState.String()
}

// Signal signals the process's whole group.
func (p *Proc) Signal(sig syscall.Signal) { syscall.Kill(-p.Pid, sig) }
