package csv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCSV reads arbitrary files and checks what the engine relies on: Read never
// panics; it returns identities or an error, never both; every identity has problems
// or a readable id; no two problem-free identities share an id; every problem names
// the file.
func FuzzCSV(f *testing.F) {
	for _, seed := range []string{
		lines(header, "E1,alice,alice@example.org,Alice,Liddell,active,ops;eng,Engineer,+44 20 7946 0001"),
		"\uFEFF" + header + "\r\nE1,a,a@example.org,Zoë,Ł,left,,,\r\nE2,b,b@example.org,,,active,x;y,,\r\n",
		lines(header, `E1,alice,alice@example.org,"Al""ice","Lid,dell",active,"a;`, `b",,`),
		lines(header, "E1,a,a@example.org,,,active,,,", "E1,b,A@example.org,,,active,,,", "E2,B,b@example.org,,,maybe,,,"),
		lines(header, "E1,a,a@example.org", ",,,,,,,,", "E\xff,b,bob@,,,left,,,,,,"),
		lines(header, `E1,a,"a@example.org,,,active,,,`),
		lines(header, `E1,a,a"@example.org,,,active,,,`),
		lines("employee_id,email,email", "E1,a@example.org,b@example.org"),
		lines("id"),
		"",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "people.csv")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := New("hr", hrConfig(path), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := s.Read(t.Context())
		if err != nil {
			if ids != nil {
				t.Fatalf("got %d identities and error %v, want one or the other", len(ids), err)
			}
			return
		}
		seen := make(map[string]string)
		for _, id := range ids {
			for _, p := range id.Problems {
				if !strings.HasPrefix(p, "people.csv:") {
					t.Errorf("got problem %q, want it to start with the file name", p)
				}
			}
			if !id.Valid() {
				continue
			}
			if id.ID == "" || !utf8.ValidString(id.ID) {
				t.Errorf("%s: got id %q and no problems, want a non-empty UTF-8 id", id.Origin, id.ID)
			}
			for _, v := range []string{id.Username, id.Email, id.FirstName, id.LastName} {
				if !utf8.ValidString(v) {
					t.Errorf("%s: got %q and no problems, want valid UTF-8", id.Origin, v)
				}
			}
			if prev, ok := seen[id.ID]; ok {
				t.Errorf("got id %q at %s and %s, both without problems", id.ID, prev, id.Origin)
			}
			seen[id.ID] = id.Origin
		}
	})
}
