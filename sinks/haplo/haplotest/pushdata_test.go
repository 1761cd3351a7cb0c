package haplotest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pushResult decodes a push-data answer.
type pushResult struct {
	Result     string
	Applied    int
	Failures   int
	ErrorCount int
	Errors     []string
	Actions    []struct {
		Record  string
		Changed []changed
	}
}

func pushed(t *testing.T, r response) pushResult {
	t.Helper()
	var p pushResult
	if err := jsonUnmarshal(r.raw, &p); err != nil {
		t.Fatalf("got %q: %v", r.raw, err)
	}
	return p
}

// savedRef returns the ref of the only object:save of a successful push.
func savedRef(t *testing.T, r response, wantNew bool) string {
	t.Helper()
	p := pushed(t, r)
	if r.status != 200 || p.Result != "success" || len(p.Actions) != 1 || len(p.Actions[0].Changed) != 1 {
		t.Fatalf("got %d %s, want one saved object", r.status, r.raw)
	}
	c := p.Actions[0].Changed[0]
	if c.Kind != "object:save" || c.Destination != "profile" || c.New != wantNew || c.Ref == "" {
		t.Fatalf("got change %+v, want object:save of profile with new=%v", c, wantNew)
	}
	return c.Ref
}

func TestPushDataNewProfile(t *testing.T) {
	s := start(t)
	r := push(t, s, `{"first":"Zoë","last":"Smith","email":"z@example.org","type":"std:type:person","job_title":"Lecturer","phone":"+44 1234 567890"}`)
	if !strings.Contains(r.raw, "\n    \"result\": \"success\"") {
		t.Errorf("got %q, want JSON indented by four spaces", r.raw)
	}
	if p := pushed(t, r); p.Applied != 1 || p.Failures != 0 || p.ErrorCount != 0 || len(p.Errors) != 0 || p.Actions[0].Record != "record 0" {
		t.Errorf("got %+v", p)
	}
	ref := savedRef(t, r, true)
	if ref != "80000" {
		t.Errorf("got ref %q, want 80000, the first object", ref)
	}
	want := []Profile{{Ref: ref, Saves: 1, Attrs: map[string][]string{
		"dc:attribute:title":             {"Zoë Smith"},
		"dc:attribute:type":              {"std:type:person"},
		"std:attribute:email":            {"z@example.org"},
		"std:attribute:job-title":        {"Lecturer"},
		"std:attribute:telephone-number": {"+44 1234 567890"},
	}}}
	if diff := cmp.Diff(want, s.Profiles()); diff != "" {
		t.Errorf("profiles (-want +got):\n%s", diff)
	}
	// Without a type the committer adds the destination's type; and refs count up.
	ref2 := savedRef(t, push(t, s, `{"first":"Al","last":"Bo"}`), true)
	if p, _ := s.Profile(ref2); ref2 != "80001" || !cmp.Equal(p.Attrs["dc:attribute:type"], []string{"std:type:person"}) {
		t.Errorf("got %q %+v", ref2, p)
	}
	if got := s.Requests()["push-data"]; got != 2 {
		t.Errorf("got %d push-data requests, want 2", got)
	}
}

