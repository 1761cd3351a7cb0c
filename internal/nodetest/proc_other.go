//go:build !unix

package nodetest

import "os/exec"

func SetProcessGroup(*exec.Cmd) {}

func KillProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
