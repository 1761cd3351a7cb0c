// Package csv implements a sync.Source over CSV files (RFC 4180).
//
// The file is read whole on every Read, or not at all. Anything that makes the rest of
// the file untrustworthy fails the read: the file cannot be opened, a header the config
// names is missing or ambiguous, a quote is not terminated. A problem confined to one
// row does not: the row comes back as an identity with Problems, which every sink
// leaves as it is, and a row whose id cannot be read comes back with an empty ID, so
// that the engine knows the read is not a complete list of who is there.
//
// The file is UTF-8, with or without a byte order mark, with CRLF or LF line ends.
// Its first row is the header; headers match the config's names case-insensitively,
// after trimming spaces. Error and problem texts start with the file's base name and
// line ("people.csv:12: ..."), counting the header as line 1 and a quoted field that
// spans lines as all of them.
//
// Whatever writes the file should replace it whole (write a new file, then rename it
// over the old one): a file read while it is being written looks like one with fewer
// people in it.
package csv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	dsync "github.com/idsync/idsync/sync"
)

// Source reads identities from one CSV file.
type Source struct {
	name   string
	cfg    Config // defaults applied, headers trimmed
	comma  rune
	active map[string]bool // activeKey(value) -> active
	log    *slog.Logger
}

var _ dsync.Source = (*Source)(nil)

// New returns a source named name that reads the file cfg describes. It applies
// defaults and validates cfg, but does not open the file.
func New(name string, cfg Config, log *slog.Logger) (*Source, error) {
	if errs := cfg.Validate(""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	d := cfg.withDefaults()
	comma, _ := delimiter(d.Delimiter) // checked by Validate
	active := make(map[string]bool, len(d.Active.True)+len(d.Active.False))
	for _, v := range d.Active.True {
		active[activeKey(v)] = true
	}
	for _, v := range d.Active.False {
		active[activeKey(v)] = false
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{
		name:   name,
		cfg:    d,
		comma:  comma,
		active: active,
		log:    log.With("source", name),
	}, nil
}

// ctxEvery is how many rows Read reads between looks at its context.
const ctxEvery = 1000

var bom = []byte("\uFEFF")

// Read reads the whole file. It returns every row as an identity, in file order, or
// an error and no identities.
func (s *Source) Read(ctx context.Context) ([]dsync.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(s.cfg.Path), err)
	}
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		return nil, err // *fs.PathError: "open /data/people.csv: no such file or directory"
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	ids, err := s.decode(ctx, f, size)
	if err != nil {
		return nil, err
	}
	problems := 0
	for i := range ids {
		if !ids[i].Valid() {
			problems++
		}
	}
	s.log.Debug("read csv", "path", s.cfg.Path, "rows", len(ids), "rows_with_problems", problems)
	return ids, nil
}

// decode reads identities from r, the contents of the file; size is the file's size
// if known, else 0.
func (s *Source) decode(ctx context.Context, r io.Reader, size int64) ([]dsync.Identity, error) {
	file := filepath.Base(s.cfg.Path)
	br := bufio.NewReaderSize(r, 64<<10)
	// A byte order mark would be part of the first header cell, and make a quoted
	// first header a parse error; drop it before the CSV reader sees it.
	if b, err := br.Peek(len(bom)); err == nil && bytes.Equal(b, bom) {
		br.Discard(len(bom))
	}
	cr := csv.NewReader(br)
	cr.Comma = s.comma
	cr.FieldsPerRecord = -1 // rows of the wrong length are a problem of that row alone
	cr.LazyQuotes = false
	cr.ReuseRecord = true

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: no header row", file)
	}
	if err != nil {
		return nil, readError(file, err)
	}
	headerLine, _ := cr.FieldPos(0)
	lay, err := s.layout(file, header, headerLine)
	if err != nil {
		return nil, err
	}

	var (
		ids  []dsync.Identity
		rows []row
	)
	start := cr.InputOffset()
	for n := 0; ; n++ {
		if n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%s: read stopped after %d rows: %w", file, n, err)
			}
			if n == ctxEvery {
				// Make room for the rest at once, not by growing step by step: a
				// 100,000-row file would otherwise allocate five times what it holds.
				est := estimate(n, cr.InputOffset()-start, size-cr.InputOffset())
				ids = slices.Grow(ids, est-len(ids))
				rows = slices.Grow(rows, est-len(rows))
			}
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, readError(file, err)
		}
		if blank(rec) {
			// A row of nothing but delimiters and spaces (spreadsheets export
			// them) is nobody: it carries no data to hold.
			continue
		}
		line, _ := cr.FieldPos(0)
		id, maybeActive := s.identity(file, line, rec, lay)
		ids = append(ids, id)
		rows = append(rows, row{line, maybeActive})
	}
	markDuplicates(ids, rows)
	for i := range ids {
		dsync.Normalize(&ids[i])
	}
	return ids, nil
}

