// Package maildevtest runs SMTP servers nobody on this project wrote, for the
// onboarding tests: MailDev (npm maildev, pinned in server/package-lock.json) with or
// without implicit TLS and authentication, whose REST API says what it received; and
// nodemailer's smtp-server offering STARTTLS and requiring authentication after it
// (server/starttls.mjs), which MailDev does not offer. Both listen on loopback only, on
// free ports, and stop when the test ends.
//
// They need Node.js and npm: .ci/run installs them, and Start fails, never skips,
// without them. The npm packages are installed with `npm ci` when missing.
package maildevtest

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/nodetest"
	"github.com/idsync/idsync/internal/testpki"
)

// Options choose a MailDev server's security.
type Options struct {
	// ImplicitTLS makes it speak TLS from the first byte (SMTPS).
	ImplicitTLS bool
	// User and Password, when set, are required (AUTH), which MailDev allows only
	// with ImplicitTLS.
	User, Password string
	// Port, when set, is the SMTP port: a server started again after Stop, on the
	// port the configuration names.
	Port int
}

// Server is a running SMTP server.
type Server struct {
	Host string // 127.0.0.1
	Port int
	// CAFile is the certificate to trust for its TLS, when it has TLS.
	CAFile string

	web string // MailDev's REST API, http://127.0.0.1:PORT
	tls bool   // implicit TLS
	dir string // starttls.mjs's messages
	cmd *exec.Cmd
}

// Email is a message as the server received it.
type Email struct {
	From, To      []mail.Address
	Subject       string
	Text, HTML    string
	Headers       map[string]string
	EnvelopeTo    []string
	EnvelopeFrom  string
	Authenticated string // the user who sent it, where the server tells
}

var (
	installOnce sync.Once
	installErr  error
)

func serverDir(tb testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("maildevtest: cannot locate its source folder")
	}
	dir := filepath.Join(filepath.Dir(file), "server")
	if _, err := exec.LookPath("node"); err != nil {
		tb.Fatal("maildevtest: node is not installed: apt-get install nodejs npm (.ci/run does)")
	}
	installOnce.Do(func() { installErr = nodetest.Install(dir) })
	if installErr != nil {
		tb.Fatalf("maildevtest: installing the SMTP servers' npm packages: %v", installErr)
	}
	return dir
}

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start starts MailDev and stops it when tb ends.
func Start(tb testing.TB, opt Options) *Server {
	tb.Helper()
	dir := serverDir(tb)
	s := &Server{Host: "127.0.0.1", Port: opt.Port}
	if s.Port == 0 {
		s.Port = freePort(tb)
	}
	webPort := freePort(tb)
	s.web = "http://127.0.0.1:" + strconv.Itoa(webPort)
	args := []string{filepath.Join(dir, "node_modules", "maildev", "bin", "maildev"),
		"--smtp", strconv.Itoa(s.Port), "--ip", "127.0.0.1", "--web", strconv.Itoa(webPort), "--web-ip", "127.0.0.1",
		"--mail-directory", tb.TempDir(), "--silent"}
	if opt.ImplicitTLS {
		s.tls = true
		cert, key := s.writeCert(tb)
		args = append(args, "--incoming-secure", "--incoming-cert", cert, "--incoming-key", key)
	}
	if opt.User != "" {
		args = append(args, "--incoming-user", opt.User, "--incoming-pass", opt.Password)
	}
	s.start(tb, dir, args, nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.web + "/email")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && s.smtpAnswers() {
				return s
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("maildevtest: MailDev did not answer within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// smtpAnswers reports whether the SMTP port takes a connection and greets it. A
// connection is closed politely (QUIT, after the TLS handshake when there is TLS):
// MailDev stops on a TLS connection that closes mid-handshake.
func (s *Server) smtpAnswers() bool {
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	var c net.Conn
	var err error
	if s.tls {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.DialTimeout("tcp", addr, time.Second)
	}
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	greeting, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "220") {
		return false
	}
	io.WriteString(c, "QUIT\r\n")
	return true
}

// StartSTARTTLS starts smtp-server offering STARTTLS and requiring user and password
// after it, and stops it when tb ends.
func StartSTARTTLS(tb testing.TB, user, password string) *Server {
	tb.Helper()
	dir := serverDir(tb)
	s := &Server{Host: "127.0.0.1", dir: tb.TempDir()}
	cert, key := s.writeCert(tb)
	env := []string{"SMTPTEST_DIR=" + s.dir, "SMTPTEST_CERT=" + cert, "SMTPTEST_KEY=" + key,
		"SMTPTEST_USER=" + user, "SMTPTEST_PASS=" + password}
	stdout := s.start(tb, dir, []string{"starttls.mjs"}, env)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("maildevtest: starttls.mjs did not say its port: %v", err)
	}
	if s.Port, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		tb.Fatalf("maildevtest: starttls.mjs said %q", line)
	}
	return s
}

