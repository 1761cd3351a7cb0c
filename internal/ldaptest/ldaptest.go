// Package ldaptest starts a real OpenLDAP slapd for tests and benchmarks: a temporary mdb
// database loaded with slapadd, listening on free loopback ports, with TLS from a
// throwaway CA.
//
// It needs Debian's slapd and ldap-utils (apt-get install slapd ldap-utils); the system
// slapd service need not run, and Start never touches it. Each Server lives in its own
// t.TempDir() and is stopped by t.Cleanup.
package ldaptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/idsync/idsync/internal/testpki"
	"github.com/idsync/idsync/internal/testproc"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DefaultSuffix is the suffix a Server gets when Options.Suffix is empty.
const DefaultSuffix = "dc=example,dc=org"

// The overlays Options.Overlays may name.
const (
	// OverlayMemberOf maintains memberOf on the members of groupOfNames entries when a
	// group's member values change (memberof-refint on: renaming or deleting a person
	// updates the groups too).
	OverlayMemberOf = "memberof"
	// OverlayPPolicy loads the password policy module, which also defines its schema
	// (pwdAccountLockedTime and friends) on OpenLDAP 2.5 and later, with a default policy
	// (cn=default,ou=policies,<suffix>) so that a locked person's bind is refused.
	OverlayPPolicy = "ppolicy"
)

const (
	adminPassword   = "admin-secret"
	servicePassword = "idsync-secret"

	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	bindAttempts = 5
)

// Options say what directory to start. The zero value is a plain, empty directory.
type Options struct {
	// Suffix is the naming context, DefaultSuffix when empty. Its first RDN must be dc=,
	// o= or ou=.
	Suffix string

	// Overlays to configure: OverlayMemberOf, OverlayPPolicy.
	Overlays []string

	// People are loaded as PeopleLDIF renders them, with memberOf values when the memberof
	// overlay is on (as a directory restored from slapcat holds them). Locked people need
	// OverlayPPolicy, whose module defines pwdAccountLockedTime.
	People []Person

	// LDIF holds more entries for slapadd, loaded after the base entries (the suffix's
	// entry, ou=people, ou=groups, ou=services, the service account and, with ppolicy,
	// ou=policies) and People.
	LDIF []byte

	// TLS also listens on ldaps:// and allows StartTLS on ldap://, with a server
	// certificate for 127.0.0.1, ::1 and localhost from a fresh CA.
	TLS bool

	// SizeLimit, when positive, mimics Active Directory's MaxPageSize for everyone but the
	// rootdn: a plain search returns SizeLimit entries and then sizeLimitExceeded, a search
	// with the paged results control gets every entry (sizelimit size.soft=N size.hard=N
	// size.prtotal=unlimited). Unlike AD, slapd does not cap a page at the limit: pages
	// are as large as the client asks. Zero means no limit at all (slapd's own default
	// would be 500, for paged searches too).
	SizeLimit int

	// LogLevel is slapd's -d level, "none" when empty: errors, start and stop only ("0"
	// would hide even a failed bind). slapd's output goes to slapd.log in Dir, and its tail
	// is logged when the test fails.
	LogLevel string
}

// Server is a running slapd.
type Server struct {
	URL      string // ldap://127.0.0.1:PORT/
	LDAPSURL string // ldaps://127.0.0.1:PORT/, when Options.TLS
	CAFile   string // PEM file of the CA that signed the server certificate, when Options.TLS
	CAPEM    []byte // its contents

	Suffix string

	AdminDN, AdminPassword string // the rootdn, cn=admin,<suffix>: writes anything, no limits

	// ServiceDN is cn=idsync,ou=services,<suffix>: an ordinary account that may bind and
	// read every entry (passwords excepted) and write nothing, as idsync's would.
	ServiceDN, ServicePassword string

	Dir string // the temporary directory: slapd.conf, slapd.log, the database, the TLS files

	logPath string
	proc    *testproc.Proc // slapd; nil until started
}

