// Package haplotest runs an in-process contract server for Haplo's user API v0
// and push-data API, built from Haplo's documented behaviour, for idsync's
// tests and benchmarks.
//
// It follows Haplo's documentation and plugin source (haplo_api_v0,
// haplo_api_user_v0, haplo_data_import_api and the data import framework)
// rather than any client: HTTP Basic keys with path restrictions and the
// failed-key throttle, the API v0 envelope, the users endpoints with their
// validation and quirks, and a data-import interpreter that runs the
// push-data control file against an in-memory object store. Faults (5xx,
// 429, lost responses, latency) can be injected while it runs.
package haplotest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/contract"
)

// Options configures a Server. Only ControlFile is required.
type Options struct {
	// UserAPIKey authenticates the users API service user; its key path is
	// "/api/v0-user/". Default "user-key-0123456789abcdef".
	UserAPIKey string
	// ImportAPIKey authenticates the push-data API service user; its key path
	// is "=/api/push-data/<ImportName>". Default "import-key-0123456789abcdef".
	ImportAPIKey string
	// ImportName is the push-data API's name (its URL). Default "people".
	ImportName string
	// ControlFile is the data-import control file the push-data API runs.
	ControlFile []byte
	// Groups are the API codes of the groups that exist, e.g. "haplo:group:staff".
	// std:group:everyone always exists.
	Groups []string
	// Types are the object type API codes that exist (the TYPE dictionary),
	// besides std:type:person. Nil means every code shaped like "ns:type:name"
	// exists, so a "past" type code need not be declared.
	Types []string
	// PersonHasBehaviour adds std:attribute:configured-behaviour to
	// std:type:person, as an application must for a control file to set it on
	// profiles (and so for haplo:code-to-ref to find them). Haplo's default
	// schema lacks it: a control file that sets it then gets the setup error
	// "Unknown name in field ..." with every request, and the value is skipped.
	PersonHasBehaviour bool
	// Latency is added to every request.
	Latency time.Duration
	// Seed seeds the randomness of fault injection.
	Seed int64
}

// Faults are failures injected before a request has any effect, except
// LoseResponses, which applies the request and then drops the connection.
type Faults struct {
	Rate5xx       float64 // fraction of requests answered 500, 502 or 503
	Statuses5xx   []int   // the statuses Rate5xx picks from, when not the default three
	Rate429       float64 // fraction of requests answered 429
	RetryAfter    string  // Retry-After sent with 429s, e.g. "1"; empty sends none
	Down          bool    // every request is answered 503
	LoseResponses float64 // fraction of requests applied, then closed without a response
}

// User is an account as an administrator would see it.
type User struct {
	ID                  int
	NameFirst, NameLast string
	Email               string
	Ref                 string // profile ref, "" for none
	LocaleID            string // "" means "en"
	Tags                map[string]string
	Groups              []string // direct groups: API codes, or "group:<id>"
	Blocked             bool
}

// Profile is a person object in the object store.
type Profile struct {
	Ref string
	// Attrs maps attribute API codes to their values as Haplo displays them;
	// the title is "first last" under dc:attribute:title and the type is its
	// API code under dc:attribute:type.
	Attrs map[string][]string
	// Saves counts the times the push-data API saved the object, creation included.
	Saves int
}

// Server is a fake Haplo application. All methods are safe for concurrent use.
type Server struct {
	opt     Options
	control map[string]any

	// Traffic counts the requests by endpoint (user.get, user.update, user.create,
	// user.enable, user.find-by-tag, user.group, push-data, other; faults and
	// authentication failures included) and adds the latency.
	contract.Traffic

	mu          sync.Mutex
	principals  map[int]*principal
	index       map[string]map[int]*principal // see reindex
	groups      []*principal                  // every group, so that codes resolve without scanning users
	nextID      int
	objects     map[int64]*object
	behaviours  map[string]map[int64]bool // configured-behaviour code -> ids of objects holding it
	nextObject  int64
	model       map[string]*destination // the haplo:person data-import model
	prepared    *prepared               // the control file's instructions for model, once a push needed them
	keyFailures map[string][]time.Time  // failed key look-ups by client IP
	// welcomeLinks are the links user.create gave (welcomeLink=1), by user id.
	welcomeLinks map[int]string
	faults       Faults
	failNext     int
	loseNext     int    // see LoseNext
	loseLabel    string // "" for any endpoint
	failStatus   int
	rng          *rand.Rand
	url          string
	now          func() time.Time
}