// start runs node with args in dir, in a process group of its own, and kills it when
// tb ends. It returns the process's stdout.
func (s *Server) start(tb testing.TB, dir string, args, env []string) io.Reader {
	cmd := exec.Command("node", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	nodetest.SetProcessGroup(cmd)
	out := &nodetest.Output{}
	cmd.Stderr = out
	stdin, err := cmd.StdinPipe() // closed when this process dies: the scripts exit then
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s.cmd = cmd
	tb.Cleanup(func() {
		stdin.Close()
		nodetest.KillProcessGroup(cmd)
		cmd.Wait()
		if tb.Failed() && out.String() != "" {
			tb.Logf("SMTP server output:\n%s", out.String())
		}
	})
	return stdout
}

// Stop kills the server now (an outage).
func (s *Server) Stop() {
	nodetest.KillProcessGroup(s.cmd)
}

// writeCert writes a CA and a certificate for 127.0.0.1 it signed, and returns the
// certificate's and key's files; CAFile is the CA to trust.
func (s *Server) writeCert(tb testing.TB) (cert, key string) {
	f, err := testpki.Write(tb.TempDir(), "maildevtest")
	if err != nil {
		tb.Fatal(err)
	}
	s.CAFile = f.CAFile
	return f.CertFile, f.KeyFile
}

// Emails returns what the server has received, oldest first.
func (s *Server) Emails(tb testing.TB) []Email {
	tb.Helper()
	if s.dir != "" {
		return s.emlFiles(tb)
	}
	resp, err := http.Get(s.web + "/email")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var raw []struct {
		From, To []mail.Address
		Subject  string
		Text     string
		HTML     string
		Headers  map[string]any
		Envelope struct {
			From struct{ Address string }
			To   []struct{ Address string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		tb.Fatalf("maildevtest: /email: %v", err)
	}
	var out []Email
	for _, r := range raw {
		e := Email{From: r.From, To: r.To, Subject: r.Subject, Text: r.Text, HTML: r.HTML, Headers: map[string]string{},
			EnvelopeFrom: r.Envelope.From.Address}
		for k, v := range r.Headers {
			e.Headers[strings.ToLower(k)] = fmt.Sprint(v)
		}
		for _, t := range r.Envelope.To {
			e.EnvelopeTo = append(e.EnvelopeTo, t.Address)
		}
		out = append(out, e)
	}
	return out
}

// emlFiles parses what starttls.mjs wrote.
func (s *Server) emlFiles(tb testing.TB) []Email {
	names, _ := filepath.Glob(filepath.Join(s.dir, "*.eml"))
	slices.SortFunc(names, func(a, b string) int {
		x, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(a), ".eml"))
		y, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(b), ".eml"))
		return x - y
	})
	var out []Email
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		e, err := ParseEmail(b)
		if err != nil {
			tb.Fatalf("maildevtest: %s: %v", n, err)
		}
		out = append(out, e)
	}
	return out
}
