//go:build !unix

package ldap

import (
	"io"
	"net"
)

// socketReader returns c: the raw reads of rawread_unix.go are for Unix.
func socketReader(c net.Conn) io.Reader { return c }
