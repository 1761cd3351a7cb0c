//go:build unix

package ldap

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// The raw reads give what net.Conn's Read gives: every byte in order across many
// partial reads, io.EOF at the end, the deadline's error with the connection's
// addresses, and net.ErrClosed once closed.
func TestSocketReaderReadsAsNetConnDoes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	served := make(chan net.Conn, 2)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		for rest := payload; len(rest) > 0; { // pieces of every size, some after a pause
			n := min(len(rest), 1+r.IntN(100_000))
			if _, err := c.Write(rest[:n]); err != nil {
				break
			}
			rest = rest[n:]
			if r.IntN(8) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		c.Close()
		c, err = ln.Accept() // the second connection is sent nothing
		if err == nil {
			served <- c
		}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sr := socketReader(c)
	if _, ok := sr.(rawSocket); !ok {
		t.Fatalf("socketReader of a TCP connection is a %T", sr)
	}
	got, err := io.ReadAll(sr) // until io.EOF
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes, %v; want the %d sent, then io.EOF", len(got), err, len(payload))
	}

	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	defer func() {
		select {
		case s := <-served:
			s.Close()
		default:
		}
	}()
	sr = socketReader(c2)
	c2.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := sr.Read(make([]byte, 10))
	want := "read tcp " + c2.LocalAddr().String() + "->" + c2.RemoteAddr().String() + ": i/o timeout"
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || err == nil || err.Error() != want {
		t.Errorf("read past the deadline: %d, %v; want 0, %q", n, err, want)
	}
	c2.Close()
	if _, err := sr.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}

	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if sr := socketReader(p1); sr != io.Reader(p1) {
		t.Errorf("socketReader of a pipe is %T, want the pipe itself", sr)
	}
}
