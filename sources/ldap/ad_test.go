package ldap

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/idsync/idsync/internal/sambatest"
	dsync "github.com/idsync/idsync/sync"
)

// These tests run against a real Samba Active Directory DC (Debian's samba): .ci/run
// installs it, and sambatest fails, never skips, without it. One DC serves every
// subtest: provisioning and loading 1,500 users take ~20 s.

// adUsers is the filter that finds the test's users and not the domain's own accounts.
const adUsers = "(&(objectCategory=person)(objectClass=user)(sAMAccountName=u*))"

func adConfig(dc *sambatest.Server, edit func(*Config)) Config {
	c := Config{
		URL: dc.URL, CAFile: dc.CAFile, BindDN: dc.ServiceDN, BindPassword: dc.ServicePassword,
		Searches:          []Search{{BaseDN: dc.BaseDN, Filter: adUsers}},
		Referrals:         "skip",
		Attributes:        Attributes{ID: "objectGUID", Username: "sAMAccountName", DisplayName: "displayName"},
		ProfileAttributes: map[string]string{"upn": "userPrincipalName"},
		Active:            Active{From: "ad"},
	}
	if edit != nil {
		edit(&c)
	}
	return c
}

func TestActiveDirectory(t *testing.T) {
	dc := sambatest.Start(t)
	dc.AddOUs(t, "OU=Staff")
	users := sambatest.Users(1500) // every tenth disabled: u00010, u00020, ...
	users[1].Container = "OU=Staff"
	users[2].Expires = time.Now().Add(-24 * time.Hour)
	users[3].Expires = time.Now().Add(24 * time.Hour)
	t0 := time.Now()
	dc.AddUsers(t, users)
	t.Logf("1,500 users loaded in %v", time.Since(t0).Round(time.Millisecond))
	everyone := sambatest.Group{Name: "everyone"}
	for _, u := range users {
		everyone.Members = append(everyone.Members, u.DN())
	}
	team := sambatest.Group{Name: "team", Members: []string{users[0].DN(), users[1].DN()}}
	dept := sambatest.Group{Name: "dept", Container: "OU=Staff", Members: []string{team.DN(), users[4].DN()}}
	all := sambatest.Group{Name: "all-staff", Members: []string{dept.DN()}}
	dc.AddGroups(t, []sambatest.Group{team, dept, all, everyone})

	readAD := func(t *testing.T, edit func(*Config)) (map[string]dsync.Identity, error) {
		t.Helper()
		ids, err := read(t, adConfig(dc, edit))
		return byUID(ids), err
	}

	t.Run("identities", func(t *testing.T) {
		got, err := readAD(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1500 {
			t.Fatalf("read %d users from the domain root, want 1500", len(got))
		}
		u := got["u00001"]
		if want := dc.GUID(t, "u00001"); u.ID != want {
			t.Errorf("id %q, want samba-tool's objectGUID %q", u.ID, want)
		}
		if u.Email != "u00001@example.org" || u.DisplayName != "Given1 Surname1" || !slices.Equal(u.Attributes.Get("upn"), []string{"u00001@example.org"}) {
			t.Errorf("u00001 mapped to %+v", u)
		}
		if !u.Valid() || !u.Active {
			t.Errorf("u00001: valid %v, active %v, problems %v", u.Valid(), u.Active, u.Problems)
		}
		if u := got["u00002"]; !strings.Contains(u.Origin, "OU=Staff") {
			t.Errorf("u00002's origin %q, want it in OU=Staff", u.Origin)
		}
		for name, want := range map[string]bool{"u00010": false, "u01500": false, "u00003": false, "u00004": true, "u00011": true} {
			if got[name].Active != want {
				t.Errorf("%s active %v, want %v (userAccountControl and accountExpires)", name, got[name].Active, want)
			}
		}
		ids := map[string]bool{}
		for _, u := range got {
			ids[u.ID] = true
		}
		if len(ids) != 1500 {
			t.Errorf("%d distinct GUIDs, want 1500", len(ids))
		}
	})

	// Samba, unlike Windows, does not enforce MaxPageSize (1,000); the read must get
	// every entry both with pages below it and with pages a Windows DC would cap.
	for _, size := range []int{300, 5000} {
		t.Run(fmt.Sprintf("page size %d", size), func(t *testing.T) {
			got, err := readAD(t, func(c *Config) { c.PageSize = size })
			if err != nil || len(got) != 1500 {
				t.Errorf("page size %d: read %d, %v; want 1500", size, len(got), err)
			}
		})
	}

	t.Run("referrals fail without skip", func(t *testing.T) {
		_, err := readAD(t, func(c *Config) { c.Referrals = "" })
		if err == nil || !strings.Contains(err.Error(), "referred to") || !strings.Contains(err.Error(), "CN=Configuration") || !strings.Contains(err.Error(), "referrals: skip") {
			t.Errorf("err %v, want the continuation reference named and referrals: skip suggested", err)
		}
	})

	t.Run("memberOf", func(t *testing.T) {
		got, err := readAD(t, func(c *Config) { c.Groups.MemberOf = "memberOf" })
		if err != nil {
			t.Fatal(err)
		}
		// memberOf lists direct groups only.
		if g := got["u00001"].Groups; !slices.Equal(g, []string{"everyone", "team"}) {
			t.Errorf("u00001's groups %v, want [everyone team]", g)
		}
	})

	t.Run("nested groups in chain", func(t *testing.T) {
		got, err := readAD(t, func(c *Config) {
			c.Groups.Search = &GroupSearch{BaseDN: dc.BaseDN, Filter: "(&(objectClass=group)(|(cn=team)(cn=dept)(cn=all-staff)))", Nested: true}
		})
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string][]string{
			"u00001": {"all-staff", "dept", "team"}, "u00002": {"all-staff", "dept", "team"},
			"u00005": {"all-staff", "dept"}, "u00006": nil,
		} {
			if g := got[name].Groups; !slices.Equal(g, want) {
				t.Errorf("%s's groups %v, want %v", name, g, want)
			}
		}
	})

	// A Windows DC sends a group's first 1,500 member values as member;range=0-1499,
	// and the next range only when asked. Samba has no such limit and sends ranges when
	// asked for one: the source is made to ask for member;range=0-499 first.
	t.Run("large group read whole in ranges", func(t *testing.T) {
		src, err := New("dir", adConfig(dc, func(c *Config) {
			c.Groups.Search = &GroupSearch{BaseDN: dc.BaseDN, Filter: "(&(objectClass=group)(|(cn=everyone)(cn=team)))"}
		}), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		src.memberRange = 500
		ids, err := src.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got := byUID(ids)
		if g := got["u00001"].Groups; !slices.Equal(g, []string{"everyone", "team"}) {
			t.Errorf("u00001's groups %v, want [everyone team]", g)
		}
		n := 0
		for _, u := range got {
			if slices.Contains(u.Groups, "everyone") {
				n++
			}
		}
		if n != 1500 {
			t.Errorf("%d users in everyone, want 1500", n)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		_, err := readAD(t, func(c *Config) { c.BindPassword = "not-the-password" })
		if err == nil || !strings.Contains(err.Error(), "Active Directory: wrong password") {
			t.Errorf("err %v, want AD's reason (52e) in words", err)
		}
	})

	t.Run("locked out", func(t *testing.T) {
		dc.SambaTool(t, "domain", "passwordsettings", "set", "--account-lockout-threshold=2")
		dn := "CN=locked,CN=Users," + dc.BaseDN
		dc.Modify(t, "dn: "+dn+"\nchangetype: add\nobjectClass: user\nsAMAccountName: locked\nunicodePwd:: "+sambatest.UnicodePwd("Locked-Secret-1")+"\nuserAccountControl: "+fmt.Sprint(sambatest.UACNormalAccount|sambatest.UACDontExpirePassword)+"\n")
		for range 3 {
			readAD(t, func(c *Config) { c.BindDN, c.BindPassword = dn, "not-the-password" })
		}
		_, err := readAD(t, func(c *Config) { c.BindDN, c.BindPassword = dn, "Locked-Secret-1" })
		if err == nil || !strings.Contains(err.Error(), "Active Directory: account locked out") {
			t.Errorf("err %v, want AD's reason (775) in words", err)
		}
	})

	t.Run("unknown CA", func(t *testing.T) {
		_, err := readAD(t, func(c *Config) { c.CAFile = "" })
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("err %v, want the certificate problem named", err)
		}
	})

	t.Run("wrong server name", func(t *testing.T) {
		_, err := readAD(t, func(c *Config) { c.ServerName = "dc9.example.org" })
		if err == nil || !strings.Contains(err.Error(), "dc9.example.org") || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("err %v, want the certificate name problem", err)
		}
	})

	t.Run("simple bind without TLS refused", func(t *testing.T) {
		_, err := readAD(t, func(c *Config) { c.URL = dc.LDAPURL })
		if err == nil || !strings.Contains(err.Error(), "requires an encrypted connection") || !strings.Contains(err.Error(), "start_tls") {
			t.Errorf("err %v, want the refusal explained", err)
		}
	})

	// Last: it changes an entry.
	t.Run("incremental by uSNChanged", func(t *testing.T) {
		src, err := New("dir", adConfig(dc, func(c *Config) { c.Incremental = true; c.IncrementalBy = "uSNChanged" }), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		d, err := src.ReadDelta(t.Context(), nil)
		if err != nil || !d.Full || len(d.Identities) != 1500 {
			t.Fatalf("first read: full %v, %d identities, %v; want a full read of 1500", d.Full, len(d.Identities), err)
		}
		var m mark
		if err := json.Unmarshal(d.Mark, &m); err != nil || !strings.Contains(m.Server, "CN=NTDS Settings,CN=DC1,") || !strings.Contains(m.Server, "invocationId=") {
			t.Fatalf("mark %s (%v), want the DC's dsServiceName and invocationId", d.Mark, err)
		}

		d, err = src.ReadDelta(t.Context(), d.Mark)
		if err != nil || d.Full || len(d.Identities) != 0 {
			t.Fatalf("nothing changed: full %v, %d identities, %v; want an empty delta", d.Full, len(d.Identities), err)
		}

		dc.Modify(t, "dn: "+users[6].DN()+"\nchangetype: modify\nreplace: sn\nsn: Changed\n")
		d, err = src.ReadDelta(t.Context(), d.Mark)
		if err != nil || d.Full || len(d.Identities) != 1 || d.Identities[0].Username != "u00007" || d.Identities[0].LastName != "Changed" {
			t.Fatalf("one change: full %v, %v, %v; want a delta of u00007", d.Full, d.Identities, err)
		}

		json.Unmarshal(d.Mark, &m)
		m.Server = strings.Replace(m.Server, "invocationId=", "invocationId=0", 1) // a DC restored from a backup
		other, _ := json.Marshal(m)
		d, err = src.ReadDelta(t.Context(), other)
		if err != nil || !d.Full || len(d.Identities) != 1500 {
			t.Fatalf("another DC's mark: full %v, %d identities, %v; want a full read", d.Full, len(d.Identities), err)
		}
	})

	t.Run("starttls", func(t *testing.T) {
		got, err := readAD(t, func(c *Config) { c.URL = dc.LDAPURL; c.StartTLS = true })
		if err != nil || len(got) != 1500 {
			t.Errorf("read %d, %v; want 1500", len(got), err)
		}
	})
}

func TestNextRange(t *testing.T) {
	for _, tt := range []struct {
		opt  string
		want int
		ok   bool
	}{
		{"range=0-1499", 1500, true}, {"Range=1500-2999", 3000, true}, {"range=1500-*", -1, true},
		{"range=5-4", 0, false}, {"range=x-*", 0, false}, {"range=a-b", 0, false}, {"range=0", 0, false}, {"range=-1-3", 0, false},
	} {
		got, err := nextRange(tt.opt)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("nextRange(%q) = %d, %v; want %d, ok %v", tt.opt, got, err, tt.want, tt.ok)
		}
	}
}