const (
	defaultUserAPIKey   = "user-key-0123456789abcdef"
	defaultImportAPIKey = "import-key-0123456789abcdef"
	defaultImportName   = "people"
)

// New returns a server for opt. It validates the control file as Haplo's data
// import framework does, and fails with Haplo's message if it is not valid.
func New(opt Options) (*Server, error) {
	if opt.UserAPIKey == "" {
		opt.UserAPIKey = defaultUserAPIKey
	}
	if opt.ImportAPIKey == "" {
		opt.ImportAPIKey = defaultImportAPIKey
	}
	if opt.ImportName == "" {
		opt.ImportName = defaultImportName
	}
	if len(opt.UserAPIKey) < minKeyLength || len(opt.ImportAPIKey) < minKeyLength {
		return nil, fmt.Errorf("haplotest: API keys must have at least %d characters", minKeyLength)
	}
	if opt.UserAPIKey == opt.ImportAPIKey {
		return nil, errors.New("haplotest: the users API and push-data API keys must differ")
	}
	if strings.ContainsAny(opt.ImportName, "/?#") {
		return nil, fmt.Errorf("haplotest: import name %q is not a single path element", opt.ImportName)
	}
	control, err := parseControl(opt.ControlFile)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opt:          opt,
		control:      control,
		principals:   map[int]*principal{},
		index:        map[string]map[int]*principal{},
		nextID:       100,
		objects:      map[int64]*object{},
		behaviours:   map[string]map[int64]bool{},
		model:        newPersonModel(opt.PersonHasBehaviour),
		nextObject:   firstObjectID,
		keyFailures:  map[string][]time.Time{},
		welcomeLinks: map[int]string{},
		rng:          rand.New(rand.NewPCG(uint64(opt.Seed), 0x68706c6f)),
		now:          time.Now,
	}
	s.SetLatency(opt.Latency)
	s.principals[groupEveryone] = &principal{id: groupEveryone, isGroup: true, code: codeEveryone, name: "Everyone"}
	s.groups = append(s.groups, s.principals[groupEveryone])
	for _, code := range opt.Groups {
		if code == "" || strings.HasPrefix(code, "group:") {
			return nil, fmt.Errorf("haplotest: bad group code %q", code)
		}
		if _, ok := s.groupByCode(code); ok {
			return nil, fmt.Errorf("haplotest: group %q listed twice", code)
		}
		s.addGroup(code)
	}
	return s, nil
}

// Start starts s's handler on a new httptest.Server that is closed when the
// test or benchmark ends. It fails tb if opt is not valid.
func Start(tb testing.TB, opt Options) *Server {
	tb.Helper()
	s, err := New(opt)
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	tb.Cleanup(ts.Close)
	s.mu.Lock()
	s.url = ts.URL
	s.mu.Unlock()
	return s
}

// URL is the base URL of a server made by Start, "" otherwise.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// UserAPIKey returns the users API key.
func (s *Server) UserAPIKey() string { return s.opt.UserAPIKey }

// ImportAPIKey returns the push-data API key.
func (s *Server) ImportAPIKey() string { return s.opt.ImportAPIKey }

// ImportName returns the push-data API's name.
func (s *Server) ImportName() string { return s.opt.ImportName }

// Handler returns the HTTP handler of the fake application.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Users returns copies of every user account (not groups), sorted by ID.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	var us []User
	for _, p := range s.principals {
		if !p.isGroup {
			us = append(us, s.exportUser(p))
		}
	}
	sort.Slice(us, func(i, j int) bool { return us[i].ID < us[j].ID })
	return us
}

