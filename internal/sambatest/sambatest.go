// Package sambatest starts a real Samba Active Directory domain controller for tests: a
// domain provisioned in a temporary folder, only its LDAP service running, on loopback,
// with TLS from a throwaway CA, and people and groups loaded with ldapmodify.
//
// It needs Debian's samba, with its provisioning data, directory and VFS modules, and
// ldap-utils (apt-get install samba samba-ad-provision samba-dsdb-modules
// samba-vfs-modules ldap-utils), and root, as Samba's DC does. The system's samba
// services need not run, and Start never touches them. Samba's LDAP server listens on
// the fixed ports 389 and 636 (and 3268 and 3269 for the global catalogue): no smb.conf
// option moves them. So only one Server runs at a time on the machine: Start waits for
// a lock file that the Server holds until it has stopped, which serialises the tests
// of every package that uses it. Each Server lives in its own t.TempDir() and is
// stopped by t.Cleanup.
package sambatest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/idsync/idsync/internal/testpki"
	"github.com/idsync/idsync/internal/testproc"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"
)

// The domain every Server provisions.
const (
	Realm  = "EXAMPLE.ORG"
	Domain = "EXAMPLE"
	BaseDN = "DC=example,DC=org"
	// HostName is the DC's name; its certificate is for HostName.example.org as well as
	// 127.0.0.1, ::1 and localhost.
	HostName = "dc1"
)

const (
	adminPassword   = "Adm1n-Secret!"
	servicePassword = "Idsync-Secret-1"

	lockWait     = 15 * time.Minute // other packages' tests may hold the DC that long
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// Server is a running Samba AD DC.
type Server struct {
	URL     string // ldaps://127.0.0.1:636/
	LDAPURL string // ldap://127.0.0.1:389/: plain LDAP, on which Samba refuses simple binds
	CAFile  string // DIR/private/tls/ca.pem: the CA that signed the server certificate
	CAPEM   []byte

	BaseDN string // DC=example,DC=org
	// AdminDN is the domain's Administrator: writes anything.
	AdminDN, AdminPassword string
	// ServiceDN is CN=idsync,CN=Users,<base>: an ordinary domain user, who may read the
	// directory as every authenticated user may, as idsync's account would.
	ServiceDN, ServicePassword string

	Dir string // the temporary directory: etc/smb.conf, private/, samba.log

	// How long provisioning and starting took (start: until LDAPS answered a bind).
	ProvisionTime, StartTime time.Duration

	conf    string         // DIR/etc/smb.conf
	proc    *testproc.Proc // samba; nil until started
	unlock  func()
	logPath string
}

// Start provisions a domain, starts samba and waits until LDAPS answers; it stops samba
// in tb.Cleanup. Anything that goes wrong is fatal, with the tail of samba's log.
func Start(tb testing.TB) *Server {
	tb.Helper()
	samba, sambaTool := findTool(tb, "samba"), findTool(tb, "samba-tool")
	findTool(tb, "ldapmodify")
	if os.Geteuid() != 0 {
		tb.Fatalf("sambatest: Samba's AD DC runs as root only: run the Active Directory tests as root (CI does)")
	}

	dir := tb.TempDir()
	s := &Server{
		URL:             "ldaps://127.0.0.1:636/",
		LDAPURL:         "ldap://127.0.0.1:389/",
		BaseDN:          BaseDN,
		AdminDN:         "CN=Administrator,CN=Users," + BaseDN,
		AdminPassword:   adminPassword,
		ServiceDN:       "CN=idsync,CN=Users," + BaseDN,
		ServicePassword: servicePassword,
		Dir:             dir,
		conf:            filepath.Join(dir, "etc", "smb.conf"),
		logPath:         filepath.Join(dir, "samba.log"),
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("sambatest: tail of %s:\n%s", s.logPath, tail(s.logPath, 40))
		}
	})

	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sambaTool, "domain", "provision",
		"--realm="+Realm, "--domain="+Domain, "--server-role=dc", "--dns-backend=NONE",
		"--host-name="+HostName, "--adminpass="+adminPassword, "--targetdir="+dir,
		"--option=interfaces=lo", "--option=bind interfaces only=yes",
		// Only the LDAP server: no smbd (whose port 445 the system's smbd may hold), no
		// KDC, DNS, NetBIOS, replication or RPC. Two LDAP workers for a 2-core machine.
		"--option=server services=ldap", "--option=prefork children=2",
		"--option=log file="+s.logPath, "--option=log level=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("sambatest: samba-tool domain provision: %v\n%s", err, lastLines(out, 30))
	}
	s.ProvisionTime = time.Since(t0)

	// Samba makes its own certificate for its host name only; ours is for the loopback
	// addresses too, so that clients verify it as they would a real DC's.
	tlsDir := filepath.Join(dir, "private", "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		tb.Fatalf("sambatest: %v", err)
	}
	files, err := testpki.Write(tlsDir, "sambatest", strings.ToLower(HostName+"."+Realm))
	if err != nil {
		tb.Fatalf("sambatest: %v", err)
	}
	s.CAFile, s.CAPEM = files.CAFile, files.CAPEM
	// ldapmodify's configuration: trust our CA, and nothing from ~/.ldaprc.
	if err := os.WriteFile(filepath.Join(dir, "ldap.conf"), []byte("TLS_CACERT "+s.CAFile+"\nTLS_REQCERT demand\n"), 0o600); err != nil {
		tb.Fatalf("sambatest: %v", err)
	}

	s.unlock = lock(tb)
	t1 := time.Now()
	if err := s.launch(samba); err != nil {
		s.Stop()
		tb.Fatalf("sambatest: start samba: %v", err)
	}
	s.StartTime = time.Since(t1)
	tb.Cleanup(s.Stop)
	tb.Logf("sambatest: provisioned in %v, started in %v", s.ProvisionTime.Round(time.Millisecond), s.StartTime.Round(time.Millisecond))

	// The service account: a plain user with a password that never expires.
	s.Modify(tb, fmt.Sprintf("dn: %s\nchangetype: add\nobjectClass: user\nsAMAccountName: idsync\nuserPrincipalName: idsync@%s\nunicodePwd:: %s\nuserAccountControl: %d\n",
		s.ServiceDN, strings.ToLower(Realm), UnicodePwd(servicePassword), UACNormalAccount|UACDontExpirePassword))
	return s
}