// maxEstimate caps estimate, which short first rows could make far too large.
const maxEstimate = 1 << 18

// estimate returns how many rows a file holds in all, judging by the n rows in the
// first read bytes, when left bytes remain to be read.
func estimate(n int, read, left int64) int {
	if read <= 0 || left <= 0 {
		return n
	}
	est := n + int(min(left*int64(n)/read, maxEstimate))
	return min(est+est/20, maxEstimate)
}

// layout is where in each row the configured fields are: indexes into the row, -1 for
// a field the config does not set.
type layout struct {
	header []string     // as in the file, trimmed: for problem texts
	attrs  []attrColumn // by attribute name

	id, username, email, firstName, lastName, displayName, active, groups int
}

type attrColumn struct {
	name string
	col  int
}

// layout finds the configured headers in the header row. Every header the config
// names must be there exactly once; all that are not are reported together.
func (s *Source) layout(file string, header []string, line int) (*layout, error) {
	lay := &layout{header: make([]string, len(header))}
	byKey := make(map[string][]int, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\uFEFF")
		}
		h = strings.TrimSpace(h)
		lay.header[i] = h
		byKey[headerKey(h)] = append(byKey[headerKey(h)], i)
	}

	var errs []error
	find := func(u use) int {
		cols := byKey[headerKey(u.header)]
		switch len(cols) {
		case 0:
			errs = append(errs, fmt.Errorf("%s:%d: no column %q (set as %s)", file, line, u.header, u.key))
			return -1
		case 1:
			return cols[0]
		}
		nums := make([]string, len(cols))
		for i, c := range cols {
			nums[i] = fmt.Sprint(c + 1)
		}
		errs = append(errs, fmt.Errorf("%s:%d: header %q appears in columns %s (set as %s, which needs exactly one)",
			file, line, u.header, strings.Join(nums, ", "), u.key))
		return -1
	}
	col := func(key, header string) int {
		if header == "" {
			return -1
		}
		return find(use{key, header})
	}
	c := s.cfg.Columns
	lay.id = col("columns.id", c.ID)
	lay.username = col("columns.username", c.Username)
	lay.email = col("columns.email", c.Email)
	lay.firstName = col("columns.first_name", c.FirstName)
	lay.lastName = col("columns.last_name", c.LastName)
	lay.displayName = col("columns.display_name", c.DisplayName)
	lay.active = col("columns.active", c.Active)
	lay.groups = col("columns.groups", c.Groups)
	for _, name := range sortedKeys(s.cfg.Attributes) {
		lay.attrs = append(lay.attrs, attrColumn{name, col("attributes."+name, s.cfg.Attributes[name])})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return lay, nil
}

// parseError is a failure to parse the file, which makes the rest of it
// untrustworthy. It unwraps to the *csv.ParseError, and so to csv.ErrQuote and the like.
type parseError struct {
	file string // base name
	err  *csv.ParseError
}

func (e *parseError) Error() string {
	pe := e.err
	msg := fmt.Sprintf("%s:%d: column %d: %v", e.file, pe.Line, pe.Column, pe.Err)
	if pe.StartLine != 0 && pe.StartLine != pe.Line {
		msg += fmt.Sprintf(" (in the row that starts at line %d)", pe.StartLine)
	}
	return msg
}

func (e *parseError) Unwrap() error { return e.err }

func readError(file string, err error) error {
	if pe, ok := errors.AsType[*csv.ParseError](err); ok {
		return &parseError{file: file, err: pe}
	}
	return fmt.Errorf("%s: %w", file, err)
}

// blank reports whether every field of a row is empty or spaces.
func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
