package csv

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadProblems checks the problems confined to one row: the read succeeds and the
// row comes back with Problems, which name the file, line and column.
func TestReadProblems(t *testing.T) {
	ok := "E9,ok,ok@example.org,Ok,Row,active,,,"
	type result struct {
		id       string
		problems []string
	}
	tests := []struct {
		name     string
		contents string
		mod      func(*Config)
		want     []result // every row, in order
	}{
		{
			name:     "short row",
			contents: lines(header, "E1,alice,alice@example.org,Alice", ok),
			want: []result{
				{"E1", []string{
					"people.csv:2: has 4 fields, the header has 9",
					`people.csv:2: column "status": unknown active value "" (true: active; false: left)`,
				}},
				{"E9", nil},
			},
		},
		{
			name:     "long row",
			contents: lines(header, ok+",extra"),
			want:     []result{{"E9", []string{"people.csv:2: has 10 fields, the header has 9"}}},
		},
		{
			name:     "row too short for the id",
			contents: lines("email,login,employee_id", "a@example.org,a", ""),
			mod: func(c *Config) {
				c.Columns = Columns{ID: "employee_id", Email: "email", Username: "login"}
				c.Attributes = nil
			},
			want: []result{{"", []string{
				"people.csv:2: has 2 fields, the header has 3",
				`people.csv:2: column "employee_id": empty id`,
			}}},
		},
		{
			name:     "empty id",
			contents: lines(header, " ,alice,alice@example.org,Alice,Liddell,active,,,", ok),
			want: []result{
				{"", []string{`people.csv:2: column "employee_id": empty id`}},
				{"E9", nil},
			},
		},
		{
			// Spreadsheets export rows of bare delimiters: they are nobody.
			name:     "a line of delimiters",
			contents: lines(header, ",,,,,,,,", " , ,,,,,,,", ok),
			want:     []result{{"E9", nil}},
		},
		{
			name:     "invalid UTF-8 in the id",
			contents: lines(header, "E\xff1,alice,alice@example.org,Alice,Liddell,active,,,", ok),
			want: []result{
				{"", []string{`people.csv:2: column "employee_id": invalid UTF-8`}},
				{"E9", nil},
			},
		},
		{
			name:     "invalid UTF-8 in a name and an attribute",
			contents: lines(header, "E1,alice,alice@example.org,Zo\xeb,Liddell,active,,Eng\xe9neer,", ok),
			want: []result{
				{"E1", []string{
					`people.csv:2: column "given_name": invalid UTF-8`,
					`people.csv:2: column "job_title": invalid UTF-8`,
				}},
				{"E9", nil},
			},
		},
		{
			name:     "empty email",
			contents: lines(header, "E1,alice,,Alice,Liddell,active,,,", ok),
			want: []result{
				{"E1", []string{`people.csv:2: column "email": empty email`}},
				{"E9", nil},
			},
		},
		{
			name: "invalid emails",
			contents: lines(header,
				"E1,a,bob@,,,active,,,",
				"E2,b,bob,,,active,,,",
				"E3,c,Bob <bob@example.org>,,,active,,,",
				"E4,d,bob@example.org@example.org,,,active,,,",
				`E5,e,"bob@exa mple.org",,,active,,,`,
				"E6,f,@example.org,,,active,,,",
				"E7,g,bob@example.org.,,,active,,,",
				ok),
			want: []result{
				{"E1", []string{`people.csv:2: column "email": invalid email "bob@"`}},
				{"E2", []string{`people.csv:3: column "email": invalid email "bob"`}},
				{"E3", []string{`people.csv:4: column "email": invalid email "Bob <bob@example.org>"`}},
				{"E4", []string{`people.csv:5: column "email": invalid email "bob@example.org@example.org"`}},
				{"E5", []string{`people.csv:6: column "email": invalid email "bob@exa mple.org"`}},
				{"E6", []string{`people.csv:7: column "email": invalid email "@example.org"`}},
				{"E7", []string{`people.csv:8: column "email": invalid email "bob@example.org."`}},
				{"E9", nil},
			},
		},
		{
			name:     "unknown active value",
			contents: lines(header, "E1,alice,alice@example.org,Alice,Liddell,maybe,,,", ok),
			want: []result{
				{"E1", []string{`people.csv:2: column "status": unknown active value "maybe" (true: active; false: left)`}},
				{"E9", nil},
			},
		},
		{
			name: "unknown active value with the defaults",
			contents: lines(header, "E1,alice,alice@example.org,Alice,Liddell,left,,,",
				"E9,ok,ok@example.org,Ok,Row,yes,,,"),
			mod: func(c *Config) { c.Active = ActiveConfig{} },
			want: []result{
				{"E1", []string{`people.csv:2: column "status": unknown active value "left" (true: true, yes, 1, active; false: false, no, 0, inactive, disabled)`}},
				{"E9", nil},
			},
		},
		{
			name: "duplicate id",
			contents: lines(header,
				"E1,alice,alice@example.org,Alice,Liddell,active,,,",
				ok,
				"E1,bob,bob@example.org,Bob,Smith,left,,,"),
			want: []result{
				{"E1", []string{`people.csv:2: duplicate id "E1", also at line 4`}},
				{"E9", nil},
				{"E1", []string{`people.csv:4: duplicate id "E1", also at line 2`}},
			},
		},
		{
			name: "id three times, after a multi-line field",
			contents: lines(header,
				`E1,alice,alice@example.org,Alice,Liddell,active,,"Engineer`,
				`on call",`,
				"E1,bob,bob@example.org,Bob,Smith,left,,,",
				"E1,carol,carol@example.org,Carol,Jones,left,,,"),
			want: []result{
				{"E1", []string{`people.csv:2: duplicate id "E1", also at lines 4, 5`}},
				{"E1", []string{`people.csv:4: duplicate id "E1", also at lines 2, 5`}},
				{"E1", []string{`people.csv:5: duplicate id "E1", also at lines 2, 4`}},
			},
		},
		{
			name: "duplicate email",
			contents: lines(header,
				"E1,alice,alice@example.org,Alice,Liddell,active,,,",
				ok,
				"E2,alice2,Alice@Example.ORG,Alice,Liddell,active,,,"),
			want: []result{
				{"E1", []string{`people.csv:2: duplicate email "alice@example.org", also at line 4`}},
				{"E9", nil},
				{"E2", []string{`people.csv:4: duplicate email "Alice@Example.ORG", also at line 2`}},
			},
		},
		{
			name: "duplicate username",
			contents: lines(header,
				"E1,Alice,alice@example.org,Alice,Liddell,active,,,",
				"E2,alice,alice2@example.org,Alice,Liddell,active,,,",
				"E3,ALICE,alice3@example.org,Alice,Liddell,left,,,"),
			want: []result{
				{"E1", []string{`people.csv:2: duplicate username "Alice", also at line 3`}},
				{"E2", []string{`people.csv:3: duplicate username "alice", also at line 2`}},
				{"E3", nil}, // inactive
			},
		},
		{
			name: "duplicate username with an unknown active value",
			contents: lines(header,
				"E1,alice,alice@example.org,Alice,Liddell,active,,,",
				"E2,alice,alice2@example.org,Alice,Liddell,?,,,"),
			want: []result{
				{"E1", []string{`people.csv:2: duplicate username "alice", also at line 3`}},
				{"E2", []string{
					`people.csv:3: column "status": unknown active value "?" (true: active; false: left)`,
					`people.csv:3: duplicate username "alice", also at line 2`,
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := read(t, tt.contents, tt.mod)
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			var got []result
			for _, id := range ids {
				got = append(got, result{id.ID, id.Problems})
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(result{})); diff != "" {
				t.Errorf("Read() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDuplicateListIsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(header + "\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "E0,u%d,u%d@example.org,,,active,,,\n", i, i)
	}
	ids, err := read(t, b.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ids[0].Problems
	want := []string{`people.csv:2: duplicate id "E0", also at lines 3, 4, 5, 6, 7 and 994 more`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Problems (-want +got):\n%s", diff)
	}
}
