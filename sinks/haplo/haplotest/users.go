package haplotest

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The users API (haplo_api_user_v0) on the API v0 envelope (haplo_api_v0).

const maxBody = 4 << 20

// optionalInt decodes an optional int path element; 0 means absent, as a
// JavaScript handler testing !userId sees it.
func optionalInt(args []string) (int, bool) {
	if len(args) == 0 {
		return 0, true
	}
	n, err := strconv.Atoi(args[0])
	return n, err == nil
}

// readJSONBody decodes a {body, as:"json"} argument. With keys set, it also returns an
// object's keys in order (objectKeys), which only an update needs.
func readJSONBody(r *http.Request, keys bool) (any, []string, bool) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, nil, false
	}
	v, ok := decodeJSON(b)
	if !ok {
		return nil, nil, false
	}
	if _, isObject := v.(map[string]any); isObject && keys {
		return v, objectKeys(b), true
	}
	return v, nil, true
}

// withUser finds a principal (user or group) by id.
func (s *Server) withUser(id int) (*principal, *apiError) {
	p, ok := s.principals[id]
	if !ok {
		return nil, userError("no-such-user", fmt.Sprintf("User ID %d does not exist", id), http.StatusNotFound)
	}
	return p, nil
}

// findUser addresses a principal by numeric id, or by a tag query when there is none.
func (s *Server) findUser(r *http.Request, id int) (*principal, *apiError) {
	if id != 0 {
		return s.withUser(id)
	}
	if len(r.URL.Query()) == 0 {
		return nil, userError("no-details-provided", "Either a user ID in the path of the request, or a tag query in the parameters must be provided.", http.StatusBadRequest)
	}
	users, err := s.usersForTagQuery(r, true)
	if err != nil {
		return nil, err
	}
	return users[0], nil
}

func (s *Server) usersForTagQuery(r *http.Request, single bool) ([]*principal, *apiError) {
	query := map[string]string{}
	for k, vs := range r.URL.Query() {
		if name, ok := strings.CutPrefix(k, "tag:"); ok {
			query[name] = vs[0]
		}
	}
	if len(query) == 0 {
		return nil, userError("no-tag-query-provided", "A tag query was expected in the parameters of this request, but was not provided. To be included in a tag query, tag names must be prefixed by tag:", http.StatusBadRequest)
	}
	// The plugin builds this with an underscore reduce whose callback returns
	// nothing, so a query of two or more tags reads "undefined".
	desc := "undefined"
	if len(query) == 1 {
		for k, v := range query {
			desc = k + "=" + v
		}
	}
	users := s.usersByTags(query)
	if len(users) == 0 {
		return nil, userError("no-user-found", "Tag query "+desc+" returned no users.", http.StatusNotFound)
	}
	if single && len(users) > 1 {
		return nil, userError("multiple-users-found", "Tag query "+desc+" returned more than one result.", http.StatusNotFound)
	}
	return users, nil
}

// groupForCode is the plugin's getGroupMaybe: "group:<id>", or the API code
// of an active group. A nil group without error means group:0, which the
// plugin skips.
func (s *Server) groupForCode(code string) (*principal, *apiError) {
	if id, ok := groupIDFromName(code); ok {
		if id == 0 {
			return nil, nil
		}
		if g, ok := s.principals[id]; ok && g.isGroup {
			return g, nil
		}
	} else if g, ok := s.groupByCode(code); ok && !g.blocked {
		return g, nil
	}
	return nil, exception("Group with code " + code + " does not exist")
}

// resolveGroups turns a directGroupMembership value into group ids.
func (s *Server) resolveGroups(v any) ([]int, *apiError) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, exception("directGroupMembership must be an Array of group API codes")
	}
	var ids []int
	for _, e := range list {
		code, ok := e.(string)
		if !ok {
			return nil, exception("Group with code " + jsString(e) + " does not exist")
		}
		g, err := s.groupForCode(code)
		if err != nil {
			return nil, err
		}
		if g != nil {
			ids = append(ids, g.id)
		}
	}
	sort.Ints(ids)
	return compactInts(ids), nil
}