// Start starts a slapd and stops it in tb.Cleanup. Anything that goes wrong is fatal,
// with the tail of slapd's log.
func Start(tb testing.TB, opt Options) *Server {
	tb.Helper()
	slapd, slapadd := findTool(tb, "slapd"), findTool(tb, "slapadd")

	suffix := opt.Suffix
	if suffix == "" {
		suffix = DefaultSuffix
	}
	for _, o := range opt.Overlays {
		if o != OverlayMemberOf && o != OverlayPPolicy {
			tb.Fatalf("ldaptest: unknown overlay %q (want %q or %q)", o, OverlayMemberOf, OverlayPPolicy)
		}
	}
	memberOf := slices.Contains(opt.Overlays, OverlayMemberOf)
	ppolicy := slices.Contains(opt.Overlays, OverlayPPolicy)
	if !ppolicy && slices.ContainsFunc(opt.People, func(p Person) bool { return p.Locked }) {
		tb.Fatalf("ldaptest: locked people need Overlays %q, whose module defines pwdAccountLockedTime", OverlayPPolicy)
	}
	logLevel := opt.LogLevel
	if logLevel == "" {
		logLevel = "none"
	}

	dir := tb.TempDir()
	s := &Server{
		Suffix:          suffix,
		AdminDN:         "cn=admin," + suffix,
		AdminPassword:   adminPassword,
		ServiceDN:       "cn=idsync,ou=services," + suffix,
		ServicePassword: servicePassword,
		Dir:             dir,
		logPath:         filepath.Join(dir, "slapd.log"),
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("ldaptest: tail of %s:\n%s", s.logPath, tail(s.logPath, 40))
		}
	})

	cfg := config{
		suffix:    suffix,
		rootDN:    s.AdminDN,
		rootPW:    s.AdminPassword,
		serviceDN: s.ServiceDN,
		dir:       dir,
		overlays:  opt.Overlays,
		sizeLimit: opt.SizeLimit,
	}
	var tlsConf *tls.Config
	if opt.TLS {
		files, err := testpki.Write(dir, "ldaptest")
		if err != nil {
			tb.Fatalf("ldaptest: %v", err)
		}
		cfg.tls = &files
		s.CAFile, s.CAPEM = files.CAFile, files.CAPEM
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(files.CAPEM)
		tlsConf = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	}
	if err := cfg.write(); err != nil {
		tb.Fatalf("ldaptest: %v", err)
	}

	var data bytes.Buffer
	if err := writeBase(&data, suffix, s.ServiceDN, s.ServicePassword, ppolicy); err != nil {
		tb.Fatalf("ldaptest: %v", err)
	}
	writePeople(&data, suffix, opt.People, memberOf)
	data.WriteString("\n")
	data.Write(opt.LDIF)
	ldifPath := filepath.Join(dir, "data.ldif")
	if err := os.WriteFile(ldifPath, data.Bytes(), 0o600); err != nil {
		tb.Fatalf("ldaptest: %v", err)
	}
	if out, err := exec.Command(slapadd, "-q", "-f", cfg.path(), "-l", ldifPath).CombinedOutput(); err != nil {
		tb.Fatalf("ldaptest: slapadd: %v\n%s", err, out)
	}
	os.Remove(ldifPath) // 100,000 people are ~37 MB of LDIF; the database has them now

	for attempt := 1; ; attempt++ {
		err := s.launch(slapd, cfg.path(), logLevel, opt.TLS, tlsConf)
		if err == nil {
			break
		}
		if errors.Is(err, errAddrInUse) && attempt < bindAttempts {
			continue // another process took a port between our probe and slapd's bind
		}
		s.Kill()
		tb.Fatalf("ldaptest: start slapd: %v", err) // the cleanup above logs slapd.log's tail
	}
	tb.Cleanup(s.Stop)
	return s
}

var errAddrInUse = errors.New("address in use")

// launch starts slapd on fresh ports and waits until it answers a bind.
func (s *Server) launch(slapd, conf, logLevel string, withTLS bool, tlsConf *tls.Config) error {
	ports, err := freePorts(1 + btoi(withTLS))
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.URL, s.LDAPSURL = "ldap://"+addr+"/", ""
	urls := s.URL
	var tlsAddr string
	if withTLS {
		tlsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		s.LDAPSURL = "ldaps://" + tlsAddr + "/"
		urls += " " + s.LDAPSURL
	}

	if s.proc, err = testproc.Start(s.logPath, slapd, "-d", logLevel, "-f", conf, "-h", urls); err != nil {
		return err
	}

	deadline := time.Now().Add(readyTimeout)
	for {
		err := probe(addr, nil)
		if err == nil && withTLS {
			err = probe(tlsAddr, tlsConf)
		}
		if err == nil {
			return nil
		}
		select {
		case <-s.proc.Done():
			if bytes.Contains(readFile(s.logPath), []byte("errno=98")) {
				return errAddrInUse
			}
			return fmt.Errorf("slapd exited: %s", s.proc.State())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", readyTimeout, err)
		}
	}
}

// Stop stops slapd: SIGTERM, and SIGKILL if it has not exited 5 s later. It may be called
// more than once.
func (s *Server) Stop() {
	if s.exited() {
		return
	}
	s.proc.Signal(syscall.SIGTERM)
	select {
	case <-s.proc.Done():
	case <-time.After(stopTimeout):
		s.Kill()
	}
}

// Kill kills slapd at once, as a crashed server or a dropped network would look to a
// client in the middle of a read.
func (s *Server) Kill() {
	if s.exited() {
		return
	}
	s.proc.Signal(syscall.SIGKILL)
	<-s.proc.Done()
}

func (s *Server) exited() bool { return s.proc == nil || s.proc.Exited() }

// Modify applies LDIF change records (changetype: add, modify, delete, modrdn) with
// ldapmodify, bound as the admin, and fails the test if any is refused.
func (s *Server) Modify(tb testing.TB, ldif string) {
	tb.Helper()
	ldapmodify := findTool(tb, "ldapmodify")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ldapmodify, "-x", "-H", s.URL, "-D", s.AdminDN, "-w", s.AdminPassword)
	cmd.Env = append(os.Environ(), "LDAPNOINIT=1") // ignore ldap.conf and ~/.ldaprc
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("ldaptest: ldapmodify: %v\n%s", err, out)
	}
}

// findTool finds an OpenLDAP program: on $PATH, or in the sbin directories an ordinary
// user's $PATH lacks.
func findTool(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/libexec"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	tb.Fatalf("ldaptest: %s not found: LDAP tests need OpenLDAP (apt-get install slapd ldap-utils)", name)
	return ""
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close() // held until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// bindRequest is an anonymous simple bind, message 1: enough to know slapd is serving.
var bindRequest = []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}

// probe binds anonymously, over TLS when conf is not nil, and wants success.
func probe(addr string, conf *tls.Config) error {
	d := net.Dialer{Timeout: time.Second}
	var c net.Conn
	var err error
	if conf != nil {
		c, err = (&tls.Dialer{NetDialer: &d, Config: conf}).Dial("tcp", addr)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
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

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b := bytes.TrimRight(readFile(path), "\n")
	if len(b) == 0 {
		return "(empty)"
	}
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
