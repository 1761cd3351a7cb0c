package ldap

import (
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/ldaptest"
	dsync "github.com/idsync/idsync/sync"
)

func deltaSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	cfg.Incremental = true
	src, err := New("dir", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	src.overlap = 0 // the read's duration only: the test's entries are seconds apart
	return src
}

func uids(ids []dsync.Identity) []string {
	var u []string
	for _, id := range ids {
		u = append(u, id.Username)
	}
	slices.Sort(u)
	return u
}

func readDelta(t *testing.T, src *Source, mark []byte) dsync.Delta {
	t.Helper()
	d, err := src.ReadDelta(t.Context(), mark)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReadDelta: after a full read, a delta reads only the entries changed since
// (and those of the last read's newest second again); a change to a group, which the
// memberof overlay reflects in memberOf without touching the member's
// modifyTimestamp, waits for the next full read; another server, another query or
// full_every passed make a full read.
func TestReadDelta(t *testing.T) {
	people := ldaptest.People(30)
	srv := ldaptest.Start(t, ldaptest.Options{People: people, Overlays: []string{ldaptest.OverlayMemberOf}})
	cfg := serviceConfig(srv, func(c *Config) { c.Groups.MemberOf = "memberOf" })
	src := deltaSource(t, cfg)
	modify := func(uid, attr, value string) {
		srv.Modify(t, "dn: "+ldaptest.PersonDN(srv.Suffix, uid)+"\nchangetype: modify\nreplace: "+attr+"\n"+attr+": "+value+"\n")
	}

	// The population's second passes; a sentinel is the newest entry of the full read.
	time.Sleep(2100 * time.Millisecond)
	modify(people[0].UID, "title", "Sentinel")
	full := readDelta(t, src, nil)
	if !full.Full || len(full.Identities) != 30 {
		t.Fatalf("first read: full %v, %d identities; want a full read of 30", full.Full, len(full.Identities))
	}
	var m mark
	if err := json.Unmarshal(full.Mark, &m); err != nil || m.Since == "" || m.Server == "" || m.FullAt.IsZero() {
		t.Fatalf("mark %s (%v)", full.Mark, err)
	}

	modify(people[5].UID, "sn", "Changed")
	srv.Modify(t, "dn: "+ldaptest.GroupDN(srv.Suffix, "managers")+"\nchangetype: modify\nadd: member\nmember: "+ldaptest.PersonDN(srv.Suffix, people[7].UID)+"\n")
	d := readDelta(t, src, full.Mark)
	if d.Full {
		t.Fatal("the second read was a full one")
	}
	if got, want := uids(d.Identities), []string{people[0].UID, people[5].UID}; !slices.Equal(got, want) {
		t.Errorf("delta read %v, want %v: the sentinel of the last read's newest second, and the changed entry", got, want)
	}

	// Nothing changed: an empty delta, and the mark stays where it was.
	again := readDelta(t, src, d.Mark)
	if again.Full || len(again.Identities) > 3 {
		t.Errorf("a delta with no change: full %v, %v", again.Full, uids(again.Identities))
	}

	for name, prev := range map[string]mark{
		"another server": {Server: "ldap://other.example.org", Query: m.Query, Since: m.Since, FullAt: m.FullAt},
		"another query":  {Server: m.Server, Query: "0123456789abcdef", Since: m.Since, FullAt: m.FullAt},
		"full_every":     {Server: m.Server, Query: m.Query, Since: m.Since, FullAt: m.FullAt.Add(-25 * time.Hour)},
	} {
		b, _ := json.Marshal(prev)
		d := readDelta(t, src, b)
		if !d.Full || len(d.Identities) != 30 {
			t.Errorf("%s: full %v, %d identities; want a full read", name, d.Full, len(d.Identities))
		}
		if m := byUID(d.Identities)[people[7].UID]; !slices.Contains(m.Groups, "managers") {
			t.Errorf("%s: the new group member reads groups %v in a full read", name, m.Groups)
		}
	}
	if d := readDelta(t, src, []byte("not json")); !d.Full {
		t.Error("a mark that cannot be read did not make a full read")
	}

	// Without incremental: true, always a full read, and no mark.
	cfg.Incremental = false
	plain, err := New("dir", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if d := readDelta(t, plain, full.Mark); !d.Full || d.Mark != nil || len(d.Identities) != 30 {
		t.Errorf("incremental off: full %v, mark %s, %d identities", d.Full, d.Mark, len(d.Identities))
	}
}