func compactInts(ids []int) []int {
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

// usernameUnique is the plugin's check: the lowercased username must not be
// held, exactly, by any user but p.
func (s *Server) usernameUnique(username string, p *principal) bool {
	lower := strings.ToLower(username)
	if p != nil && p.tags["username"] == lower {
		return true
	}
	return len(s.usersByTags(map[string]string{"username": lower})) == 0
}

// validateDetails is the platform's validatedUserJSON.
func validateDetails(first, last, email any) *apiError {
	for _, f := range []struct {
		name  string
		value any
	}{{"nameFirst", first}, {"nameLast", last}, {"email", email}} {
		if s, ok := f.value.(string); !ok || strings.TrimSpace(s) == "" {
			return exception("User must have a non-empty String " + f.name + " attribute")
		}
	}
	if !emailPattern.MatchString(email.(string)) {
		return exception("User must have a valid email address")
	}
	return nil
}

func localeFrom(v any) (string, *apiError) {
	if l, ok := v.(string); ok && knownLocales[l] {
		return l, nil
	}
	return "", exception("Unknown locale " + jsString(v))
}

// tagsFrom checks a tags object for create: string values only.
func tagsFrom(v any) (map[string]string, *apiError) {
	tags := map[string]string{}
	if v == nil {
		return tags, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, exception("tags must be an Object of String values")
	}
	for k, tv := range m {
		s, ok := tv.(string)
		if !ok {
			return nil, exception("Tag " + k + " must have a String value")
		}
		tags[k] = s
	}
	return tags, nil
}

func refMessage(v any) string {
	return "Could not add ref " + jsString(v) + " to user as it is not a valid reference to an object"
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request, c *caller, args []string) {
	id, ok := optionalInt(args)
	if !ok {
		badRequest(w)
		return
	}
	if !c.userAPI {
		errNotPermitted.write(w)
		return
	}
	p, err := s.findUser(r, id)
	if err != nil {
		err.write(w)
		return
	}
	writeSuccess(w, "haplo:api-v0:user:details", field{"user", s.details(p)})
}

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request, c *caller, args []string) {
	body, _, ok := readJSONBody(r, false)
	welcome := 0
	if vs, present := r.URL.Query()["welcomeLink"]; present {
		n, err := strconv.Atoi(vs[0])
		if err != nil {
			ok = false
		}
		welcome = n
	}
	if !ok {
		badRequest(w)
		return
	}
	if !c.userAPI {
		errNotPermitted.write(w)
		return
	}
	p, err := s.createUser(body)
	if err != nil {
		err.write(w)
		return
	}
	fields := []field{{"user", s.details(p)}}
	if welcome != 0 {
		link := fmt.Sprintf("https://%s/do/authentication/welcome/%d-%s", r.Host, p.id, rand.Text())
		s.welcomeLinks[p.id] = link
		fields = append([]field{{"welcomeLink", link}}, fields...)
	}
	writeSuccess(w, "haplo:api-v0:user:create", fields...)
}

func (s *Server) createUser(body any) (*principal, *apiError) {
	if body == nil {
		return nil, exception(`Cannot read property "email" from null`)
	}
	d, ok := body.(map[string]any)
	if !ok {
		return nil, exception("Bad user details, argument must be an Object used as a dictionary")
	}
	if email, ok := d["email"].(string); ok && email != "" && s.userByEmail(email) != nil {
		return nil, userError("creation-failed", "Could not create new user, as user already exists with email address "+email, http.StatusBadRequest)
	}
	if tags, ok := d["tags"].(map[string]any); ok && truthy(tags["username"]) {
		username, ok := tags["username"].(string)
		if !ok {
			return nil, exception("Cannot find function toLowerCase in object " + jsString(tags["username"]) + ".")
		}
		if !s.usernameUnique(username, nil) {
			return nil, userError("creation-failed", "Could not create new user, as user already exists with username tag "+username, http.StatusBadRequest)
		}
	}
	ref := ""
	if v := d["ref"]; truthy(v) {
		str, isString := v.(string)
		if !isString {
			return nil, exception(refMessage(v))
		}
		id, ok := parseRef(str)
		if !ok {
			return nil, userError("creation-failed", refMessage(v), http.StatusBadRequest)
		}
		ref = formatRef(id)
	}
	groups, err := s.resolveGroups(d["directGroupMembership"])
	if err != nil {
		return nil, err
	}
	if err := validateDetails(d["nameFirst"], d["nameLast"], d["email"]); err != nil {
		return nil, err
	}
	tags, err := tagsFrom(d["tags"])
	if err != nil {
		return nil, err
	}
	locale := defaultLocale
	if v, present := d["localeId"]; present && v != nil {
		if locale, err = localeFrom(v); err != nil {
			return nil, err
		}
	}
	p := &principal{
		id:        s.allocID(),
		nameFirst: normaliseName(d["nameFirst"].(string)),
		nameLast:  normaliseName(d["nameLast"].(string)),
		email:     strings.TrimSpace(d["email"].(string)),
		ref:       ref,
		localeID:  locale,
		tags:      tags,
		groups:    groups,
	}
	s.principals[p.id] = p
	s.reindex(p)
	return p, nil
}

