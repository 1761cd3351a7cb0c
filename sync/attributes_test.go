package sync

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAttributesKeepTheirOrder(t *testing.T) {
	var a Attributes
	for _, name := range []string{"title", "dept", "phone", "room"} {
		a.Set(name, []string{name + "-1"})
	}
	a.Set("phone", []string{"+1 555", "+1 556"}) // replaced in place
	want := Attributes{
		{"dept", []string{"dept-1"}},
		{"phone", []string{"+1 555", "+1 556"}},
		{"room", []string{"room-1"}},
		{"title", []string{"title-1"}},
	}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Fatalf("after Set (-want +got):\n%s", diff)
	}
	if got := a.Get("phone"); !slices.Equal(got, []string{"+1 555", "+1 556"}) {
		t.Errorf("Get(phone) = %q", got)
	}
	if got := a.Get("missing"); got != nil {
		t.Errorf("Get(missing) = %q, want nil", got)
	}
	if !a.Equal(AttributesOf(a.Map())) {
		t.Errorf("%v and AttributesOf its Map differ", a)
	}

	c := a.Clone()
	c.Get("phone")[0] = "changed"
	c.Delete("room")
	if a.Get("phone")[0] != "+1 555" || a.Get("room") == nil {
		t.Errorf("changing a clone changed the original: %v", a)
	}
	if a.Equal(c) {
		t.Errorf("%v Equal %v", a, c)
	}
	for _, name := range []string{"dept", "phone", "title", "missing"} {
		c.Delete(name)
	}
	if c != nil {
		t.Errorf("deleting every attribute left %#v, want nil", c)
	}
}

// Normalize puts a list built in any order into the order Equal and the snapshot's
// encoding need, each name once (the first given) and without empty attributes.
func TestNormalizeOrdersAttributes(t *testing.T) {
	id := Identity{ID: "1", Attributes: Attributes{
		{"title", []string{"Dr"}},
		{"dept", nil},
		{"phone", []string{"+1 555"}},
		{"title", []string{"Prof"}},
	}}
	Normalize(&id)
	want := Attributes{{"phone", []string{"+1 555"}}, {"title", []string{"Dr"}}}
	if diff := cmp.Diff(want, id.Attributes); diff != "" {
		t.Errorf("Normalize (-want +got):\n%s", diff)
	}
	id.Attributes = Attributes{{"dept", nil}}
	if Normalize(&id); id.Attributes != nil {
		t.Errorf("only empty attributes: got %#v, want nil", id.Attributes)
	}
}

// Plan files written when attributes were a map read the same, and are written the
// same way: as an object.
func TestAttributesJSON(t *testing.T) {
	const old = `{"id":"1","active":true,"attributes":{"title":["Dr"],"dept":["Physics"],"empty":[]}}`
	var id Identity
	if err := json.Unmarshal([]byte(old), &id); err != nil {
		t.Fatal(err)
	}
	want := Attributes{{"dept", []string{"Physics"}}, {"title", []string{"Dr"}}}
	if diff := cmp.Diff(want, id.Attributes); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(id)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"id":"1","active":true,"attributes":{"dept":["Physics"],"title":["Dr"]}}`; got != want {
		t.Errorf("encoded %s, want %s", got, want)
	}
	id.Attributes = nil
	if b, _ := json.Marshal(id); string(b) != `{"id":"1","active":true}` {
		t.Errorf("no attributes encoded as %s", b)
	}
	if err := json.Unmarshal([]byte(`{"id":"1","attributes":["Dr"]}`), &id); err == nil {
		t.Error("attributes as a list: no error")
	}
}