func TestPushDataUpdateAndUnchanged(t *testing.T) {
	s := start(t)
	record := `{"first":"Zoë","last":"Smith","email":"z@example.org","type":"std:type:person","job_title":"Lecturer","phone":"+44 1","ref":"%s"}`
	ref := savedRef(t, push(t, s, strings.Replace(record, `,"ref":"%s"`, "", 1)), true)

	// The same values again: nothing is saved and no ref comes back.
	r := push(t, s, strings.Replace(record, "%s", ref, 1))
	p := pushed(t, r)
	if r.status != 200 || p.Result != "success" || p.Applied != 1 || len(p.Actions) != 1 || len(p.Actions[0].Changed) != 0 {
		t.Fatalf("got %d %s, want success with changed []", r.status, r.raw)
	}
	if !strings.Contains(r.raw, `"changed": []`) {
		t.Errorf("got %s, want changed as an empty array", r.raw)
	}
	if got, _ := s.Profile(ref); got.Saves != 1 {
		t.Errorf("got %d saves, want 1", got.Saves)
	}

	// Changed values, and job_title and phone left out: they are cleared.
	r = push(t, s, `{"ref":"`+ref+`","first":"Zoë","last":"Jones","email":"zj@example.org","type":"std:type:person:past"}`)
	if got := savedRef(t, r, false); got != ref {
		t.Errorf("got ref %q, want %q", got, ref)
	}
	want := Profile{Ref: ref, Saves: 2, Attrs: map[string][]string{
		"dc:attribute:title":  {"Zoë Jones"},
		"dc:attribute:type":   {"std:type:person:past"},
		"std:attribute:email": {"zj@example.org"},
	}}
	got, _ := s.Profile(ref)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("profile (-want +got):\n%s", diff)
	}
	if n := len(s.Profiles()); n != 1 {
		t.Errorf("got %d profiles, want 1", n)
	}
}

func TestPushDataRefsThatDoNotLoad(t *testing.T) {
	s := start(t)
	seeded := s.AddProfile(Profile{Attrs: map[string][]string{"dc:attribute:title": {"Ann Lee"}}})
	tests := []struct{ name, ref string }{
		{"stale", "83w92"},
		{"malformed", "80-qq"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.Profiles())
			ref := savedRef(t, push(t, s, `{"ref":"`+tt.ref+`","first":"Ann","last":"Lee"}`), true)
			if ref == tt.ref || ref == seeded.Ref || len(s.Profiles()) != before+1 {
				t.Errorf("got ref %q and %d profiles, want a second, new profile", ref, len(s.Profiles()))
			}
		})
	}
	// The seeded profile loads by its ref. It has no type, so the commit
	// adds one and saves it; after that the same record changes nothing.
	record := `{"ref":"` + seeded.Ref + `","first":"Ann","last":"Lee"}`
	if got := savedRef(t, push(t, s, record), false); got != seeded.Ref {
		t.Errorf("got ref %q, want %q", got, seeded.Ref)
	}
	if p := pushed(t, push(t, s, record)); len(p.Actions[0].Changed) != 0 {
		t.Errorf("got %+v, want nothing saved", p)
	}
}

func TestPushDataRefWithoutFilterDoesNotLoad(t *testing.T) {
	control := `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"json","singleRecord":true}},
	"instructions":[
		{"source":"ref","destination":"load:by-ref","name":"ref"},
		{"action":"load","destination":"profile","using":"load:by-ref","otherwise":[{"action":"new","destination":"profile"}]},
		{"source":"last","destination":"value:person-name","name":"last"},
		{"action":"field-structured","structured":"value:person-name","destination":"profile","name":"dc:attribute:title"}]}`
	s := start(t, func(o *Options) { o.ControlFile = []byte(control) })
	ref := savedRef(t, push(t, s, `{"last":"Lee"}`), true)
	if got := savedRef(t, push(t, s, `{"ref":"`+ref+`","last":"Lee"}`), true); got == ref {
		t.Errorf("got ref %q loaded, want a new profile", got)
	}
}

func TestPushDataMissingTitle(t *testing.T) {
	s := start(t)
	r := push(t, s, `{"first":"Zoë","last":"","email":"z@example.org"}`)
	p := pushed(t, r)
	if r.status != 400 || p.Result != "failure" || p.Applied != 0 || p.Failures != 1 {
		t.Fatalf("got %d %s, want 400 failure", r.status, r.raw)
	}
	if len(p.Errors) == 0 || p.Errors[0] != "dc:attribute:title is not set in object profile (record 0)" || p.ErrorCount != len(p.Errors) {
		t.Errorf("got errors %q (count %d)", p.Errors, p.ErrorCount)
	}
	if len(p.Actions) != 1 || p.Actions[0].Record != "record 0" || len(p.Actions[0].Changed) != 0 {
		t.Errorf("got actions %+v", p.Actions)
	}
	if n := len(s.Profiles()); n != 0 {
		t.Errorf("got %d profiles, want 0", n)
	}
}

