package ldap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	dsync "github.com/idsync/idsync/sync"
)

// Incremental reads.
//
// With incremental: true, a read after a full one asks only for the entries whose
// modifyTimestamp is at or past a mark: the newest modifyTimestamp of the last read,
// less an overlap. The overlap is the last read's duration plus a minute: an entry
// changed during a read, after its page went by, has a timestamp no older than the
// read's start, and so no older than the newest timestamp read less the read's
// duration; the minute covers the server clock's one-second resolution and its
// quirks. Reading an entry twice costs nothing: the plan of an unchanged person is
// empty.
//
// A full read comes instead when there is no mark, when the mark is of another server
// (replicas' timestamps need not agree, and a replica may lag), when the query changed
// (searches, attributes, groups, active: another query finds other people), and every
// full_every: only a full read shows who was deleted or moved out of the search bases,
// or whose accountExpires passed without a change to the entry.
//
// With incremental_by: uSNChanged (Active Directory), the mark is the DC's
// highestCommittedUSN read from its rootDSE before the searches, plus one: every
// change committed after that point has a uSNChanged at or past it, so no overlap is
// needed. Update sequence numbers are one DC's own (each DC counts the changes it
// commits, replicated ones included), so the mark's Server is the DC's identity,
// its dsServiceName and invocationId, not the URL: another DC behind the same name,
// or one restored from a backup (which gets a new invocationId), gives a full read.

// stampAttribute is the operational attribute the mark is made of by default.
const stampAttribute = "modifyTimestamp"

// usnAttribute is the one incremental_by: uSNChanged reads by.
const usnAttribute = "uSNChanged"

// mark is what an incremental source keeps of its last read, in the run history.
type mark struct {
	Server string    `json:"server"`
	Query  string    `json:"query"`
	Since  string    `json:"since,omitempty"` // generalized time, or a USN, for the filter
	FullAt time.Time `json:"full_at"`
}

// ReadDelta reads what changed since the read that gave prev, or everyone when a full
// read is due. Without incremental: true it is Read.
func (s *Source) ReadDelta(ctx context.Context, prev []byte) (dsync.Delta, error) {
	if !s.cfg.Incremental {
		ids, err := s.Read(ctx)
		return dsync.Delta{Identities: ids, Full: true}, err
	}
	var last mark
	if prev != nil && json.Unmarshal(prev, &last) != nil {
		last = mark{}
	}
	query := s.query()
	start := s.now()
	byUSN := s.cfg.IncrementalBy == usnAttribute
	stamp, attr := stampAttribute, stampAttribute
	if byUSN {
		stamp, attr = "", usnAttribute // the mark comes from the rootDSE, not the entries
	}
	var why string // why this is a full read; empty for a delta
	r, err := s.read(ctx, stamp, func(server string) string {
		switch {
		case last.Since == "":
			why = "no mark of a previous read"
		case last.Server != server:
			why = "another server than the last read's (" + last.Server + ")"
		case last.Query != query:
			why = "the searches or the mapping changed"
		case !start.Before(last.FullAt.Add(s.cfg.FullEvery)):
			why = "full_every has passed since the last full read"
		default:
			return "(" + attr + ">=" + last.Since + ")"
		}
		return ""
	})
	if err != nil {
		return dsync.Delta{}, err
	}
	next := mark{Server: r.server, Query: query, Since: last.Since, FullAt: last.FullAt}
	full := why != ""
	if full {
		next.FullAt = start
		s.log.Info("full read", "source", s.name, "why", why)
	}
	if byUSN {
		next.Since = strconv.FormatInt(r.usn+1, 10)
	} else if !r.newest.IsZero() {
		overlap := s.now().Sub(start) + s.overlap
		next.Since = r.newest.Add(-overlap).UTC().Format("20060102150405Z")
	} else if full {
		// An empty directory, or a server that hides modifyTimestamp: no mark, so the
		// next read is a full one too.
		next.Since = ""
	}
	b, err := json.Marshal(next)
	if err != nil {
		return dsync.Delta{}, err
	}
	return dsync.Delta{Identities: r.ids, Full: full, Mark: b}, nil
}

// query is a digest of what decides who is read and how: a mark of another query is
// no base for a delta.
func (s *Source) query() string {
	c := s.cfg
	by := c.IncrementalBy
	if by == stampAttribute {
		by = "" // the default: marks made before incremental_by existed stay good
	}
	b, _ := json.Marshal(struct {
		Searches          []Search
		Attributes        Attributes
		ProfileAttributes map[string]string
		Groups            Groups
		Active            Active
		IncrementalBy     string `json:",omitempty"`
	}{c.Searches, c.Attributes, c.ProfileAttributes, c.Groups, c.Active, by})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// parseTime parses an LDAP generalized time: 20261123170000Z, or Active Directory's
// 20261123170000.0Z (Go accepts the fraction after the seconds when parsing).
func parseTime(v string) (time.Time, error) {
	return time.Parse("20060102150405Z0700", v)
}

// dcIdentity reads which DC the connection reached and its highestCommittedUSN, from
// the rootDSE and the DC's NTDS Settings object: the identity is
// "<dsServiceName> invocationId=<GUID>".
func (s *Source) dcIdentity(conn *conn) (string, int64, error) {
	var service, usn string
	err := s.search(conn, "", "(objectClass=*)", "base", []string{"dsServiceName", "highestCommittedUSN"}, func(e *ldap.Entry) {
		service, usn = strings.Clone(first(e, "dsServiceName")), first(e, "highestCommittedUSN")
	})
	if err != nil {
		return "", 0, fmt.Errorf("read the rootDSE: %w", err)
	}
	n, err := strconv.ParseInt(usn, 10, 64)
	if service == "" || err != nil {
		return "", 0, errors.New("the rootDSE has no dsServiceName or highestCommittedUSN: incremental_by: uSNChanged needs Active Directory")
	}
	var invocation string
	err = s.search(conn, service, "(objectClass=*)", "base", []string{"invocationId"}, func(e *ldap.Entry) {
		if v := values(e, "invocationId"); v != nil && len(v.ByteValues) == 1 && len(v.ByteValues[0]) == 16 {
			invocation = guidString(v.ByteValues[0])
		}
	})
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", service, err)
	}
	if invocation == "" {
		return "", 0, fmt.Errorf("%s has no invocationId", service)
	}
	return service + " invocationId=" + invocation, n, nil
}
