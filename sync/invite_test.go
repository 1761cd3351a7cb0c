package sync

import (
	"context"
	"errors"
	"log/slog"
	gosync "sync"
	"testing"
	"time"
)

// fakeInviter records invitations, failing while down is set.
type fakeInviter struct {
	mu   gosync.Mutex
	sent map[string]string // id -> link
	down bool
}

func (f *fakeInviter) Invite(_ context.Context, p Identity, inv Invite) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("smtp 127.0.0.1:25: connect: connection refused")
	}
	if p.Email == "" || p.ID == "" {
		return errors.New("no one to send to")
	}
	if f.sent == nil {
		f.sent = map[string]string{}
	}
	f.sent[p.ID] = inv.Link
	return nil
}

// TestInvitations: new accounts' links are kept in the snapshot until delivered, then
// erased; a failed delivery is tried again next run, with no account made again; a link
// that expired first is dropped and reported; a dry run delivers nothing.
func TestInvitations(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	clock := now
	store, sink := newMemStore(), &fakeSink{linkExpires: now.Add(12 * 24 * time.Hour)}
	inviter := &fakeInviter{down: true}
	src := people(5)
	e := New([]SourceSpec{{Name: "hr", Source: src}},
		[]SinkSpec{{Name: "app", Sink: sink, Concurrency: 2, Safety: DefaultSafety, Inviter: inviter}},
		store, Options{Safety: DefaultSafety, Now: func() time.Time { return clock }}, slog.New(slog.DiscardHandler))

	// The mail server is down: accounts are made, links kept, the run partial.
	rep, err := e.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Result != ResultPartial || rep.Summary.Sinks[0].Invitations["failed"] != 5 {
		t.Fatalf("result %s, invitations %v; want partial, 5 failed", rep.Summary.Result, rep.Summary.Sinks[0].Invitations)
	}
	snap, _ := store.Snapshot("app")
	for id, en := range snap {
		if en.Invite == nil || en.Invite.Link != "https://app.example.org/welcome/"+id+"-secret" || en.Invite.Attempts != 1 || en.Invite.LastError == "" {
			t.Errorf("%s: invite %+v, want the link kept, one failed attempt", id, en.Invite)
		}
	}
	creates := sink.count(CreateUser)

	// A dry run plans the retries and sends nothing.
	rep, err = e.Run(t.Context(), RunOptions{DryRun: true})
	if err != nil || len(rep.Plans[0].Invites) != 5 || len(inviter.sent) != 0 {
		t.Fatalf("dry run: %v, invites planned %v, sent %d", err, rep.Plans[0].Invites, len(inviter.sent))
	}

	// Back up: every link delivered, to its own person, and erased; no account made again.
	inviter.down = false
	rep, err = e.Run(t.Context(), RunOptions{})
	if err != nil || rep.Summary.Result != ResultSuccess || rep.Summary.Sinks[0].Invitations["sent"] != 5 {
		t.Fatalf("retry: %v, %s, %v", err, rep.Summary.Result, rep.Summary.Sinks[0].Invitations)
	}
	if sink.count(CreateUser) != creates {
		t.Errorf("%d creates after the retry, want %d", sink.count(CreateUser), creates)
	}
	snap, _ = store.Snapshot("app")
	for id, en := range snap {
		if en.Invite != nil || inviter.sent[id] != "https://app.example.org/welcome/"+id+"-secret" {
			t.Errorf("%s: invite %+v, sent %q", id, en.Invite, inviter.sent[id])
		}
	}
	rep, _ = e.Run(t.Context(), RunOptions{})
	if rep.Summary.Sinks != nil && rep.Summary.Sinks[0].Invitations != nil {
		t.Errorf("a run with nothing pending delivered %v", rep.Summary.Sinks[0].Invitations)
	}

	// A new person while the server is down, and the link expires before it is back.
	inviter.down = true
	e.sources[0].Source = people(6)
	if rep, _ := e.Run(t.Context(), RunOptions{}); rep.Summary.Sinks[0].Invitations["failed"] != 1 {
		t.Fatalf("invitations %v", rep.Summary.Sinks[0].Invitations)
	}
	inviter.down = false
	clock = now.Add(13 * 24 * time.Hour)
	rep, _ = e.Run(t.Context(), RunOptions{})
	if rep.Summary.Result != ResultPartial || rep.Summary.Sinks[0].Invitations["expired"] != 1 {
		t.Fatalf("after expiry: %s, %v", rep.Summary.Result, rep.Summary.Sinks[0].Invitations)
	}
	en, _, _ := store.Entry("app", "E005")
	if en.Invite != nil || !en.InviteLapsed.Equal(clock) || inviter.sent["E005"] != "" {
		t.Errorf("expired: %+v, sent %q", en, inviter.sent["E005"])
	}
	if sink.count(CreateUser) != creates+1 {
		t.Errorf("an expired link made another account: %d creates", sink.count(CreateUser))
	}
}
