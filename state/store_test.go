package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	dsync "github.com/idsync/idsync/sync"
)

// openStore opens a store at path and closes it when the test ends.
func openStore(t testing.TB, path string, opt Options) *Store {
	t.Helper()
	s, err := Open(path, opt)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func tempPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "idsync.db")
}

// fullEntry sets every field of an entry, times and nested identities included.
func fullEntry(id string) dsync.Entry {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))
	return dsync.Entry{
		ID:         id,
		UserID:     "u-" + id,
		ProfileRef: "p-" + id,
		User: &dsync.Identity{
			ID:          id,
			Username:    "user" + id,
			Email:       id + "@example.ac.uk",
			FirstName:   "Ada",
			LastName:    "Lovelace",
			DisplayName: "Ada Lovelace",
			Active:      true,
			Groups:      []string{"staff", "maths"},
			Attributes:  dsync.AttributesOf(map[string][]string{"department": {"Mathematics"}, "phone": {"01234", "05678"}}),
		},
		Profile: &dsync.Identity{
			ID:         id,
			FirstName:  "Ada",
			LastName:   "Lovelace",
			Attributes: dsync.AttributesOf(map[string][]string{"title": {"Countess"}}),
		},
		Adopted:     true,
		DisabledAt:  at,
		LastError:   "haplo: update user: 500 Internal Server Error",
		LastErrorAt: at.Add(time.Hour),
		Failures:    3,
	}
}

func TestOpenCreatesFileWithMode0600(t *testing.T) {
	path := tempPath(t)
	openStore(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("mode: got %v, want %v", got, want)
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "idsync.db")
	_, err := Open(path, Options{})
	if err == nil {
		t.Fatal("Open: got nil error, want one")
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("errors.Is(%v, os.ErrNotExist): got false, want true", err)
	}
	if dir := filepath.Dir(path); !strings.Contains(err.Error(), dir+" does not exist") {
		t.Errorf("error: got %q, want it to say %s does not exist", err, dir)
	}
}

func TestPathAndDurability(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Path(); got != path {
		t.Errorf("Path: got %s, want %s", got, path)
	}
	want := fullEntry("1001")
	if err := s.Put("haplo", want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, path, Options{})
	got, err := s.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]dsync.Entry{"1001": want}, got); diff != "" {
		t.Errorf("Snapshot after reopen (-want +got):\n%s", diff)
	}
}

func TestLock(t *testing.T) {
	path := tempPath(t)
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}

	for _, readOnly := range []bool{false, true} {
		start := time.Now()
		_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, ReadOnly: readOnly})
		if waited := time.Since(start); waited > time.Second {
			t.Errorf("ReadOnly %v: Open waited %v, want under 1s", readOnly, waited)
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("ReadOnly %v: Open: got %v, want an error wrapping ErrLocked", readOnly, err)
		}
		want := fmt.Sprintf("state %s: locked by another idsync process (waited 100ms)", path)
		if got := err.Error(); got != want {
			t.Errorf("ReadOnly %v: error: got %q, want %q", readOnly, got, want)
		}
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openStore(t, path, Options{LockTimeout: 100 * time.Millisecond})
}

func TestReadOnly(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("haplo", fullEntry("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Readers share the lock.
	r1 := openStore(t, path, Options{ReadOnly: true})
	r2 := openStore(t, path, Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond})
	for _, r := range []*Store{r1, r2} {
		got, err := r.Snapshot("haplo")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Errorf("Snapshot: got %d entries, want 1", len(got))
		}
	}
	if err := r1.Put("haplo", fullEntry("2")); err == nil {
		t.Error("Put on a read-only store: got nil error, want one")
	}
	if err := r1.RecordRun(dsync.RunSummary{}); err == nil {
		t.Error("RecordRun on a read-only store: got nil error, want one")
	}
	// A writer waits for the readers.
	if _, err := Open(path, Options{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("Open read-write beside readers: got %v, want ErrLocked", err)
	}
}

func TestReadOnlyMissingFile(t *testing.T) {
	path := tempPath(t)
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open read-only of a missing file: got %v, want os.ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open read-only created the file: stat got %v, want os.ErrNotExist", err)
	}
}

func TestAfterClose(t *testing.T) {
	s, err := Open(tempPath(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	_, snapErr := s.Snapshot("haplo")
	_, runsErr := s.Runs(0)
	_, sinksErr := s.Sinks()
	for name, err := range map[string]error{
		"Put":       s.Put("haplo", fullEntry("1")),
		"Delete":    s.Delete("haplo", "1"),
		"RecordRun": s.RecordRun(dsync.RunSummary{}),
		"Snapshot":  snapErr,
		"Runs":      runsErr,
		"Sinks":     sinksErr,
	} {
		if !errors.Is(err, errClosed) {
			t.Errorf("%s after Close: got %v, want %v", name, err, errClosed)
		}
	}
}

// TestLockHeldByAnotherProcess holds the lock in a child process, the test binary run
// again with stateHoldLockEnv set.
func TestLockHeldByAnotherProcess(t *testing.T) {
	path := tempPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), stateHoldLockEnv+"="+path)
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "held\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("child: got %q, %v, want \"held\\n\"", line, err)
	}

	_, err = Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Errorf("Open while another process holds the lock: got %v, want ErrLocked", err)
	}

	stdin.Close() // the child closes the store and exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	openStore(t, path, Options{LockTimeout: 100 * time.Millisecond})
}

const stateHoldLockEnv = "IDSYNC_STATE_TEST_HOLD_LOCK"

// TestHelperHoldLock is the child of TestLockHeldByAnotherProcess: it opens the store,
// says "held" and keeps it open until its stdin closes.
func TestHelperHoldLock(t *testing.T) {
	path := os.Getenv(stateHoldLockEnv)
	if path == "" {
		t.Skip("run by TestLockHeldByAnotherProcess")
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("held")
	bufio.NewReader(os.Stdin).ReadString('\n')
}
