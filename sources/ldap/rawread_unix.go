//go:build unix

package ldap

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// socketReader reads a TCP connection with read(2) as a raw system call. The socket
// is non-blocking, so a read never waits in the kernel; an empty socket parks the
// goroutine in the poller (through syscall.RawConn, which keeps the connection's
// deadline). The runtime's own read marks the thread as in a system call, and while
// the thread is, the runtime's monitor (sysmon) wakes every 20 µs and hands its P to
// another thread once the call outlasts a tick, which copying a socket buffer on a
// busy 2-core machine often does. In a 100,000-entry no-op that was 42% of the
// process's context switches (perf record -e context-switches); with raw reads the
// switches halved (49,942 to 24,856) and CPU time fell a fifth (docs/DESIGN-NOTES.md).
// For other connections it returns c.
func socketReader(c net.Conn) io.Reader {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return rawSocket{tc, rc}
}

type rawSocket struct {
	c  *net.TCPConn // for the addresses in errors
	rc syscall.RawConn
}

func (s rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller, then call again
			}
			n, errno = int(r), e
			return true
		}
	})
	var raw *net.OpError // RawConn's own: "raw-read tcp ..."
	switch {
	case errors.As(err, &raw):
		err = raw.Err
	case errno != 0:
		err = os.NewSyscallError("read", errno)
	case err == nil && n == 0:
		return 0, io.EOF
	}
	if err != nil {
		// As net.Conn's Read says it: "read tcp 127.0.0.1:50312->127.0.0.1:389: i/o timeout".
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: s.c.LocalAddr(), Addr: s.c.RemoteAddr(), Err: err}
	}
	return n, nil
}
