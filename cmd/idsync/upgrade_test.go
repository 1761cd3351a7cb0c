package main

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/idsync/idsync/state"
)

// TestUpgradeFromJSONSnapshot: a state file written by an idsync whose snapshot was JSON
// (schema version 1). A dry run plans against a migrated copy and leaves the file as
// it was; the next run migrates it and, the snapshot agreeing with the source, does
// nothing else.
func TestUpgradeFromJSONSnapshot(t *testing.T) {
	e := newEnv(t, 10, "")
	e.mustRun(exitOK, "--once")
	st, err := state.Open(e.state, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot("haplo")
	st.Close()
	if err != nil || len(snap) != 10 {
		t.Fatalf("snapshot of %d entries (%v)", len(snap), err)
	}
	os.Remove(e.state)
	db, err := bolt.Open(e.state, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket([]byte("meta"))
		meta.Put([]byte("schema_version"), []byte("1"))
		tx.CreateBucket([]byte("runs"))
		sinks, _ := tx.CreateBucket([]byte("sinks"))
		b, err := sinks.CreateBucket([]byte("haplo"))
		if err != nil {
			return err
		}
		for id, en := range snap {
			v, _ := json.Marshal(en)
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	before := mustRead(t, e.state)

	out := e.mustRun(exitOK, "--dry-run")
	if !bytes.Equal(mustRead(t, e.state), before) {
		t.Error("the dry run changed the state file")
	}
	if !bytes.Contains([]byte(out), []byte("sink haplo: 0 operations")) {
		t.Errorf("the dry run against the migrated copy planned:\n%s\nwant nothing: the snapshot agrees with the source", out)
	}
	e.mustRun(exitOK, "--once")
	if got := applied(e.lastRun()); len(got) != 0 {
		t.Errorf("the run after the upgrade applied %v, want nothing", got)
	}
	if _, err := state.Open(e.state, state.Options{ReadOnly: true}); err != nil {
		t.Errorf("after the run the file opens read-only: %v", err)
	}
}
