package haplotest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// controlFile is the control file idsync ships, which the tests run.
func controlFile(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../control-file.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// start starts a server running the shipped control file, with the schema that
// file is written for: std:type:person has std:attribute:configured-behaviour.
// TestPushDataDefaultSchema runs it against Haplo's default schema.
func start(t testing.TB, opts ...func(*Options)) *Server {
	t.Helper()
	opt := Options{ControlFile: controlFile(t), Groups: []string{"haplo:group:staff", "haplo:group:students"}, Seed: 1, PersonHasBehaviour: true}
	for _, f := range opts {
		f(&opt)
	}
	return Start(t, opt)
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any // nil unless the body is a JSON object
}

func (r response) kind() string { s, _ := r.body["kind"].(string); return s }

func (r response) message() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func (r response) user() map[string]any { u, _ := r.body["user"].(map[string]any); return u }

func basic(user, key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+key))
}

// send makes a request with an exact Authorization header ("" for none).
func send(t testing.TB, s *Server, method, path, auth, body string) response {
	t.Helper()
	r, err := sendErr(s, method, path, auth, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func sendErr(s *Server, method, path, auth, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		return response{}, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r, nil
}

// users sends a users API request with the users API key.
func users(t testing.TB, s *Server, method, path, body string) response {
	t.Helper()
	return send(t, s, method, path, basic("haplo", s.UserAPIKey()), body)
}

// push sends a push-data record with the import key.
func push(t testing.TB, s *Server, record string) response {
	t.Helper()
	return send(t, s, http.MethodPost, "/api/push-data/"+s.ImportName(), basic("haplo", s.ImportAPIKey()), record)
}

func wantStatusKind(t testing.TB, r response, status int, kind string) {
	t.Helper()
	if r.status != status || r.kind() != kind {
		t.Fatalf("got %d %q (%s), want %d %q", r.status, r.kind(), r.raw, status, kind)
	}
}

func TestAuthentication(t *testing.T) {
	s := start(t)
	userKey, importKey := s.UserAPIKey(), s.ImportAPIKey()
	const userPath = "/api/v0-user/group/std:group:everyone"
	pushPath := "/api/push-data/" + s.ImportName()
	record := `{"first":"Ann","last":"Lee"}`
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		wantStatus int
		wantKind   string // users API kind, platform kind, or push-data result
	}{
		{"users key on users API", "GET", userPath, basic("haplo", userKey), 200, "haplo:api-v0:user:group-details"},
		{"no credentials", "GET", userPath, "", 403, "haplo:api-v0:generic:not-permitted"},
		{"user name not haplo", "GET", userPath, basic("admin", userKey), 403, "haplo:api-v0:generic:not-permitted"},
		{"not Basic", "GET", userPath, "Bearer " + userKey, 403, "haplo:api-v0:generic:not-permitted"},
		{"unknown key", "GET", userPath, basic("haplo", "no-such-key-0123456789"), 403, "INVALID-API-KEY"},
		{"short key", "GET", userPath, basic("haplo", "short"), 403, "INVALID-API-KEY"},
		{"import key on users API", "GET", userPath, basic("haplo", importKey), 403, "INVALID-API-KEY"},
		{"users key on push-data", "POST", pushPath, basic("haplo", userKey), 403, "INVALID-API-KEY"},
		{"import key with a query string", "POST", pushPath + "?x=1", basic("haplo", importKey), 403, "INVALID-API-KEY"},
		{"import key on another push-data API", "POST", "/api/push-data/other", basic("haplo", importKey), 403, "INVALID-API-KEY"},
		{"import key on push-data", "POST", pushPath, basic("haplo", importKey), 200, "success"},
		{"anonymous push-data", "POST", pushPath, "", 403, "not authorised"},
		{"anonymous push-data to unknown API", "POST", "/api/push-data/other", "", 400, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, s, tt.method, tt.path, tt.auth, record)
			got := r.kind()
			if strings.HasPrefix(tt.path, pushDataPrefix) && r.body["result"] != nil {
				got = r.body["result"].(string)
			}
			if r.status != tt.wantStatus || got != tt.wantKind {
				t.Fatalf("got %d %q (%s), want %d %q", r.status, got, r.raw, tt.wantStatus, tt.wantKind)
			}
			if r.status == 403 && r.body["success"] != nil && (r.body["success"] != false || r.message() == "") {
				t.Errorf("got %s, want success:false with an error message", r.raw)
			}
		})
	}
}

