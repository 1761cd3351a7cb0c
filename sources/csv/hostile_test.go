package csv

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	dsync "github.com/idsync/idsync/sync"
)

// outcome is what reading a hostile value should give.
type outcome int

const (
	// faithful: the row reads without problems and the value comes back byte for byte.
	faithful outcome = iota
	// held: the row reads with a problem naming the file, the line and the column
	// ("people.csv:2: column "given_name": ..."), so that person is left as they are
	// in every sink.
	held
	// readFails: the whole read fails with an error naming the file and the line.
	readFails
)

func (o outcome) String() string { return [...]string{"faithful", "held", "read error"}[o] }

// TestHostileValues writes one row with a hostile value (and a plain row after it),
// reads the file, and asserts the exact outcome.
//
// What is right, and why:
//
//   - Length. Nothing reads a 10 MB name or id on purpose: it is a broken export or an
//     attack, and Haplo would get it in every request (or refuse it, every run). Held,
//     with a problem on the column. An overlong id is not a readable anchor: held with
//     an empty ID, as an id that is not UTF-8 already is, so that the run disables
//     nobody for absence. (A limit of, say, 256 bytes for ids and 1,024 characters for
//     names leaves room for every real one; the 1,000-character name of the end-to-end
//     test must still pass.)
//   - C0 controls and DEL (NUL, BEL, ESC, DEL, a CR or an LF inside a quoted field) in
//     a name: held. They are never part of a person's name; NUL is refused by Haplo's
//     database (PostgreSQL text); ESC reaches the operator's terminal through the
//     printed plan and problems; a CR or LF breaks log lines. A NUL in an id: held,
//     with an empty ID.
//   - Unicode format characters in names (bidi overrides and isolates U+202E,
//     U+2066..U+2069, a zero-width joiner, U+FEFF in the middle of a field): faithful.
//     Right-to-left and Indic names and emoji sequences use them, and Haplo stores
//     them as text. In an id they are held with an empty ID: an anchor must look like
//     what it is, and "E1\u202E" or "\uFEFFE1" (a second file's BOM at the start of
//     a row, from a concatenated export) prints as "E1" in every report while being
//     another person. A BOM before a quoted first field is a bare quote: the read
//     fails, as for any other broken quoting.
//   - Emails: what dsync.ValidEmail accepts (net/mail's bare address, one @, a
//     domain without spaces) reads faithfully: o'brien@, a+tag@, a subdomain, an IDN
//     domain in UTF-8. A quoted local part ("quoted local"@example.org) is valid in
//     RFC 5322 but net/mail returns it unquoted, so ValidEmail refuses it: held, with
//     "invalid email". (Whether Haplo takes an IDN domain is the end-to-end test's
//     business.)
//   - Names in any script, emoji included: faithful.
//   - Invalid UTF-8 outside the id column: held with "invalid UTF-8", the id kept, the
//     value with U+FFFD in place of the bad bytes; in the id column, held with an
//     empty ID.
//
// Cases with bug set are where idsync did otherwise before the limits of
// dsync.CheckID and dsync.CheckText: the field says what used to happen.
func TestHostileValues(t *testing.T) {
	const tenMB = 10 << 20
	tests := []struct {
		name string
		set  map[string]string // header -> value, over the plain row
		bare bool              // write the row's fields unquoted, as they are
		want outcome
		// For held: the column the problem names, a word it contains, and the ID.
		column, problem, wantID string
		bug                     string // what happened before the fix
	}{
		{name: "10 MB name", set: map[string]string{"given_name": strings.Repeat("a", tenMB)},
			want: held, column: "given_name", problem: "long", wantID: "E1",
			bug: "a 10 MB given_name is read without a problem and sent to Haplo"},
		{name: "10 MB id", set: map[string]string{"employee_id": strings.Repeat("E", tenMB)},
			want: held, column: "employee_id", problem: "long", wantID: "",
			bug: "a 10 MB id is accepted as the anchor, stored in the snapshot and sent as a Haplo tag"},

		{name: "NUL in a name", set: map[string]string{"given_name": "An\x00n"}, want: held, column: "given_name", problem: "control", wantID: "E1",
			bug: "a NUL is read into given_name without a problem; Haplo's database refuses it"},
		{name: "BEL in a name", set: map[string]string{"family_name": "Lee\a"}, want: held, column: "family_name", problem: "control", wantID: "E1",
			bug: "a BEL is read into family_name without a problem"},
		{name: "ESC in a name", set: map[string]string{"given_name": "\x1b[31mAnn\x1b[0m"}, want: held, column: "given_name", problem: "control", wantID: "E1",
			bug: "terminal escapes are read into given_name without a problem"},
		{name: "DEL in a name", set: map[string]string{"given_name": "Ann\x7f"}, want: held, column: "given_name", problem: "control", wantID: "E1",
			bug: "a DEL is read into given_name without a problem"},
		{name: "lone CR in a quoted name", set: map[string]string{"given_name": "Ann\rMarie"}, want: held, column: "given_name", problem: "control", wantID: "E1",
			bug: "a CR inside a quoted field is read into given_name without a problem"},
		{name: "LF in a quoted name", set: map[string]string{"family_name": "Lee\nSmith"}, want: held, column: "family_name", problem: "control", wantID: "E1",
			bug: "an LF inside a quoted field is read into family_name without a problem"},
		{name: "NUL in the id", set: map[string]string{"employee_id": "E\x001"}, want: held, column: "employee_id", problem: "control", wantID: "",
			bug: "a NUL is accepted inside the anchor"},

		{name: "RLO in a name", set: map[string]string{"given_name": "\u202eAnn"}, want: faithful},
		{name: "bidi isolates in a name", set: map[string]string{"family_name": "\u2066Lee\u2069 \u2067لي\u2069 \u2068x\u2069"}, want: faithful},
		{name: "RLO in the id", set: map[string]string{"employee_id": "E1\u202e"}, want: held, column: "employee_id", problem: "U+202E", wantID: "",
			bug: "an id with U+202E is accepted; it prints like another id in every report"},
		{name: "bidi isolate in the id", set: map[string]string{"employee_id": "\u2066E1\u2069"}, want: held, column: "employee_id", problem: "U+2066", wantID: "",
			bug: "an id with U+2066/U+2069 is accepted; it prints like another id in every report"},
		{name: "ZWJ in names", set: map[string]string{"given_name": "👩\u200d💻", "family_name": "क\u094d\u200dष"}, want: faithful},
		{name: "BOM in the middle of a name", set: map[string]string{"given_name": "Ann\ufeffMarie"}, want: faithful},
		{name: "BOM at the start of a row", set: map[string]string{"employee_id": "\ufeffE1"}, bare: true, want: held, column: "employee_id", problem: "U+FEFF", wantID: "",
			bug: "a BOM before a data row's id (a concatenated export) becomes part of the anchor"},
		{name: "BOM before a quoted id", set: map[string]string{"employee_id": "\ufeff" + quote("E1")}, bare: true, want: readFails, problem: `bare "`},

		{name: "email with an apostrophe", set: map[string]string{"email": "o'brien@example.org"}, want: faithful},
		{name: "email with a plus tag", set: map[string]string{"email": "a+tag@example.org"}, want: faithful},
		{name: "email with a quoted local part", set: map[string]string{"email": `"quoted local"@example.org`},
			want: held, column: "email", problem: "invalid email", wantID: "E1"},
		{name: "email in a subdomain", set: map[string]string{"email": "user@sub.domain.example"}, want: faithful},
		{name: "email with an IDN domain", set: map[string]string{"email": "user@bücher.example"}, want: faithful},

		{name: "Arabic", set: map[string]string{"given_name": "محمد", "family_name": "عبد الله"}, want: faithful},
		{name: "Hebrew", set: map[string]string{"given_name": "שרה", "family_name": "כהן"}, want: faithful},
		{name: "Devanagari", set: map[string]string{"given_name": "प्रिया", "family_name": "शर्मा"}, want: faithful},
		{name: "Chinese", set: map[string]string{"given_name": "伟", "family_name": "王"}, want: faithful},
		{name: "Japanese", set: map[string]string{"given_name": "さくら", "family_name": "山田"}, want: faithful},
		{name: "Korean", set: map[string]string{"given_name": "지민", "family_name": "김"}, want: faithful},
		{name: "Cyrillic", set: map[string]string{"given_name": "Ольга", "family_name": "Иванова"}, want: faithful},
		{name: "Greek", set: map[string]string{"given_name": "Ελένη", "family_name": "Παπαδοπούλου"}, want: faithful},
		{name: "Thai", set: map[string]string{"given_name": "สมชาย", "family_name": "ใจดี"}, want: faithful},
		{name: "emoji", set: map[string]string{"given_name": "🦊", "family_name": "👨‍👩‍👧‍👦"}, want: faithful},

		{name: "invalid UTF-8 in a name", set: map[string]string{"given_name": "Jos\xe9"}, want: held, column: "given_name", problem: "invalid UTF-8", wantID: "E1"},
		{name: "invalid UTF-8 in a title", set: map[string]string{"job_title": "Ma\xeetre"}, want: held, column: "job_title", problem: "invalid UTF-8", wantID: "E1"},
		{name: "invalid UTF-8 in the id", set: map[string]string{"employee_id": "E\xff1"}, want: held, column: "employee_id", problem: "invalid UTF-8", wantID: ""},
	}
	columns := strings.Split(header, ",")
	plain := map[string]string{"employee_id": "E1", "login": "ann", "email": "ann@example.org", "given_name": "Ann",
		"family_name": "Lee", "status": "active", "teams": "eng", "job_title": "Lecturer", "phone": "+44 20 7946 0001"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := make([]string, len(columns))
			for i, c := range columns {
				v, ok := tt.set[c]
				if !ok {
					v = plain[c]
				}
				if !tt.bare {
					v = quote(v)
				}
				values[i] = v
			}
			row := strings.Join(values, ",")
			next := 3 + strings.Count(row, "\n") // the plain row's line
			ids, err := read(t, lines(header, row, "E2,bob,bob@example.org,Bob,Ray,active,,,"), nil)

			if tt.want == readFails {
				if err == nil || !strings.HasPrefix(err.Error(), "people.csv:2: column ") || !strings.Contains(err.Error(), tt.problem) || ids != nil {
					t.Fatalf("got %d identities and error %v, want a read error at people.csv:2 containing %q", len(ids), err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(ids) != 2 {
				t.Fatalf("got %d identities, want 2", len(ids))
			}
			got, bob := ids[0], ids[1]
			if bob.ID != "E2" || !bob.Valid() || bob.Origin != fmt.Sprintf("people.csv:%d", next) {
				t.Errorf("the row after it: id %q origin %s problems %q, want E2 at line %d without problems", bob.ID, bob.Origin, bob.Problems, next)
			}
			for _, v := range []string{got.ID, got.Username, got.Email, got.FirstName, got.LastName} {
				if !utf8.ValidString(v) {
					t.Errorf("got %q, want every field valid UTF-8", short(v))
				}
			}
			switch tt.want {
			case faithful:
				if !got.Valid() {
					t.Fatalf("got problems %q, want none", got.Problems)
				}
				for c, want := range tt.set {
					if v := field(got, c); v != want {
						t.Errorf("column %s: got %q, want %q byte for byte", c, short(v), short(want))
					}
				}
			case held:
				prefix := fmt.Sprintf("people.csv:2: column %q: ", tt.column)
				found := false
				for _, p := range got.Problems {
					if strings.HasPrefix(p, prefix) && strings.Contains(p, tt.problem) {
						found = true
					}
					if len(p) > 1000 {
						t.Errorf("problem of %d bytes, want a short one: %q", len(p), short(p))
					}
				}
				if !found {
					t.Errorf("got problems %q, want one starting %q and containing %q", got.Problems, prefix, tt.problem)
				}
				if got.ID != tt.wantID {
					t.Errorf("got id %q, want %q", short(got.ID), tt.wantID)
				}
				if v := tt.set[tt.column]; tt.problem == "invalid UTF-8" && tt.column != "employee_id" {
					if want := strings.ToValidUTF8(v, "\uFFFD"); field(got, tt.column) != want {
						t.Errorf("column %s: got %q, want %q", tt.column, field(got, tt.column), want)
					}
				}
			}
		})
	}
}

// quote writes v as a quoted CSV field.
func quote(v string) string { return `"` + strings.ReplaceAll(v, `"`, `""`) + `"` }

// field returns the identity's value for a column of header.
func field(id dsync.Identity, column string) string {
	switch column {
	case "employee_id":
		return id.ID
	case "login":
		return id.Username
	case "email":
		return id.Email
	case "given_name":
		return id.FirstName
	case "family_name":
		return id.LastName
	case "job_title":
		if v := id.Attributes.Get("title"); len(v) == 1 {
			return v[0]
		}
		return ""
	}
	panic("no field for column " + column)
}

// short cuts a value for a message.
func short(s string) string {
	if len(s) > 60 {
		return s[:60] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}
