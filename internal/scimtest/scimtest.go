// Package scimtest runs an independent SCIM 2.0 service provider for
// integration tests: the npm packages scimmy and scimmy-routers (pinned in
// server/package.json and server/package-lock.json) behind express, with an
// in-memory store of Users and Groups (server/server.mjs).
//
// It needs Node.js; without node on PATH, Start skips the test. The npm
// dependencies are installed with `npm ci` the first time they are missing.
package scimtest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/idsync/idsync/internal/nodetest"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// UserSchema is the core User schema URN.
const UserSchema = "urn:ietf:params:scim:schemas:core:2.0:User"

// Server is a running SCIM server.
type Server struct {
	// URL is the SCIM base URL, http://127.0.0.1:PORT/scim/v2, without a
	// trailing slash: resources are at URL+"/Users" and URL+"/Groups".
	URL string
	// Token is the bearer token the server requires
	// (Authorization: Bearer TOKEN); any other request gets 401.
	Token string

	client *http.Client
}

var (
	installOnce sync.Once
	installErr  error
)

// serverDir is the folder holding server.mjs and its package.json.
func serverDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("scimtest: cannot locate its source folder")
	}
	return filepath.Join(filepath.Dir(file), "server"), nil
}

// Start starts a new, empty SCIM server and stops it when tb ends. It skips
// tb when node is not installed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Skip("node is not installed: apt-get install nodejs (CI installs it)")
	}
	dir, err := serverDir()
	if err != nil {
		tb.Fatal(err)
	}
	installOnce.Do(func() { installErr = nodetest.Install(dir) })
	if installErr != nil {
		tb.Fatalf("scimtest: installing the SCIM server's npm packages: %v", installErr)
	}

	var raw [16]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])

	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"SCIMTEST_TOKEN="+token,
		"SCIMTEST_PORT=0",
		// The server exits when its stdin closes, so it dies with this
		// process even if Cleanup never runs.
		"SCIMTEST_EXIT_ON_STDIN_EOF=1",
	)
	nodetest.SetProcessGroup(cmd)
	output := &nodetest.Output{}
	cmd.Stderr = output
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("scimtest: starting node: %v", err)
	}
	waited := make(chan struct{})
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = stdin.Close()
			nodetest.KillProcessGroup(cmd)
			<-waited
		})
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(output, r)
		_ = cmd.Wait()
		close(waited)
	}()
	s := &Server{Token: token, client: &http.Client{Timeout: 15 * time.Second}}
	tb.Cleanup(func() {
		stop()
		s.client.CloseIdleConnections()
		if tb.Failed() {
			tb.Logf("scimtest: SCIM server output:\n%s", output.String())
		}
	})

	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		stop()
		tb.Fatalf("scimtest: no port line from the SCIM server in 30s; output:\n%s", output.String())
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		stop()
		tb.Fatalf("scimtest: SCIM server did not start (first line %q); output:\n%s", line, output.String())
	}
	s.URL = "http://" + addr + "/scim/v2"

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := s.do(http.MethodGet, s.URL+"/ServiceProviderConfig", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			stop()
			tb.Fatalf("scimtest: SCIM server at %s does not answer: %v; output:\n%s", s.URL, err, output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *Server) do(method, u string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Accept", "application/scim+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	return s.client.Do(req)
}

// Users returns every user resource on the server, as decoded JSON.
func (s *Server) Users(tb testing.TB) []map[string]any {
	tb.Helper()
	return s.list(tb, "Users")
}

// Groups returns every group resource on the server, as decoded JSON.
func (s *Server) Groups(tb testing.TB) []map[string]any {
	tb.Helper()
	return s.list(tb, "Groups")
}

// list pages through every resource of a kind.
func (s *Server) list(tb testing.TB, kind string) []map[string]any {
	tb.Helper()
	var all []map[string]any
	for {
		q := url.Values{"startIndex": {strconv.Itoa(len(all) + 1)}, "count": {"100"}}
		resp, err := s.do(http.MethodGet, s.URL+"/"+kind+"?"+q.Encode(), nil)
		if err != nil {
			tb.Fatalf("scimtest: GET %s: %v", kind, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			tb.Fatalf("scimtest: GET %s: %s %v: %s", kind, resp.Status, err, b)
		}
		var page struct {
			TotalResults int              `json:"totalResults"`
			Resources    []map[string]any `json:"Resources"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			tb.Fatalf("scimtest: GET %s: %v: %s", kind, err, b)
		}
		all = append(all, page.Resources...)
		if len(page.Resources) == 0 || len(all) >= page.TotalResults {
			return all
		}
	}
}

// AddUser creates a user from body (the core User schema is added to
// "schemas" when body has none) and returns the created resource.
func (s *Server) AddUser(tb testing.TB, body map[string]any) map[string]any {
	tb.Helper()
	if _, ok := body["schemas"]; !ok {
		withSchema := map[string]any{"schemas": []string{UserSchema}}
		for k, v := range body {
			withSchema[k] = v
		}
		body = withSchema
	}
	resp, err := s.do(http.MethodPost, s.URL+"/Users", body)
	if err != nil {
		tb.Fatalf("scimtest: POST Users: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		tb.Fatalf("scimtest: POST Users: %s %v: %s", resp.Status, err, b)
	}
	var created map[string]any
	if err := json.Unmarshal(b, &created); err != nil {
		tb.Fatalf("scimtest: POST Users: %v: %s", err, b)
	}
	return created
}