func TestThrottle(t *testing.T) {
	s := start(t)
	path := "/api/v0-user/id/1"
	for range 10 { // keys shorter than 16 characters are never looked up, so never counted
		send(t, s, "GET", path, basic("haplo", "short"), "")
	}
	for i := range throttleLimit {
		r := send(t, s, "GET", path, basic("haplo", "wrong-key-0123456789"), "")
		if r.kind() != "INVALID-API-KEY" {
			t.Fatalf("attempt %d: got %d %s, want INVALID-API-KEY", i+1, r.status, r.raw)
		}
	}
	r := send(t, s, "GET", path, basic("haplo", "wrong-key-0123456789"), "")
	wantStatusKind(t, r, 403, "THROTTLE")
	// A good key is throttled too, until the window has passed.
	r = users(t, s, "GET", path, "")
	wantStatusKind(t, r, 403, "THROTTLE")

	s.mu.Lock()
	s.now = func() time.Time { return time.Now().Add(throttleWindow + time.Second) }
	s.mu.Unlock()
	r = users(t, s, "GET", path, "")
	wantStatusKind(t, r, 404, "haplo:api-v0:user:no-such-user")
}

func TestNotFound(t *testing.T) {
	s := start(t)
	r := users(t, s, "GET", "/api/v0-user/nothing-here", "")
	if r.status != 404 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("got %d %q, want 404 text/plain", r.status, r.header.Get("Content-Type"))
	}
	if got := s.Requests()["other"]; got != 1 {
		t.Errorf("got %d requests counted as other, want 1", got)
	}
}

func TestNewValidatesControlFile(t *testing.T) {
	tests := []struct {
		name    string
		control string
		want    string
	}{
		{"empty", ``, "Options.ControlFile is required"},
		{"not JSON", `{`, "Not a valid JSON file"},
		{"no version", `{"model":"haplo:person","files":{"DEFAULT":{"read":"json"}},"instructions":[]}`, "Not a valid control file: Not a control file"},
		{"bad version", `{"dataImportControlFileVersion":1,"model":"haplo:person","files":{"DEFAULT":{"read":"json"}},"instructions":[]}`, "Bad version of control file, should be 0"},
		{"no model", `{"dataImportControlFileVersion":0,"files":{"DEFAULT":{"read":"json"}},"instructions":[]}`, "Control file does not specify model in the model property"},
		{"other model", `{"dataImportControlFileVersion":0,"model":"haplo:user-sync","files":{"DEFAULT":{"read":"json"}},"instructions":[]}`, "Model not implemented: haplo:user-sync"},
		{"no instructions", `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"json"}}}`, "Control file does not specify processing instructions in the instructions property"},
		{"unknown action", `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"json"}},"instructions":[{"action":"save"}]}`, "Unknown action in instruction: save"},
		{"nested unknown action", `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"json"}},"instructions":[{"action":"if-exists","source":"a","then":[{"action":"save"}]}]}`, "Unknown action in instruction: save"},
		{"missing property", `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"json"}},"instructions":[{"source":"a","name":"b"}]}`, "Expected property not found in field instruction: destination"},
		{"unknown filter", `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"json"}},"instructions":[{"source":"a","destination":"profile","name":"b","filters":["haplo:nope"]}]}`, "Filter haplo:nope is not available."},
		{"no files", `{"dataImportControlFileVersion":0,"model":"haplo:person","instructions":[]}`, "Control file does not have files property"},
		{"no reader", `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{}},"instructions":[]}`, "Reader not specified for file DEFAULT"},
		{"unknown reader", `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"csv"}},"instructions":[]}`, "Unknown reader for file DEFAULT: csv"},
		{"no file for the body", `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"people":{"read":"json"}},"instructions":[]}`, "Could not find file specification"},
		{"several problems", `{"dataImportControlFileVersion":2,"model":"x","files":{"DEFAULT":{"read":"json"}},"instructions":[]}`, "Not a valid control file: Bad version of control file, should be 0, Model not implemented: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{ControlFile: []byte(tt.control)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(Options{ControlFile: controlFile(t)}); err != nil {
		t.Errorf("the shipped control file: got %v, want it accepted", err)
	}
}

func TestFailNext(t *testing.T) {
	s := start(t)
	body := `{"nameFirst":"Ann","nameLast":"Lee","email":"ann@example.org"}`
	s.FailNext(2, 500)
	for range 2 {
		r := users(t, s, "POST", "/api/v0-user/create", body)
		if r.status != 500 {
			t.Fatalf("got %d, want 500", r.status)
		}
	}
	if n := len(s.Users()); n != 0 {
		t.Fatalf("got %d users after injected failures, want 0: a failure must have no effect", n)
	}
	wantStatusKind(t, users(t, s, "POST", "/api/v0-user/create", body), 200, "haplo:api-v0:user:create")

	s.FailNext(1, 429)
	r := users(t, s, "GET", "/api/v0-user/id/1", "")
	if r.status != 429 || r.header.Get("Retry-After") != "0" {
		t.Errorf("got %d Retry-After %q, want 429 Retry-After 0", r.status, r.header.Get("Retry-After"))
	}
	if got := s.Requests()["user.create"]; got != 3 {
		t.Errorf("got %d user.create requests, want 3", got)
	}
}

func TestRate5xxIsSeeded(t *testing.T) {
	statuses := func() []int {
		s := start(t, func(o *Options) { o.Seed = 42 })
		s.SetFaults(Faults{Rate5xx: 0.5})
		var got []int
		for range 40 {
			got = append(got, users(t, s, "GET", "/api/v0-user/group/std:group:everyone", "").status)
		}
		return got
	}
	first, second := statuses(), statuses()
	if diff := cmp.Diff(first, second); diff != "" {
		t.Fatalf("the same seed gave different faults (-first +second):\n%s", diff)
	}
	failed := 0
	for _, st := range first {
		switch st {
		case 200:
		case 500, 502, 503:
			failed++
		default:
			t.Fatalf("got status %d, want 200 or 5xx", st)
		}
	}
	if failed < 8 || failed > 32 {
		t.Errorf("got %d of 40 failed at rate 0.5", failed)
	}
}

func TestRate429AndDown(t *testing.T) {
	s := start(t)
	s.SetFaults(Faults{Rate429: 1, RetryAfter: "1"})
	r := users(t, s, "GET", "/api/v0-user/id/1", "")
	if r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Errorf("got %d Retry-After %q, want 429 Retry-After 1", r.status, r.header.Get("Retry-After"))
	}
	s.SetFaults(Faults{Down: true})
	r = push(t, s, `{"first":"A","last":"B"}`)
	if r.status != 503 {
		t.Errorf("down: got %d, want 503", r.status)
	}
	if n := len(s.Profiles()); n != 0 {
		t.Errorf("down: got %d profiles, want 0", n)
	}
	s.SetFaults(Faults{})
	wantStatusKind(t, users(t, s, "GET", "/api/v0-user/id/1", ""), 404, "haplo:api-v0:user:no-such-user")
}