// User returns a copy of the user account with id.
func (s *Server) User(id int) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.principals[id]
	if !ok || p.isGroup {
		return User{}, false
	}
	return s.exportUser(p), true
}

// AddUser seeds an account as an administrator would create it, without the
// API's validation, and returns it with its new ID. Unknown group codes in
// u.Groups are created as groups.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &principal{id: s.allocID()}
	s.importUser(p, u)
	s.principals[p.id] = p
	return s.exportUser(p)
}

// SetUser replaces the account with u.ID by u, as an administrator editing it
// by hand would. It reports false if there is no such account.
func (s *Server) SetUser(u User) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.principals[u.ID]
	if !ok || p.isGroup {
		return false
	}
	s.importUser(p, u)
	return true
}

// Profiles returns copies of every object in the store, sorted by ref.
func (s *Server) Profiles() []Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]Profile, 0, len(s.objects))
	for _, o := range s.objects {
		ps = append(ps, o.export())
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Ref < ps[j].Ref })
	return ps
}

// Profile returns a copy of the object with ref.
func (s *Server) Profile(ref string) (Profile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := parseRef(ref)
	if !ok {
		return Profile{}, false
	}
	o, ok := s.objects[id]
	if !ok {
		return Profile{}, false
	}
	return o.export(), true
}

// AddProfile seeds a person object and returns it with its new ref (p.Ref is
// ignored). A title "A B C" is taken as first name "A B" and last name "C".
func (s *Server) AddProfile(p Profile) Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := importObject(p)
	o.id = s.allocObject()
	s.putObject(o)
	return o.export()
}

// SetPersonHasBehaviour adds std:attribute:configured-behaviour to
// std:type:person, or takes it away, as an administrator changing the
// application's schema would. Requests from then on see the new schema;
// objects keep their values. See Options.PersonHasBehaviour.
func (s *Server) SetPersonHasBehaviour(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model = newPersonModel(on)
	s.prepared = nil // prepared for the old schema
}

// putObject stores o and indexes its configured behaviours. s.mu is held.
func (s *Server) putObject(o *object) {
	if old, ok := s.objects[o.id]; ok {
		for _, v := range old.attrs[attrBehaviour] {
			delete(s.behaviours[v.text], o.id)
		}
	}
	s.objects[o.id] = o
	for _, v := range o.attrs[attrBehaviour] {
		if v.kind != "configuration-name" {
			continue
		}
		if s.behaviours[v.text] == nil {
			s.behaviours[v.text] = map[int64]bool{}
		}
		s.behaviours[v.text][o.id] = true
	}
}

// behaviourRef is the object whose configured behaviour is code, the lowest
// id if several are (Haplo's behaviour_ref: ORDER BY id LIMIT 1). s.mu is held.
func (s *Server) behaviourRef(code string) (int64, bool) {
	var found int64
	for id := range s.behaviours[code] {
		if found == 0 || id < found {
			found = id
		}
	}
	return found, found != 0
}

// SetFaults changes the faults injected into requests.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// WelcomeLinks returns the welcome links user.create gave, by user id.
func (s *Server) WelcomeLinks() map[int]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.welcomeLinks)
}

// FailNext makes the next n requests fail with status before they have any
// effect. A 429 carries Faults.RetryAfter, or "0" if that is empty.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failStatus = n, status
}

// LoseNext makes the next n requests to endpoint (a Requests label such as
// "push-data"; "" for any) take effect and then lose their responses: the
// connection is closed without an answer, as when a proxy or the network fails
// after Haplo acted.
func (s *Server) LoseNext(n int, endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseNext, s.loseLabel = n, endpoint
}

func (s *Server) allocID() int {
	id := s.nextID
	s.nextID++
	return id
}

func (s *Server) allocObject() int64 {
	id := s.nextObject
	s.nextObject++
	return id
}

// writeJSON writes v as Haplo does: no HTML escaping, optionally indented.
func writeJSON(w http.ResponseWriter, status int, v any, indent string) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// writeText writes a plain-text response, as the platform does for argument
// validation failures and unknown paths.
func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