var editableProperties = map[string]bool{
	"nameFirst": true, "nameLast": true, "email": true, "ref": true,
	"localeId": true, "directGroupMembership": true, "tags": true,
}

func (s *Server) handleUpdateUser(w http.ResponseWriter, r *http.Request, c *caller, args []string) {
	id, idOK := optionalInt(args)
	body, keys, bodyOK := readJSONBody(r, true)
	if !idOK || !bodyOK {
		badRequest(w)
		return
	}
	if !c.userAPI {
		errNotPermitted.write(w)
		return
	}
	p, err := s.findUser(r, id)
	if err == nil {
		err = s.updateUser(p, id, body, keys)
		s.reindex(p) // writes are not transactional: index what was written
	}
	if err != nil {
		err.write(w)
		return
	}
	writeSuccess(w, "haplo:api-v0:user:update", field{"user", s.details(p)})
}

// updateUser follows the plugin: compare each editable key with the current
// value, collect the writes, fail on errors found so far, check the email,
// then write. Writes are not transactional: an unknown locale or a null tag
// value fails after the names and email have been written.
func (s *Server) updateUser(p *principal, id int, body any, keys []string) *apiError {
	idText := "undefined" // the plugin reports the path's id, absent for tag queries
	if id != 0 {
		idText = strconv.Itoa(id)
	}
	if p.isGroup {
		return userError("update-failed", "User "+idText+" is a Group and cannot be updated", http.StatusBadRequest)
	}
	update, _ := body.(map[string]any)
	current := toGeneric(s.details(p)).(map[string]any)
	next := map[string]any{"nameFirst": current["nameFirst"], "nameLast": current["nameLast"], "email": current["email"]}
	setDetails := false
	failed := ""
	var writes []func() *apiError
	for _, key := range keys {
		value := update[key]
		if !editableProperties[key] || deepEqual(value, current[key]) {
			continue
		}
		switch key {
		case "ref":
			str, isString := value.(string)
			if value != nil && !isString {
				return exception(refMessage(value))
			}
			rid, ok := parseRef(str)
			if !ok {
				failed = refMessage(value)
				continue
			}
			writes = append(writes, func() *apiError { p.ref = formatRef(rid); return nil })
		case "localeId":
			writes = append(writes, func() *apiError {
				l, err := localeFrom(value)
				if err == nil {
					p.localeID = l
				}
				return err
			})
		case "directGroupMembership":
			groups, err := s.resolveGroups(value)
			if err != nil {
				return err
			}
			writes = append(writes, func() *apiError { p.groups = groups; return nil })
		case "tags":
			tags, ok := value.(map[string]any)
			if !ok {
				if value == nil {
					return exception(`Cannot read property "username" from null`)
				}
				return exception("tags must be an Object of String values")
			}
			if u := tags["username"]; truthy(u) {
				username, ok := u.(string)
				if !ok {
					return exception("Cannot find function toLowerCase in object " + jsString(u) + ".")
				}
				if !s.usernameUnique(username, p) {
					failed = "Could not set username tag to " + username + " for user " + idText + " as a user already exists with that username."
					continue
				}
			}
			writes = append(writes, func() *apiError { return mergeTags(p, tags) })
		default: // nameFirst, nameLast, email
			next[key] = value
			setDetails = true
		}
	}
	if failed != "" {
		return userError("update-failed", failed, http.StatusBadRequest)
	}
	if email, ok := next["email"].(string); ok && !strictEqual(next["email"], current["email"]) {
		if other := s.userByEmail(email); other != nil && other.id != id {
			return userError("update-failed", "User "+idText+" cannot be updated to have email "+email+" as another user already has that email", http.StatusBadRequest)
		}
	}
	if setDetails {
		if err := validateDetails(next["nameFirst"], next["nameLast"], next["email"]); err != nil {
			return err
		}
		p.nameFirst = normaliseName(next["nameFirst"].(string))
		p.nameLast = normaliseName(next["nameLast"].(string))
		p.email = strings.TrimSpace(next["email"].(string))
	}
	for _, write := range writes {
		if err := write(); err != nil {
			return err
		}
	}
	return nil
}

