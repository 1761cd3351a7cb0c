package domo

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	gosync "sync"

	"github.com/idsync/idsync/internal/httpapi"
)

// The API cannot find a user by email: a create looks the email up in an index of
// every user, read once per run (the sink is built once per run) on the first create,
// and kept up to date with what the sink itself creates, changes and deletes.
//
// Emails are compared case-insensitively. Domo does not say how it compares them;
// people's mail systems treat Ann.Lee@ and ann.lee@ as one mailbox, so a user who
// differs from the person's email only in case is that person's account, and adopting
// it is right whether Domo would refuse the second spelling or take it as a new user.

// listPage is the page size of the user list: the API's largest.
const listPage = 500

// emailIndex maps lowercased emails to user ids. An email that several users have
// maps to "": adopting either would be a guess.
type emailIndex struct {
	mu      gosync.Mutex
	byEmail map[string]string
}

func emailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// lookup returns the id of the user with email; "" and true when several have it.
func (x *emailIndex) lookup(email string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	id, ok := x.byEmail[emailKey(email)]
	return id, ok
}

// set records that the user id has email.
func (x *emailIndex) set(email, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.byEmail[emailKey(email)] = id
}

// forget removes email, if it is the user id's.
func (x *emailIndex) forget(email, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if k := emailKey(email); x.byEmail[k] == id {
		delete(x.byEmail, k)
	}
}

// index returns the run's index of users by email, reading it on the first call; gen
// is its version, for reindex.
func (s *Sink) index(ctx context.Context) (*emailIndex, int, error) {
	return s.users.get(ctx, nil, s.loadIndex)
}

// reindex reads the user list again, unless another worker has done so since the
// version gen was read.
func (s *Sink) reindex(ctx context.Context, gen int) (*emailIndex, error) {
	s.users.drop(gen)
	x, _, err := s.index(ctx)
	return x, err
}

// remember keeps a change the sink made in the index, if it has been read: the user
// id has email now, and no longer old ("" for none).
func (s *Sink) remember(old, email, id string) {
	x, ok := s.users.current()
	if !ok {
		return
	}
	if old != "" {
		x.forget(old, id)
	}
	if email != "" {
		x.set(email, id)
	}
}

// loadIndex pages through GET /v1/users (a bare array, no total) until an empty page.
func (s *Sink) loadIndex(ctx context.Context) (*emailIndex, error) {
	x := &emailIndex{byEmail: make(map[string]string)}
	seen := make(map[int64]bool)
	for offset := 0; ; {
		var page []struct {
			ID      int64  `json:"id"`
			Email   string `json:"email"`
			Deleted bool   `json:"deleted"`
		}
		path := "/v1/users?limit=" + strconv.Itoa(listPage) + "&offset=" + strconv.Itoa(offset)
		if err := s.call(ctx, httpapi.Call{Endpoint: "user.list", Method: http.MethodGet, Path: path}, &page); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		if len(page) == 0 {
			s.log.Debug("read the user list", "users", len(seen))
			return x, nil
		}
		for _, u := range page {
			if seen[u.ID] {
				// A server that ignores offset would page forever.
				return nil, fmt.Errorf("list users: user %d came back at offset %d: the API does not page as documented", u.ID, offset)
			}
			seen[u.ID] = true
			if u.Deleted || u.Email == "" {
				continue
			}
			k := emailKey(u.Email)
			if prev, dup := x.byEmail[k]; dup && prev != strconv.FormatInt(u.ID, 10) {
				x.byEmail[k] = ""
				continue
			}
			x.byEmail[k] = strconv.FormatInt(u.ID, 10)
		}
		offset += len(page)
	}
}
