package haplotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkFirstSyncPerson is the server's share of one person of a first sync: the
// three requests idsync's Haplo sink makes (a look-up by username that finds nobody,
// the profile push, the account creation), given to the handler directly, without
// the network. The sink's BenchmarkFirstSyncPerson is the same person end to end.
func BenchmarkFirstSyncPerson(b *testing.B) {
	s := start(b)
	h := s.Handler()
	userKey, importKey := basic("haplo", s.UserAPIKey()), basic("haplo", s.ImportAPIKey())
	serve := func(method, path, auth, body string, wantStatus int) []byte {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != wantStatus {
			b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
		}
		return w.Body.Bytes()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := fmt.Sprint(i)
		i++
		serve(http.MethodGet, "/api/v0-user/id?tag%3Ausername=user"+id, userKey, "", http.StatusNotFound)
		var pushed struct {
			Actions []struct {
				Changed []struct{ Ref string } `json:"changed"`
			} `json:"actions"`
		}
		out := serve(http.MethodPost, "/api/push-data/"+s.ImportName(), importKey,
			`{"email":"user`+id+`@example.org","first":"Ann","job_title":"Lecturer","last":"Lee`+id+`","type":"std:type:person"}`, http.StatusOK)
		if err := json.Unmarshal(out, &pushed); err != nil || len(pushed.Actions) != 1 || len(pushed.Actions[0].Changed) == 0 {
			b.Fatalf("push: %v %s", err, out)
		}
		serve(http.MethodPost, "/api/v0-user/create", userKey,
			`{"directGroupMembership":["haplo:group:staff"],"email":"user`+id+`@example.org","nameFirst":"Ann","nameLast":"Lee`+id+
				`","ref":"`+pushed.Actions[0].Changed[0].Ref+`","tags":{"idsync_id":"`+id+`","username":"user`+id+`"}}`, http.StatusOK)
	}
}