// mergeTags sets the listed tags and keeps the others. Values are compared
// by their string form; setting a non-string value throws, and so does a
// null (which is why a tag cannot be deleted). Nothing is saved on failure.
func mergeTags(p *principal, tags map[string]any) *apiError {
	set := map[string]string{}
	for k, v := range tags {
		if v == nil {
			return exception(`Cannot call method "toString" of null`)
		}
		if jsString(v) == p.tags[k] {
			if _, has := p.tags[k]; has {
				continue
			}
		}
		str, ok := v.(string)
		if !ok {
			return exception("Tag " + k + " must have a String value")
		}
		set[k] = str
	}
	if p.tags == nil {
		p.tags = map[string]string{}
	}
	for k, v := range set {
		p.tags[k] = v
	}
	return nil
}

func (s *Server) handleEnableUser(w http.ResponseWriter, r *http.Request, c *caller, args []string) {
	statuses, hasStatus := r.URL.Query()["status"]
	if len(args) == 0 || !hasStatus {
		badRequest(w)
		return
	}
	id, err := strconv.Atoi(args[0])
	if err != nil {
		badRequest(w)
		return
	}
	if !c.userAPI {
		errNotPermitted.write(w)
		return
	}
	p, apiErr := s.withUser(id)
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	switch status := statuses[0]; status {
	case "block":
		p.blocked = true
	case "active":
		p.blocked = false
	default:
		userError("enable-failed", status+" is not a valid status", http.StatusBadRequest).write(w)
		return
	}
	writeSuccess(w, "haplo:api-v0:user:enable", field{"user", s.details(p)})
}

func (s *Server) handleFindByTag(w http.ResponseWriter, r *http.Request, c *caller, args []string) {
	if !c.userAPI {
		errNotPermitted.write(w)
		return
	}
	users, err := s.usersForTagQuery(r, false)
	if err != nil {
		err.write(w)
		return
	}
	ids := make([]int, len(users))
	for i, u := range users {
		ids[i] = u.id
	}
	writeSuccess(w, "haplo:api-v0:user:find-by-tag", field{"users", ids})
}

func (s *Server) handleGetGroup(w http.ResponseWriter, r *http.Request, c *caller, args []string) {
	if len(args) == 0 {
		badRequest(w)
		return
	}
	if !c.userAPI {
		errNotPermitted.write(w)
		return
	}
	g, err := s.groupForCode(args[0])
	if err != nil {
		err.write(w)
		return
	}
	if g == nil {
		errNoResponse.write(w)
		return
	}
	writeSuccess(w, "haplo:api-v0:user:group-details", field{"users", s.activeMembers(g)}, field{"group", s.details(g)})
}

// activeMembers is loadAllMembers: the ids of the group's active users
// (every active user for Everyone), ordered by lower-cased name.
func (s *Server) activeMembers(g *principal) []int {
	var members []*principal
	for _, u := range s.sortedUsers() {
		if u.blocked {
			continue
		}
		if g.id == groupEveryone || slices.Contains(u.groups, g.id) {
			members = append(members, u)
		}
	}
	sort.SliceStable(members, func(i, j int) bool {
		return strings.ToLower(members[i].nameFirst+" "+members[i].nameLast) < strings.ToLower(members[j].nameFirst+" "+members[j].nameLast)
	})
	ids := make([]int, len(members))
	for i, m := range members {
		ids[i] = m.id
	}
	return ids
}