// lock takes the machine-wide lock on Samba's ports, waiting for another test's server
// to stop, and returns its release.
func lock(tb testing.TB) func() {
	tb.Helper()
	path := filepath.Join(os.TempDir(), "idsync-sambatest.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		tb.Fatalf("sambatest: lock: %v", err)
	}
	deadline := time.Now().Add(lockWait)
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			tb.Fatalf("sambatest: lock %s (held while a test's samba runs on ports 389 and 636): %v", path, err)
		}
		if !logged {
			tb.Logf("sambatest: waiting for another test's samba to stop (%s)", path)
			logged = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return func() { f.Close() } // closing the file releases the lock
}

// launch starts samba in the foreground and waits until LDAPS answers an anonymous bind.
func (s *Server) launch(samba string) error {
	for _, port := range []string{"389", "636"} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("something already listens on 127.0.0.1:%s (a system samba or slapd? stop it: the tests' DC needs ports 389 and 636)", port)
		}
	}
	var err error
	if s.proc, err = testproc.Start(filepath.Join(s.Dir, "samba.out"), samba, "-F", "--debug-stdout", "-s", s.conf); err != nil {
		return err
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	conf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	deadline := time.Now().Add(readyTimeout)
	for {
		err := probe("127.0.0.1:636", conf)
		if err == nil {
			return nil
		}
		select {
		case <-s.proc.Done():
			return fmt.Errorf("samba exited: %s\n%s", s.proc.State(), tail(filepath.Join(s.Dir, "samba.out"), 20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", readyTimeout, err)
		}
	}
}

// Stop stops samba and every process it started (SIGTERM to its process group, SIGKILL
// 10 s later), then releases the lock. It may be called more than once.
func (s *Server) Stop() {
	if p := s.proc; p != nil {
		p.Signal(syscall.SIGTERM)
		select {
		case <-p.Done():
		case <-time.After(stopTimeout):
			p.Signal(syscall.SIGKILL)
			<-p.Done()
		}
		// The root process is gone; its workers may take a moment more.
		for deadline := time.Now().Add(stopTimeout); syscall.Kill(-p.Pid, 0) == nil; {
			if time.Now().After(deadline) {
				p.Signal(syscall.SIGKILL)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
}

// Modify applies LDIF change records (changetype: add, modify, delete, modrdn) with
// ldapmodify over LDAPS, bound as the Administrator, and fails the test if any is
// refused.
func (s *Server) Modify(tb testing.TB, ldif string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, findTool(tb, "ldapmodify"), "-x", "-H", s.URL, "-D", s.AdminDN, "-w", s.AdminPassword)
	cmd.Env = append(os.Environ(), "LDAPCONF="+filepath.Join(s.Dir, "ldap.conf"), "LDAPRC=sambatest-no-ldaprc")
	cmd.Stdin = strings.NewReader(ldif)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tb.Fatalf("sambatest: ldapmodify: %v\n%s", err, lastLines(out.Bytes(), 20))
	}
}

// SambaTool runs samba-tool against the DC's database (-H DIR/private/sam.ldb) and
// returns its output: samba-tool's own view of the directory, to check ours against.
func (s *Server) SambaTool(tb testing.TB, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append(args, "-s", s.conf, "-H", filepath.Join(s.Dir, "private", "sam.ldb"))
	out, err := exec.CommandContext(ctx, findTool(tb, "samba-tool"), args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("sambatest: samba-tool %s: %v\n%s", strings.Join(args, " "), err, lastLines(out, 20))
	}
	return string(out)
}

// GUID is samba-tool's view of an account's objectGUID, in its canonical string form.
func (s *Server) GUID(tb testing.TB, sAMAccountName string) string {
	tb.Helper()
	out := s.SambaTool(tb, "user", "show", sAMAccountName, "--attributes=objectGUID")
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(line, "objectGUID: "); ok {
			return strings.TrimSpace(v)
		}
	}
	tb.Fatalf("sambatest: no objectGUID in samba-tool's output:\n%s", out)
	return ""
}

// UnicodePwd is a password as AD's unicodePwd attribute takes it, base64 for LDIF: the
// quoted password in UTF-16LE. AD accepts it only over an encrypted connection.
func UnicodePwd(password string) string {
	u := utf16.Encode([]rune(`"` + password + `"`))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// findTool finds a program: on $PATH, or in the sbin directories an ordinary user's
// $PATH lacks.
func findTool(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/samba/sbin", "/usr/local/samba/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	tb.Fatalf("sambatest: %s not found: the Active Directory tests need Samba and OpenLDAP's tools (apt-get install samba samba-ad-provision samba-dsdb-modules samba-vfs-modules ldap-utils)", name)
	return ""
}

// bindRequest is an anonymous simple bind, message 1: enough to know the server serves.
var bindRequest = []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}

// probe binds anonymously over TLS and wants success.
func probe(addr string, conf *tls.Config) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := (&tls.Dialer{NetDialer: &d, Config: conf}).Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(bindRequest); err != nil {
		return err
	}
	resp := make([]byte, 10)
	if _, err := io.ReadFull(c, resp); err != nil {
		return err
	}
	// SEQUENCE, messageID 1, BindResponse, resultCode success (0)
	if resp[0] != 0x30 || !bytes.Equal(resp[2:6], []byte{0x02, 0x01, 0x01, 0x61}) || !bytes.Equal(resp[7:10], []byte{0x0a, 0x01, 0x00}) {
		return fmt.Errorf("unexpected bind response % x", resp)
	}
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return lastLines(b, n)
}

func lastLines(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return "(empty)"
	}
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
