package csv

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	dsync "github.com/idsync/idsync/sync"
)

const header = "employee_id,login,email,given_name,family_name,status,teams,job_title,phone"

// lines joins lines into a file's contents, each ended by LF.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// writeFile writes contents to people.csv in a new temporary folder and returns its path.
func writeFile(t testing.TB, contents string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "people.csv")
	if err := os.WriteFile(path, []byte(contents), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// hrConfig is the config for files with the header above.
func hrConfig(path string) Config {
	return Config{
		Path: path,
		Columns: Columns{ID: "employee_id", Username: "login", Email: "email", FirstName: "given_name",
			LastName: "family_name", Active: "status", Groups: "teams"},
		Attributes: map[string]string{"title": "job_title", "phone": "phone"},
		Active:     ActiveConfig{True: []string{"active"}, False: []string{"left"}},
	}
}

func read(t *testing.T, contents string, mod func(*Config)) ([]dsync.Identity, error) {
	t.Helper()
	cfg := hrConfig(writeFile(t, contents))
	if mod != nil {
		mod(&cfg)
	}
	s, err := New("hr", cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s.Read(t.Context())
}

func TestReadGood(t *testing.T) {
	alice := dsync.Identity{
		ID: "E1", Username: "alice", Email: "Alice@example.org", FirstName: "Alice", LastName: "Liddell",
		Active: true, Groups: []string{"eng", "ops"},
		Attributes: dsync.AttributesOf(map[string][]string{"title": {"Engineer"}, "phone": {"+44 20 7946 0001"}}),
		Source:     "hr", Origin: "people.csv:2",
	}
	zoe := dsync.Identity{
		ID: "E2", Username: "zoe", Email: "zoe@example.org", FirstName: "Zoë", LastName: "Łukasz",
		Active: false, Source: "hr", Origin: "people.csv:3",
	}
	at := func(id dsync.Identity, origin string) dsync.Identity { id.Origin = origin; return id }

	tests := []struct {
		name     string
		contents string
		mod      func(*Config)
		want     []dsync.Identity
	}{
		{
			name: "plain",
			contents: lines(header,
				"E1,alice,Alice@example.org,Alice,Liddell,active,ops;eng,Engineer,+44 20 7946 0001",
				"E2,zoe,zoe@example.org,Zoë,Łukasz,left,,,"),
			want: []dsync.Identity{alice, zoe},
		},
		{
			name: "spaces, case and empty groups",
			contents: lines(" Employee_ID , LOGIN,email,given_name,family_name,Status,teams,job_title,phone",
				" E1 , alice , Alice@example.org ,Alice , Liddell,ACTIVE , eng ;; ops;eng; ,Engineer ,+44 20 7946 0001",
				"E2,zoe,zoe@example.org,Zoë,Łukasz, Left ,  ; ,, "),
			want: []dsync.Identity{alice, zoe},
		},
		{
			name: "BOM and CRLF",
			contents: "\uFEFF" + header + "\r\n" +
				"E1,alice,Alice@example.org,Alice,Liddell,active,ops;eng,Engineer,+44 20 7946 0001\r\n" +
				"E2,zoe,zoe@example.org,Zoë,Łukasz,left,,,\r\n",
			want: []dsync.Identity{alice, zoe},
		},
		{
			name: "BOM before a quoted header",
			contents: "\uFEFF\"employee_id\",\"login\",\"email\",\"given_name\",\"family_name\",\"status\",\"teams\",\"job_title\",\"phone\"\r\n" +
				"\"E2\",\"zoe\",\"zoe@example.org\",\"Zoë\",\"Łukasz\",\"left\",\"\",\"\",\"\"\r\n",
			want: []dsync.Identity{at(zoe, "people.csv:2")},
		},
		{
			name: "no newline at the end",
			contents: header + "\n" +
				"E1,alice,Alice@example.org,Alice,Liddell,active,ops;eng,Engineer,+44 20 7946 0001",
			want: []dsync.Identity{alice},
		},
		{
			name: "semicolon delimiter",
			contents: lines(strings.ReplaceAll(header, ",", ";"),
				"E1;alice;Alice@example.org;Alice;Liddell;active;ops|eng;Engineer;+44 20 7946 0001",
				"E2;zoe;zoe@example.org;Zoë;Łukasz;left;;;"),
			mod:  func(c *Config) { c.Delimiter = ";"; c.GroupSeparator = "|" },
			want: []dsync.Identity{alice, zoe},
		},
		{
			name: "tab delimiter",
			contents: lines(strings.ReplaceAll(header, ",", "\t"),
				"E1\talice\tAlice@example.org\tAlice\tLiddell\tactive\tops;eng\tEngineer\t+44 20 7946 0001",
				"E2\tzoe\tzoe@example.org\tZoë\tŁukasz\tleft\t\t\t"),
			mod:  func(c *Config) { c.Delimiter = "\t" },
			want: []dsync.Identity{alice, zoe},
		},
		{
			name: `tab delimiter written \t`,
			contents: lines(strings.ReplaceAll(header, ",", "\t"),
				"E2\tzoe\tzoe@example.org\tZoë\tŁukasz\tleft\t\t\t"),
			mod:  func(c *Config) { c.Delimiter = `\t` },
			want: []dsync.Identity{at(zoe, "people.csv:2")},
		},
		{
			name: "quoted fields with delimiters, newlines and doubled quotes",
			contents: lines(header,
				`E1,alice,Alice@example.org,Alice,Liddell,active,"ops;eng","Engineer, ""Senior""`,
				`and on call",+44 20 7946 0001`,
				`"E2","zoe","zoe@example.org","Zoë","Łukasz","left","","",""`),
			want: []dsync.Identity{
				func() dsync.Identity {
					a := alice
					a.Attributes = dsync.AttributesOf(map[string][]string{"title": {"Engineer, \"Senior\"\nand on call"}, "phone": {"+44 20 7946 0001"}})
					return a
				}(),
				at(zoe, "people.csv:4"), // the quoted field spans lines 2 and 3
			},
		},
		{
			name:     "blank lines are skipped but counted",
			contents: lines("", header, "", "E2,zoe,zoe@example.org,Zoë,Łukasz,left,,,", ""),
			want:     []dsync.Identity{at(zoe, "people.csv:4")},
		},
		{
			name:     "header only",
			contents: lines(header),
			want:     nil,
		},
		{
			name: "no active column: everyone is active",
			contents: lines(header,
				"E2,zoe,zoe@example.org,Zoë,Łukasz,left,,,"),
			mod: func(c *Config) { c.Columns.Active = "" },
			want: []dsync.Identity{func() dsync.Identity {
				z := at(zoe, "people.csv:2")
				z.Active = true
				return z
			}()},
		},
		{
			name: "default active values",
			contents: lines("id,email,enabled",
				"1,a@example.org,Yes", "2,b@example.org,0", "3,c@example.org, Disabled", "4,d@example.org,TRUE"),
			mod: func(c *Config) {
				c.Columns = Columns{ID: "id", Email: "email", Active: "enabled"}
				c.Attributes = nil
				c.Active = ActiveConfig{}
			},
			want: []dsync.Identity{
				{ID: "1", Email: "a@example.org", Active: true, Source: "hr", Origin: "people.csv:2"},
				{ID: "2", Email: "b@example.org", Active: false, Source: "hr", Origin: "people.csv:3"},
				{ID: "3", Email: "c@example.org", Active: false, Source: "hr", Origin: "people.csv:4"},
				{ID: "4", Email: "d@example.org", Active: true, Source: "hr", Origin: "people.csv:5"},
			},
		},
		{
			name: "unused duplicate and empty headers are fine",
			contents: lines("id,email,note,note,",
				"1,a@example.org,x,y,z"),
			mod: func(c *Config) {
				c.Columns = Columns{ID: "id", Email: "email"}
				c.Attributes = nil
			},
			want: []dsync.Identity{{ID: "1", Email: "a@example.org", Active: true, Source: "hr", Origin: "people.csv:2"}},
		},
		{
			name: "the same username for a leaver and a joiner",
			contents: lines(header,
				"E1,sam,sam@example.org,Sam,Old,left,,,",
				"E2,Sam,SAM@example.org,Sam,New,active,,,"),
			want: []dsync.Identity{
				{ID: "E1", Username: "sam", Email: "sam@example.org", FirstName: "Sam", LastName: "Old", Source: "hr", Origin: "people.csv:2"},
				{ID: "E2", Username: "Sam", Email: "SAM@example.org", FirstName: "Sam", LastName: "New", Active: true, Source: "hr", Origin: "people.csv:3"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(t, tt.contents, tt.mod)
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Read() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadFails checks what makes a read fail: anything that makes the file, or the
// rest of it, untrustworthy.
func TestReadFails(t *testing.T) {
	tests := []struct {
		name     string
		contents string
		mod      func(*Config)
		want     []string // in the error text
		is       error
	}{
		{
			name:     "missing required header",
			contents: lines("employee_id,login,mail,given_name,family_name,status,teams,job_title,phone", "E1,a,a@example.org,,,active,,,"),
			want:     []string{`people.csv:1: no column "email" (set as columns.email)`},
		},
		{
			name:     "missing headers are all named",
			contents: lines("id,login,email,given_name,family_name,status,teams,title,phone"),
			want: []string{
				`people.csv:1: no column "employee_id" (set as columns.id)`,
				`people.csv:1: no column "job_title" (set as attributes.title)`,
			},
		},
		{
			name:     "duplicate header the config uses",
			contents: lines(header+",Email", "E1,a,a@example.org,,,active,,,,b@example.org"),
			want:     []string{`people.csv:1: header "email" appears in columns 3, 10 (set as columns.email, which needs exactly one)`},
		},
		{
			name: "unterminated quote",
			contents: lines(header,
				"E1,alice,alice@example.org,Alice,Liddell,active,,,",
				`E2,bob,bob@example.org,"Bob,Smith,active,,,`,
				"E3,carol,carol@example.org,Carol,Jones,active,,,"),
			want: []string{`people.csv:4: column 50: extraneous or missing " in quoted-field (in the row that starts at line 3)`},
			is:   csv.ErrQuote,
		},
		{
			name: "text after a closing quote",
			contents: lines(header,
				`E1,alice,alice@example.org,"Alice"x,Liddell,active,,,`),
			want: []string{`people.csv:2: column 34: extraneous or missing " in quoted-field`},
			is:   csv.ErrQuote,
		},
		{
			name: "bare quote",
			contents: lines(header,
				`E1,alice,alice@example.org,Al"ice,Liddell,active,,,`),
			want: []string{`people.csv:2: column 30: bare " in non-quoted-field`},
			is:   csv.ErrBareQuote,
		},
		{
			name:     "quote error in the header",
			contents: lines(`employee_id,"login`),
			want:     []string{`people.csv:1: column 20: extraneous or missing " in quoted-field`},
			is:       csv.ErrQuote,
		},
		{
			name:     "empty file",
			contents: "",
			want:     []string{"people.csv: no header row"},
		},
		{
			name:     "only a BOM and blank lines",
			contents: "\uFEFF\r\n\n",
			want:     []string{"people.csv: no header row"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(t, tt.contents, tt.mod)
			if err == nil {
				t.Fatalf("got %d identities and no error, want an error", len(got))
			}
			if got != nil {
				t.Errorf("got %d identities with the error, want none", len(got))
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got %q, want it to contain %q", err, want)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

func TestReadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "people.csv")
	s, err := New("hr", hrConfig(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(t.Context())
	if !errors.Is(err, fs.ErrNotExist) || got != nil {
		t.Fatalf("got %v, %v, want nil, fs.ErrNotExist", got, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("got %q, want it to name %s", err, path)
	}
}

func TestReadDirectory(t *testing.T) {
	s, err := New("hr", hrConfig(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read(t.Context()); err == nil {
		t.Fatalf("got %d identities and no error, want an error", len(got))
	}
}

func TestReadCancelled(t *testing.T) {
	var b strings.Builder
	b.WriteString(header + "\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "E%d,u%d,u%d@example.org,,,active,,,\n", i, i, i)
	}
	s, err := New("hr", hrConfig(writeFile(t, b.String())), nil)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got, err := s.Read(ctx); !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("cancelled before: got %d identities, %v, want none, context.Canceled", len(got), err)
	}

	// Cancelled while reading: the file is read through a context that ends after
	// the first rows.
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	got, err := s.decode(ctx, &cancelAfter{r: f, n: 4096, cancel: cancel}, 0)
	if !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("cancelled during: got %d identities, %v, want none, context.Canceled", len(got), err)
	}
}

// cancelAfter calls cancel once n bytes have been read through it.
type cancelAfter struct {
	r      *os.File
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestSampleFile(t *testing.T) {
	cfg := hrConfig(filepath.Join("..", "..", "testdata", "people.csv"))
	cfg.Columns.Active = "status"
	cfg.Active = ActiveConfig{True: []string{"active"}, False: []string{"left"}}
	s, err := New("hr", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 12 {
		t.Errorf("got %d identities, want 12", len(ids))
	}
	for _, id := range ids {
		if !id.Valid() {
			t.Errorf("%s: got problems %v, want none", id.Where(), id.Problems)
		}
	}
}

func BenchmarkRead100k(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(header + "\n")
	for i := range 100_000 {
		status := "active"
		if i%10 == 0 {
			status = "left"
		}
		fmt.Fprintf(&sb, "E%06d,user%d,User.%d@example.org,Zoë,Łukasz-%d,%s,staff;team-%d,\"Engineer, grade %d\",+44 20 7946 %04d\n",
			i, i, i, i, status, i%50, i%7, i%10000)
	}
	s, err := New("hr", hrConfig(writeFile(b, sb.String())), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sb.Len()))
	b.ReportAllocs()
	for b.Loop() {
		ids, err := s.Read(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if len(ids) != 100_000 || !ids[len(ids)-1].Valid() {
			b.Fatalf("got %d identities, the last with problems %v", len(ids), ids[len(ids)-1].Problems)
		}
	}
}
