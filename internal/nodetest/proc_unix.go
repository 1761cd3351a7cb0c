//go:build unix

package nodetest

import (
	"github.com/idsync/idsync/internal/testproc"
	"os/exec"
	"syscall"
)

// SetProcessGroup makes the server the leader of a new process group, so
// that KillProcessGroup also reaches anything it spawned.
func SetProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = testproc.GroupAttr()
}

func KillProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}
