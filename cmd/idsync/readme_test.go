package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeSinkExamples: every sink example in the README is a configuration idsync
// accepts, given a source to read from.
func TestReadmeSinkExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	n := 0
	for _, b := range blocks {
		if !strings.HasPrefix(b[1], "sinks:\n") {
			continue
		}
		n++
		text := "sources:\n  - name: hr\n    csv: {path: people.csv, columns: {id: id, email: email}}\n" + b[1]
		if _, err := LoadConfig(writeConfig(t, text)); err != nil {
			t.Errorf("README example:\n%s\nis refused: %v", b[1], err)
		}
	}
	if n < 4 {
		t.Errorf("found %d sink examples in the README, want one per sink type at least", n)
	}
}
