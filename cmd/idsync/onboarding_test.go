package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idsync/idsync/internal/maildevtest"
	"github.com/idsync/idsync/sinks/descope/descopetest"
	"github.com/idsync/idsync/sinks/domo/domotest"
	"github.com/idsync/idsync/sinks/icure/icuretest"
	"github.com/idsync/idsync/state"
)

// onboardingEnv is newEnv with onboarding: email on the Haplo sink, through smtp.
func onboardingEnv(t *testing.T, n int, smtp *maildevtest.Server) *env {
	t.Helper()
	e := newEnv(t, n, "smtp: {host: 127.0.0.1, port: "+strconv.Itoa(smtp.Port)+", tls: none, from: \"Example HR <hr@example.org>\"}\n")
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "  - name: haplo\n", "  - name: haplo\n    onboarding: {channel: email, application: Example Haplo}\n", 1)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// checkWelcomes checks that every account Haplo made has had exactly one email, to
// its own address, with its own welcome link in both parts, and that no link is left
// in the snapshot.
func checkWelcomes(t *testing.T, e *env, smtp *maildevtest.Server, n int) {
	t.Helper()
	links := e.srv.WelcomeLinks()
	emails := smtp.Emails(t)
	if len(links) != n || len(emails) != n {
		t.Fatalf("%d welcome links given, %d emails received; want %d of each", len(links), len(emails), n)
	}
	byAddress := map[string]maildevtest.Email{}
	for _, m := range emails {
		if len(m.To) != 1 {
			t.Fatalf("an email to %v", m.To)
		}
		if _, dup := byAddress[m.To[0].Address]; dup {
			t.Errorf("two emails to %s", m.To[0].Address)
		}
		byAddress[m.To[0].Address] = m
	}
	for _, u := range e.srv.Users() {
		m, ok := byAddress[u.Email]
		link := links[u.ID]
		switch {
		case !ok:
			t.Errorf("no email to %s", u.Email)
		case link == "" || !strings.Contains(m.Text, link) || !strings.Contains(m.HTML, `href="`+link+`"`):
			t.Errorf("the email to %s lacks its account's link %q in both parts:\n%s\n%s", u.Email, link, m.Text, m.HTML)
		case m.Subject != "Your account in Example Haplo":
			t.Errorf("subject %q", m.Subject)
		case len(m.From) != 1 || m.From[0].Address != "hr@example.org":
			t.Errorf("from %v", m.From)
		case !strings.Contains(m.Text, "Hello "+u.NameFirst):
			t.Errorf("the email to %s does not greet %s:\n%s", u.Email, u.NameFirst, m.Text)
		}
	}
	st, err := state.Open(e.state, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	snap, err := st.Snapshot("haplo")
	if err != nil {
		t.Fatal(err)
	}
	for id, en := range snap {
		if en.Invite != nil {
			t.Errorf("%s: a delivered link is still in the snapshot", id)
		}
	}
}

// noLinks fails if any welcome link appears in out (logs, the summary).
func noLinks(t *testing.T, e *env, out string) {
	t.Helper()
	for _, link := range e.srv.WelcomeLinks() {
		token := link[strings.LastIndexByte(link, '/')+1:]
		if strings.Contains(out, token) {
			t.Fatalf("a welcome link's token %q is in the output:\n%s", token, out)
		}
	}
}

// TestOnboardingEmail: 20 new people each get an email, through MailDev, with their
// own Haplo welcome link in both parts.
func TestOnboardingEmail(t *testing.T) {
	smtp := maildevtest.Start(t, maildevtest.Options{})
	e := onboardingEnv(t, 20, smtp)
	code, out, errOut := e.idsync(t.Context(), "--once", "--log-level", "debug")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	checkWelcomes(t, e, smtp, 20)
	noLinks(t, e, out+errOut)
	if run := e.lastRun(); run.Sinks[0].Invitations["sent"] != 20 {
		t.Errorf("invitations %v", run.Sinks[0].Invitations)
	}
	// Nothing new: nothing sent again.
	e.mustRun(exitOK, "--once")
	if n := len(smtp.Emails(t)); n != 20 {
		t.Errorf("%d emails after a no-op, want 20", n)
	}
}

// TestOnboardingSMTPOutage: the mail server is down during the first run. Every
// account is made once, the links wait in the snapshot, the run says so (exit 1), and
// no link reaches the logs; the next run, with the server back, sends them all and
// makes no account again.
func TestOnboardingSMTPOutage(t *testing.T) {
	smtp := maildevtest.Start(t, maildevtest.Options{})
	e := onboardingEnv(t, 20, smtp)
	smtp.Stop()
	code, out, errOut := e.idsync(t.Context(), "--once", "--log-level", "debug")
	if code != exitFailed {
		t.Fatalf("exit %d, want %d (invitations pending)\n%s%s", code, exitFailed, out, errOut)
	}
	if n := len(e.srv.Users()); n != 20 {
		t.Fatalf("%d accounts, want 20", n)
	}
	noLinks(t, e, out+errOut)
	if run := e.lastRun(); run.Sinks[0].Invitations["failed"] != 20 {
		t.Errorf("invitations %v", run.Sinks[0].Invitations)
	}
	if !strings.Contains(errOut, "invitation not delivered: tried again on the next run") {
		t.Errorf("the log does not say the invitations wait:\n%s", errOut)
	}

	// The plan and inspect say what waits, never the link.
	out = e.mustRun(exitOK, "--dry-run")
	if !strings.Contains(out, "invitations not yet delivered, tried again (20)") {
		t.Errorf("the plan does not list the pending invitations:\n%s", out)
	}
	insp := e.mustRun(exitOK, "inspect", "E00003")
	if !strings.Contains(insp, "invitation: not yet delivered, 1 attempts; its link works until") || !strings.Contains(insp, "connect") {
		t.Errorf("inspect:\n%s", insp)
	}
	noLinks(t, e, out+insp)

	smtp = maildevtest.Start(t, maildevtest.Options{Port: smtp.Port})
	code, out, errOut = e.idsync(t.Context(), "--once", "--log-level", "debug")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	noLinks(t, e, out+errOut)
	if n := len(e.srv.Users()); n != 20 {
		t.Errorf("%d accounts after the retry, want 20: none made again", n)
	}
	checkWelcomes(t, e, smtp, 20)
}

// TestOnboardingNative: onboarding: native makes Domo and Descope send their own
// invitations: Domo's create asks sendInvite=true, Descope's invite with its link's base.
func TestOnboardingNative(t *testing.T) {
	dc, dm := descopetest.Start(t, descopetest.Options{}), domotest.Start(t, domotest.Options{})
	t.Setenv("TEST_DESCOPE_KEY", dc.ManagementKey())
	t.Setenv("TEST_DOMO_SECRET", dm.ClientSecret())
	extra := fmt.Sprintf(`  - name: auth
    onboarding: {channel: native, invite_url: "https://login.example.org/invited"}
    descope:
      url: %s
      project_id: %s
      management_key: ${TEST_DESCOPE_KEY}
  - name: bi
    onboarding: {channel: native}
    domo:
      url: %s
      client_id: %s
      client_secret: ${TEST_DOMO_SECRET}
`, dc.URL, dc.ProjectID(), dm.URL, dm.ClientID())
	e := newEnv(t, 6, extra)
	e.mustRun(exitOK, "--once")
	if users := dc.Users(); len(users) != 6 {
		t.Fatalf("descope has %d users", len(users))
	}
	for _, u := range dc.Users() {
		if u.Status != "invited" || u.InviteURL != "https://login.example.org/invited" || !u.InviteMail {
			t.Errorf("descope user %v: status %q, invite URL %q, mailed %v", u.LoginIDs, u.Status, u.InviteURL, u.InviteMail)
		}
	}
	if users := dm.Users(); len(users) != 6 {
		t.Fatalf("domo has %d users", len(users))
	}
	for _, u := range dm.Users() {
		if !u.Invited {
			t.Errorf("domo user %s was not invited", u.Email)
		}
	}
	// Without onboarding, nobody is invited.
	b, _ := os.ReadFile(e.config)
	cfg := strings.NewReplacer("    onboarding: {channel: native, invite_url: \"https://login.example.org/invited\"}\n", "", "    onboarding: {channel: native}\n", "").Replace(string(b))
	os.WriteFile(e.config, []byte(cfg), 0o600)
	e.rows = append(e.rows, genRows(7)[6])
	e.writeCSV()
	e.mustRun(exitOK, "--once")
	found := false
	for _, u := range dc.Users() {
		if u.Email == "user00006@example.org" {
			found = true
			if u.Status != "enabled" || u.InviteURL != "" {
				t.Errorf("descope user without onboarding: %+v", u)
			}
		}
	}
	if !found {
		t.Error("the seventh person is not in descope")
	}
	for _, u := range dm.Users() {
		if u.Email == "user00006@example.org" && u.Invited {
			t.Error("domo user invited without onboarding")
		}
	}
}

// TestOnboardingICure: for iCure, the account is made, then a temporary token asked
// for it, then the email sent with a link carrying the token: in that order (the
// token's request follows the create's in the server's log, and the email carries the
// token iCure stored, valid for the configured time).
func TestOnboardingICure(t *testing.T) {
	smtp := maildevtest.Start(t, maildevtest.Options{})
	ic := icuretest.Start(t, icuretest.Options{})
	t.Setenv("TEST_ICURE_PASSWORD", ic.Password())
	extra := fmt.Sprintf(`  - name: ehr
    onboarding: {channel: email, application: Example Patients}
    icure:
      url: %s
      username: %s
      password: ${TEST_ICURE_PASSWORD}
      invite_link: "https://patients.example.org/welcome?user={user_id}&token={token}"
      invite_validity: 72h
smtp: {host: 127.0.0.1, port: %d, tls: none, from: "Example <noreply@example.org>"}
`, ic.URL, ic.Username(), smtp.Port)
	e := newEnv(t, 5, extra)
	code, out, errOut := e.idsync(t.Context(), "--once")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	emails := smtp.Emails(t)
	if len(emails) != 5 {
		t.Fatalf("%d emails, want 5", len(emails))
	}
	byAddress := map[string]maildevtest.Email{}
	for _, m := range emails {
		byAddress[m.To[0].Address] = m
	}
	// The order: a token request answered 200 was for a user that existed (iCure
	// answers 404 for one that does not), so the create came first; the email carries
	// the token iCure stored, so the token came before it.
	asked := map[string]bool{}
	for _, r := range ic.Log() {
		if r.Endpoint == "user.token" {
			if r.Status != 200 {
				t.Errorf("token request %s answered %d", r.Path, r.Status)
			}
			asked[strings.Split(r.Path, "/")[5]] = true
		}
	}
	for _, u := range ic.Users() {
		if u.Email == "" {
			continue
		}
		tok, ok := ic.Tokens(u.ID)["idsync-welcome"]
		m, mailed := byAddress[u.Email]
		switch {
		case !ok:
			t.Errorf("%s: no token", u.Email)
		case tok.Expires.Sub(tok.Created) != 72*time.Hour:
			t.Errorf("%s: token valid for %v, want 72h", u.Email, tok.Expires.Sub(tok.Created))
		case !mailed:
			t.Errorf("%s: no email", u.Email)
		case !strings.Contains(m.Text, "https://patients.example.org/welcome?user="+u.ID+"&token="+tok.Value):
			t.Errorf("%s: the email lacks the link with its token:\n%s", u.Email, m.Text)
		}
		if !asked[u.ID] {
			t.Errorf("%s: no token request logged", u.Email)
		}
	}
	noLinksIn(t, out+errOut, ic, "idsync-welcome")
}

// noLinksIn fails if a token iCure holds under key appears in out.
func noLinksIn(t *testing.T, out string, ic *icuretest.Server, key string) {
	t.Helper()
	for _, u := range ic.Users() {
		if tok, ok := ic.Tokens(u.ID)[key]; ok && strings.Contains(out, tok.Value) {
			t.Fatalf("a token is in the output:\n%s", out)
		}
	}
}

// TestOnboardingAdopted: an account idsync adopts (found by email, made by someone
// else) gets no invitation, unless invite_adopted says so (iCure: a new token).
func TestOnboardingAdopted(t *testing.T) {
	for _, inviteAdopted := range []bool{false, true} {
		t.Run(fmt.Sprint("invite_adopted=", inviteAdopted), func(t *testing.T) {
			smtp := maildevtest.Start(t, maildevtest.Options{})
			ic := icuretest.Start(t, icuretest.Options{})
			if _, err := ic.AddUser(icuretest.User{ID: "existing-account", Login: "user00000@example.org", Email: "user00000@example.org", Status: "ACTIVE"}); err != nil {
				t.Fatal(err)
			}
			t.Setenv("TEST_ICURE_PASSWORD", ic.Password())
			e := newEnv(t, 3, fmt.Sprintf(`  - name: ehr
    onboarding: {channel: email, invite_adopted: %t}
    icure: {url: %s, username: %s, password: "${TEST_ICURE_PASSWORD}", invite_link: "https://p.example.org/w?t={token}"}
smtp: {host: 127.0.0.1, port: %d, tls: none, from: noreply@example.org}
`, inviteAdopted, ic.URL, ic.Username(), smtp.Port))
			e.mustRun(exitOK, "--once")
			got := map[string]bool{}
			for _, m := range smtp.Emails(t) {
				got[m.To[0].Address] = true
			}
			if !got["user00001@example.org"] || !got["user00002@example.org"] || got["user00000@example.org"] != inviteAdopted {
				t.Errorf("emails to %v; the adopted account's person invited: %v, want %v", got, got["user00000@example.org"], inviteAdopted)
			}
		})
	}
}
