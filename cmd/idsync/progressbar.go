package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	gosync "sync"

	dsync "github.com/idsync/idsync/sync"
)

// progressBar draws a --once run's apply phase on a terminal, on one line that it
// rewrites: every sink's operations settled of their total, the rate and the time
// left. It is a dozen lines of \r rather than a library: one line, no colours, no
// terminal queries.
type progressBar struct {
	w     io.Writer
	mu    gosync.Mutex
	sinks map[string]dsync.Progress
	drawn bool
}

// isTerminal reports whether w is a character device: a terminal, not a file or pipe.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, sinks: map[string]dsync.Progress{}}
}

const barWidth = 30

// update takes one sink's progress and draws the whole line again.
func (b *progressBar) update(p dsync.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sinks[p.Sink] = p
	var all dsync.Progress
	for _, s := range b.sinks {
		all.Done += s.Done
		all.Total += s.Total
		all.Elapsed = max(all.Elapsed, s.Elapsed)
	}
	fmt.Fprint(b.w, "\r"+b.line(all)+"\x1b[K")
	b.drawn = true
}

// line is the bar: [=====>      ]  4,012/10,000 ops  1,318/s  ETA 5s  haplo 2,006/5,000, scim ...
func (b *progressBar) line(all dsync.Progress) string {
	filled := 0
	if all.Total > 0 {
		filled = barWidth * all.Done / all.Total
	}
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	s := fmt.Sprintf("[%s] %d/%d ops  %.0f/s", bar, all.Done, all.Total, all.Rate())
	if eta := all.ETA(); eta > 0 {
		s += "  ETA " + eta.String()
	}
	if len(b.sinks) > 1 {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(b.sinks)) {
			p := b.sinks[name]
			parts = append(parts, fmt.Sprintf("%s %d/%d", name, p.Done, p.Total))
		}
		s += "  " + strings.Join(parts, ", ")
	}
	return s
}

// finish ends the line, so that what follows starts on a line of its own.
func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}