func TestPushDataErrors(t *testing.T) {
	s := start(t)
	key := basic("haplo", s.ImportAPIKey())
	path := "/api/push-data/" + s.ImportName()

	r := send(t, s, "GET", path, key, "")
	p := pushed(t, r)
	if r.status != 400 || p.Result != "error" || !cmp.Equal(p.Errors, []string{"Only POST requests supported for push data REST APIs."}) {
		t.Errorf("GET: got %d %s", r.status, r.raw)
	}
	r = send(t, s, "POST", path, key, `{"first":`)
	if p := pushed(t, r); r.status != 400 || p.Result != "error" || len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0], "Exception when processing: ") {
		t.Errorf("bad JSON: got %d %s", r.status, r.raw)
	}
	// An invalid email is reported, but it does not stop the record.
	r = push(t, s, `{"first":"A","last":"B","email":"nobody"}`)
	if p := pushed(t, r); r.status != 200 || p.Applied != 1 || !cmp.Equal(p.Errors, []string{"Invalid email address for input field email: nobody (record 0)"}) {
		t.Errorf("bad email: got %d %s", r.status, r.raw)
	}
}

func TestPushDataInstructions(t *testing.T) {
	control := `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"json"}},
	"instructions":[
		{"action":"new","destination":"profile"},
		{"action":"if-value-one-of","source":"kind","values":["staff"],
		 "then":[{"action":"set-value","destination":"profile","name":"dc:attribute:type","value":"std:type:person:staff"}],
		 "else":[{"action":"abort-record","message":"not staff"}]},
		{"source":"name","destination":"value:person-name","name":"last","filters":["haplo:to-upper-case"]},
		{"action":"field-structured","structured":"value:person-name","destination":"profile","name":"dc:attribute:title"},
		{"action":"for-each","source":"emails","instructions":[
			{"source":"value","destination":"profile","name":"std:attribute:email","multivalue":true}],"wrapValues":true},
		{"action":"if-has-value","destination":"profile","name":"std:attribute:email",
		 "else":[{"action":"log-error","message":"no email"}]}]}`
	s := start(t, func(o *Options) { o.ControlFile = []byte(control) })
	r := push(t, s, `[{"kind":"staff","name":"lee","emails":["a@x.org","b@x.org"]},{"kind":"student","name":"ek"},{"kind":"staff","name":"ox"}]`)
	p := pushed(t, r)
	if r.status != 400 || p.Result != "failure" || p.Applied != 2 || p.Failures != 1 {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	if want := []string{"not staff (record 1)", "no email (record 1)", "no email (record 2)"}; !cmp.Equal(p.Errors, want) {
		t.Errorf("got errors %q, want %q", p.Errors, want)
	}
	want := []Profile{
		{Ref: "80000", Saves: 1, Attrs: map[string][]string{"dc:attribute:title": {"LEE"}, "dc:attribute:type": {"std:type:person:staff"}, "std:attribute:email": {"a@x.org", "b@x.org"}}},
		{Ref: "80001", Saves: 1, Attrs: map[string][]string{"dc:attribute:title": {"OX"}, "dc:attribute:type": {"std:type:person:staff"}}},
	}
	if diff := cmp.Diff(want, s.Profiles()); diff != "" {
		t.Errorf("profiles (-want +got):\n%s", diff)
	}
}

func TestPushDataUnknownActionInOtherwise(t *testing.T) {
	// load's otherwise is not validated, so Haplo accepts the file and fails each request.
	control := `{"dataImportControlFileVersion":0,"model":"haplo:person","files":{"DEFAULT":{"read":"json","singleRecord":true}},
	"instructions":[{"action":"load","destination":"profile","using":"load:by-ref","otherwise":[{"action":"save"}]}]}`
	s := start(t, func(o *Options) { o.ControlFile = []byte(control) })
	r := push(t, s, `{}`)
	if p := pushed(t, r); r.status != 400 || p.Result != "error" {
		t.Errorf("got %d %s, want 400 error", r.status, r.raw)
	}
}

// With std:attribute:configured-behaviour on the person type, the shipped control
// file writes a record's code to the profile and finds the profile by it.
func TestPushDataProfileCodes(t *testing.T) {
	s := start(t)
	record := `{"first":"Ann","last":"Lee","email":"a@example.org","code":"idsync:person:E1"%s}`
	ref := savedRef(t, push(t, s, strings.Replace(record, "%s", "", 1)), true)
	if p, _ := s.Profile(ref); !cmp.Equal(p.Attrs[attrBehaviour], []string{"idsync:person:E1"}) {
		t.Fatalf("profile %+v, want the code in %s", p, attrBehaviour)
	}

	// The same record again, without a ref: found by its code and unchanged, so
	// nothing is saved and no ref comes back.
	if p := pushed(t, push(t, s, strings.Replace(record, "%s", "", 1))); p.Result != "success" || len(p.Actions[0].Changed) != 0 || p.ErrorCount != 0 {
		t.Fatalf("repeat: got %+v, want success with nothing saved", p)
	}
	// A touch code adds a second value: the profile is saved and its ref given.
	if got := savedRef(t, push(t, s, strings.Replace(record, "%s", `,"touch":"idsync:touch:1"`, 1)), false); got != ref {
		t.Errorf("touch: got ref %q, want %q", got, ref)
	}
	if p, _ := s.Profile(ref); !cmp.Equal(p.Attrs[attrBehaviour], []string{"idsync:person:E1", "idsync:touch:1"}) {
		t.Errorf("after touch: %v", p.Attrs[attrBehaviour])
	}
	// With its ref the touch goes; with a stale ref the code finds the profile.
	if got := savedRef(t, push(t, s, strings.Replace(record, "%s", `,"ref":"`+ref+`"`, 1)), false); got != ref {
		t.Errorf("with ref: got ref %q, want %q", got, ref)
	}
	if got := savedRef(t, push(t, s, strings.Replace(record, "%s", `,"ref":"83w92","email":"b@example.org"`, 1)), false); got != ref {
		t.Errorf("stale ref: got ref %q, want the profile found by its code %q", got, ref)
	}
	// Another code makes another profile; a record without a code is as before.
	other := savedRef(t, push(t, s, `{"first":"Bo","last":"Ek","code":"idsync:person:E2"}`), true)
	plain := savedRef(t, push(t, s, `{"first":"Bo","last":"Ek"}`), true)
	if other == ref || plain == ref || plain == other || len(s.Profiles()) != 3 {
		t.Errorf("refs %s %s %s, %d profiles: want three profiles", ref, other, plain, len(s.Profiles()))
	}
	if p, _ := s.Profile(plain); len(p.Attrs[attrBehaviour]) != 0 {
		t.Errorf("a record without a code set %v", p.Attrs[attrBehaviour])
	}
	if p, _ := s.Profile(ref); !cmp.Equal(p.Attrs[attrBehaviour], []string{"idsync:person:E1"}) || p.Saves != 4 {
		t.Errorf("profile %+v, want the code alone after 4 saves", p)
	}

	// A code Haplo does not accept as a configuration name: the whole request is
	// an error, and nothing is saved.
	before := len(s.Profiles())
	r := push(t, s, `{"first":"Cy","last":"Ng","code":"not a code"}`)
	if p := pushed(t, r); r.status != 400 || p.Result != "error" || len(p.Errors) != 1 ||
		!strings.Contains(p.Errors[0], "O.text(O.T_IDENTIFIER_CONFIGURATION_NAME,...) must be formed of") || len(s.Profiles()) != before {
		t.Errorf("bad code: got %d %s, %d profiles", r.status, r.raw, len(s.Profiles()))
	}
}

// haplo:code-to-ref finds any object whose configured behaviour is the code, the
// lowest id if several are, and follows changes of it.
func TestCodeToRef(t *testing.T) {
	s := start(t)
	p1 := s.AddProfile(Profile{Attrs: map[string][]string{"dc:attribute:title": {"Ann Lee"}, attrBehaviour: {"idsync:person:E1"}}})
	s.AddProfile(Profile{Attrs: map[string][]string{"dc:attribute:title": {"Ann Lee"}, attrBehaviour: {"idsync:person:E1"}}})
	if got := savedRef(t, push(t, s, `{"first":"Ann","last":"Lee","code":"idsync:person:E1"}`), false); got != p1.Ref {
		t.Errorf("got %s, want the lower ref %s", got, p1.Ref)
	}
	// Case matters, as in Haplo's identifier index.
	if got := savedRef(t, push(t, s, `{"first":"Ann","last":"Lee","code":"idsync:person:e1"}`), true); got == p1.Ref {
		t.Error("a code differing in case found the profile")
	}
	// A profile whose code is changed is no longer found by the old one.
	push(t, s, `{"ref":"`+p1.Ref+`","first":"Ann","last":"Lee","code":"idsync:person:E9"}`)
	s.mu.Lock()
	id, ok := s.behaviourRef("idsync:person:E1")
	s.mu.Unlock()
	if !ok || formatRef(id) == p1.Ref {
		t.Errorf("old code finds %s (%v), want the second profile", formatRef(id), ok)
	}
}

// Haplo's default schema: std:type:person has no configured behaviour. The shipped
// control file still works for records without a code, each request carrying the
// setup errors; a code is skipped, so it finds nothing and a repeated record makes a
// second profile. SetPersonHasBehaviour adds the attribute, as an administrator would.
func TestPushDataDefaultSchema(t *testing.T) {
	s := start(t, func(o *Options) { o.PersonHasBehaviour = false })
	setupErrors := []string{
		"Unknown name in field std:attribute:configured-behaviour for destination profile",
		"Unknown name in field std:attribute:configured-behaviour for destination profile",
	}
	r := push(t, s, `{"first":"Ann","last":"Lee"}`)
	ref := savedRef(t, r, true)
	if p := pushed(t, r); !cmp.Equal(p.Errors, setupErrors) || p.ErrorCount != 2 {
		t.Errorf("got errors %q (%d), want the setup errors", p.Errors, p.ErrorCount)
	}
	if got := savedRef(t, push(t, s, `{"ref":"`+ref+`","first":"Ann","last":"Leigh"}`), false); got != ref {
		t.Errorf("update by ref: got %s, want %s", got, ref)
	}
	coded := `{"first":"Bo","last":"Ek","code":"idsync:person:E2"}`
	a, b := savedRef(t, push(t, s, coded), true), savedRef(t, push(t, s, coded), true)
	if a == b || len(s.Profiles()) != 3 {
		t.Errorf("refs %s %s, %d profiles: want a second profile for the repeated record", a, b, len(s.Profiles()))
	}
	if p, _ := s.Profile(a); len(p.Attrs[attrBehaviour]) != 0 {
		t.Errorf("the code was set: %v", p.Attrs[attrBehaviour])
	}
	// An invalid code is never transformed: no exception, just the missing title.
	if p := pushed(t, push(t, s, `{"code":"not a code"}`)); p.Result != "failure" {
		t.Errorf("probe-like record: got %+v, want failure", p)
	}

	s.SetPersonHasBehaviour(true)
	c := savedRef(t, push(t, s, coded), true)
	if p := pushed(t, push(t, s, coded)); len(p.Actions[0].Changed) != 0 || len(p.Errors) != 0 || len(s.Profiles()) != 4 {
		t.Errorf("after the schema change: got %+v with %d profiles, want the profile %s found", p, len(s.Profiles()), c)
	}
}