// A Windows DC sends a large group's member values in ranges unasked (Samba, above,
// only when asked): the group search gets member;range=0-1, and the source asks for
// member;range=2-* until a range ends with *. A range that does not move on fails the
// read.
func TestGroupMemberRangesUnasked(t *testing.T) {
	attr := func(name string, vals ...string) *ldap.EntryAttribute {
		a := &ldap.EntryAttribute{Name: name}
		for _, v := range vals {
			a.ByteValues = append(a.ByteValues, []byte(v))
		}
		return a
	}
	person := func(id int64, uid string) []byte {
		return encMessage(id, encEntry("cn="+uid+",dc=org", attr("uid", uid), attr("mail", uid+"@example.org")), nil)
	}
	group := func(id int64, member *ldap.EntryAttribute) []byte {
		return encMessage(id, encEntry("cn=big,dc=org", member), nil)
	}
	done := func(id int64) []byte {
		return encMessage(id, encResult(tagSearchDone, 0, "", ""), encControls(pagingControl([]byte{})))
	}
	for _, tt := range []struct {
		name  string
		third *ldap.EntryAttribute // the answer to the request for the next range
		err   string
	}{
		{"read whole", attr("member;range=2-*", "cn=c,dc=org"), ""},
		{"a range that does not move on", attr("member;range=0-1", "cn=a,dc=org", "cn=b,dc=org"), "the server sent no later range"},
		{"a bad range", attr("member;range=x-*", "cn=c,dc=org"), "not a range option"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := fakeServer(t, func(next func() (int64, []byte), send func(...[]byte)) {
				id, _ := next() // the people
				send(person(id, "a"), person(id, "b"), person(id, "c"), done(id))
				id, _ = next() // the groups
				send(group(id, attr("member;range=0-1", "cn=a,dc=org", "cn=b,dc=org")), done(id))
				id, _ = next() // the group's next range
				send(group(id, tt.third), done(id))
			})
			ids, err := read(t, Config{URL: url, Anonymous: true, Attributes: Attributes{ID: "uid"},
				Searches: []Search{{BaseDN: "dc=org"}},
				Groups:   Groups{Search: &GroupSearch{BaseDN: "dc=org"}}})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if !slices.Equal(id.Groups, []string{"big"}) {
					t.Errorf("%s's groups %v, want [big]", id.Username, id.Groups)
				}
			}
			if len(ids) != 3 {
				t.Errorf("read %d, want 3", len(ids))
			}
		})
	}
}