func TestLoseResponsesAppliesTheWrite(t *testing.T) {
	s := start(t)
	s.SetFaults(Faults{LoseResponses: 1})
	_, err := sendErr(s, "POST", "/api/v0-user/create", basic("haplo", s.UserAPIKey()), `{"nameFirst":"Ann","nameLast":"Lee","email":"ann@example.org"}`)
	if err == nil {
		t.Fatal("got a response, want the connection dropped")
	}
	s.SetFaults(Faults{})
	us := s.Users()
	if len(us) != 1 || us[0].Email != "ann@example.org" {
		t.Fatalf("got users %+v, want the create applied", us)
	}
	// A retry now finds the account: the client must adopt it.
	r := users(t, s, "POST", "/api/v0-user/create", `{"nameFirst":"Ann","nameLast":"Lee","email":"ann@example.org"}`)
	wantStatusKind(t, r, 400, "haplo:api-v0:user:creation-failed")

	// LoseNext loses the next responses of one endpoint only.
	s.LoseNext(1, "push-data")
	users(t, s, "GET", "/api/v0-user/id/1", "")
	if _, err := sendErr(s, "POST", "/api/push-data/"+s.ImportName(), basic("haplo", s.ImportAPIKey()), `{"first":"Ann","last":"Lee"}`); err == nil {
		t.Fatal("push: got a response, want the connection dropped")
	}
	if n := len(s.Profiles()); n != 1 {
		t.Errorf("got %d profiles, want the push applied", n)
	}
	savedRef(t, push(t, s, `{"first":"Ann","last":"Lee"}`), true)
}

func TestLatency(t *testing.T) {
	s := start(t, func(o *Options) { o.Latency = 30 * time.Millisecond })
	begin := time.Now()
	users(t, s, "GET", "/api/v0-user/id/1", "")
	if d := time.Since(begin); d < 30*time.Millisecond {
		t.Errorf("got a response after %v, want at least 30ms", d)
	}
	s.SetLatency(120 * time.Millisecond)
	begin = time.Now()
	users(t, s, "GET", "/api/v0-user/id/1", "")
	if d := time.Since(begin); d < 120*time.Millisecond {
		t.Errorf("got a response after %v, want at least 120ms", d)
	}
}

func TestConcurrentCreatesOfOneEmail(t *testing.T) {
	s := start(t)
	const n = 20
	var wg sync.WaitGroup
	statuses := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, err := sendErr(s, "POST", "/api/v0-user/create", basic("haplo", s.UserAPIKey()),
				`{"nameFirst":"Ann","nameLast":"Lee","email":"Ann.Lee@example.org"}`)
			statuses[i], errs[i] = r.status, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, st := range statuses {
		if st == 200 {
			created++
		} else if st != 400 {
			t.Errorf("got status %d, want 200 or 400", st)
		}
	}
	if created != 1 || len(s.Users()) != 1 {
		t.Errorf("got %d creates answered 200 and %d users, want 1 and 1", created, len(s.Users()))
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
