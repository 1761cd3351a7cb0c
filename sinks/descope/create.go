package descope

import (
	"context"
	"errors"
	"fmt"
	"strings"

	dsync "github.com/idsync/idsync/sync"
)

// createBody is a user for create and create/batch, in the SDKs' spelling.
type createBody struct {
	LoginID          string         `json:"loginId"`
	Email            string         `json:"email,omitempty"`
	DisplayName      string         `json:"displayName,omitempty"`
	GivenName        string         `json:"givenName,omitempty"`
	FamilyName       string         `json:"familyName,omitempty"`
	RoleNames        []string       `json:"roleNames,omitempty"`
	UserTenants      []userTenant   `json:"userTenants,omitempty"`
	CustomAttributes map[string]any `json:"customAttributes,omitempty"`
	VerifiedEmail    bool           `json:"verifiedEmail,omitempty"`
	Invite           bool           `json:"invite,omitempty"`
	InviteURL        string         `json:"inviteUrl,omitempty"`
	SendMail         *bool          `json:"sendMail,omitempty"`
}

func (s *Sink) createBody(op *dsync.Op) createBody {
	w := &op.Want
	g := s.grantsOf(w.Groups)
	b := createBody{LoginID: s.loginID(w), Email: w.Email, DisplayName: w.DisplayName, GivenName: w.FirstName,
		FamilyName: w.LastName, RoleNames: g.roleList(), UserTenants: g.tenantList(),
		VerifiedEmail: s.cfg.VerifiedEmail && w.Email != "", Invite: s.cfg.Invite}
	if s.cfg.Invite {
		b.InviteURL, b.SendMail = s.cfg.InviteURL, s.cfg.SendMail
	}
	b.CustomAttributes = s.wantAttributes(w)
	if s.cfg.IDAttribute != "" {
		if b.CustomAttributes == nil {
			b.CustomAttributes = map[string]any{}
		}
		b.CustomAttributes[s.cfg.IDAttribute] = op.ID
	}
	return b
}

// create makes the user: in a batch with the creates running at the same time, or
// alone. A user whose loginId exists is adopted.
func (s *Sink) create(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	if s.batch == nil {
		return s.createOne(ctx, op)
	}
	it := &batchItem{ctx: ctx, body: s.createBody(&op), res: make(chan batchResult, 1)}
	r, err := s.batch.submit(ctx, it)
	if err != nil {
		return dsync.Outcome{}, err
	}
	switch r.kind {
	case resCreated:
		return dsync.Outcome{UserID: r.user.UserID}, nil
	case resAlone:
		return s.createOne(ctx, op)
	case resFailed:
		// Whatever the failure says, the loginId tells whether the user exists: adopt
		// it, or report the failure.
		u, err := s.loadLogin(ctx, it.body.LoginID)
		switch {
		case err == nil:
			return s.adopt(ctx, op, u)
		case errors.Is(err, dsync.ErrNotFound):
			return dsync.Outcome{}, s.refused(ctx, &op, fmt.Errorf("user.create.batch: %s", r.failure))
		}
		return dsync.Outcome{}, err
	case resUnsure:
		// The batch may have acted: look before making the user alone.
		u, err := s.loadLogin(ctx, it.body.LoginID)
		switch {
		case err == nil:
			return s.adopt(ctx, op, u)
		case errors.Is(err, dsync.ErrNotFound):
			return s.createOne(ctx, op)
		}
		return dsync.Outcome{}, fmt.Errorf("%w (after the batch create failed: %v)", err, r.err)
	}
	return dsync.Outcome{}, r.err
}

// createOne makes the user with a create request of its own. The request is not
// repeated once Descope may have acted, so any failure but a refused key or a
// cancelled context is followed by a look-up of the loginId: a user found is adopted;
// none found after a failure that leaves it unsure (5xx, network) is created once more.
// Descope's answer to a loginId that is taken is not documented: any 4xx is taken as
// possibly that.
func (s *Sink) createOne(ctx context.Context, op dsync.Op) (dsync.Outcome, error) {
	body := s.createBody(&op)
	for attempt := 0; ; attempt++ {
		var a userAnswer
		err := s.createCall(ctx, "user.create", "/v1/mgmt/user/create", body, &a)
		if err == nil && a.User.UserID != "" {
			return dsync.Outcome{UserID: a.User.UserID}, nil
		}
		if ctx.Err() != nil || errors.Is(err, dsync.ErrStopSink) {
			return dsync.Outcome{}, err
		}
		u, lerr := s.loadLogin(ctx, body.LoginID)
		switch {
		case lerr == nil:
			return s.adopt(ctx, op, u)
		case !errors.Is(lerr, dsync.ErrNotFound) && err != nil:
			return dsync.Outcome{}, fmt.Errorf("%w (and looking up the loginId: %v)", err, lerr)
		case !errors.Is(lerr, dsync.ErrNotFound):
			return dsync.Outcome{}, lerr
		case err == nil:
			return dsync.Outcome{}, errors.New("user.create: the answer holds no user, and the loginId is not found")
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Status/100 == 4 {
			return dsync.Outcome{}, s.refused(ctx, &op, err)
		}
		if attempt > 0 {
			return dsync.Outcome{}, err
		}
		s.log.Debug("the create failed and made no user: trying once more", "id", op.ID, "err", err)
	}
}

// refused explains a create Descope refused for a user whose loginId is free: another
// user holding the email is a conflict for a person to settle.
func (s *Sink) refused(ctx context.Context, op *dsync.Op, err error) error {
	email := op.Want.Email
	if email == "" || s.cfg.LoginID == "email" {
		return err
	}
	users, serr := s.searchEmail(ctx, email)
	if serr != nil || len(users) == 0 {
		return err
	}
	return fmt.Errorf("%w; the email %q belongs to Descope user %s (loginIds %s): %w", err, email,
		users[0].UserID, strings.Join(users[0].LoginIDs, ", "), dsync.ErrConflict)
}

// adopt takes over the user a create found by its loginId and brings it to the wanted
// state. Descope has no owner mark of its own: the loginId is the adoption key, unless
// id_attribute is set and the user carries another identity's id there.
func (s *Sink) adopt(ctx context.Context, op dsync.Op, u *user) (dsync.Outcome, error) {
	w := &op.Want
	mark := ""
	if s.cfg.IDAttribute != "" {
		if mark = attrString(u.CustomAttributes[s.cfg.IDAttribute]); mark != "" && mark != op.ID {
			return dsync.Outcome{}, fmt.Errorf("loginId %q belongs to Descope user %s, whose %s is %q: %w",
				s.loginID(w), u.UserID, s.cfg.IDAttribute, mark, dsync.ErrConflict)
		}
	}
	patch := map[string]any{}
	if u.Email != w.Email {
		patch["email"] = w.Email
		if s.cfg.VerifiedEmail && w.Email != "" {
			patch["verifiedEmail"] = true
		}
	}
	if u.GivenName != w.FirstName {
		patch["givenName"] = w.FirstName
	}
	if u.FamilyName != w.LastName {
		patch["familyName"] = w.LastName
	}
	if u.Name != w.DisplayName {
		patch["name"] = w.DisplayName
	}
	if err := s.patch(ctx, u.UserID, patch); err != nil {
		return dsync.Outcome{}, err
	}
	if have, want := s.grantsHeld(u), s.grantsOf(w.Groups); !have.equal(want) {
		if err := s.setGrants(ctx, u.UserID, have, want); err != nil {
			return dsync.Outcome{}, err
		}
	}
	want := s.wantAttributes(w)
	keys := s.attributeKeys()
	if s.cfg.IDAttribute != "" {
		if want == nil {
			want = map[string]any{}
		}
		want[s.cfg.IDAttribute] = op.ID
		keys = append(keys, s.cfg.IDAttribute)
	}
	if err := s.setAttributes(ctx, u.UserID, u.CustomAttributes, want, keys); err != nil {
		return dsync.Outcome{}, err
	}
	switch {
	case w.Active && u.Status == "disabled":
		if err := s.setStatus(ctx, u.UserID, "enabled"); err != nil {
			return dsync.Outcome{}, err
		}
	case !w.Active && u.Status != "disabled":
		if err := s.setStatus(ctx, u.UserID, "disabled"); err != nil {
			return dsync.Outcome{}, err
		}
	}
	s.log.Debug("adopted an existing user", "id", op.ID, "user_id", u.UserID)
	return dsync.Outcome{UserID: u.UserID, Adopted: s.cfg.IDAttribute == "" || mark != op.ID}, nil
}

// recreate makes again, at once, a user an update or enable found deleted (E112102),
// as Descope's guidance has it, and returns its new userId.
func (s *Sink) recreate(ctx context.Context, op dsync.Op, cause error) (dsync.Outcome, error) {
	s.log.Warn("the user was deleted in Descope: creating it again", "id", op.ID)
	out, err := s.createOne(ctx, op)
	if err != nil {
		return out, fmt.Errorf("%w (creating again the user Descope no longer has: %v)", err, cause)
	}
	if !op.Want.Active && !out.Adopted {
		if err := s.setStatus(ctx, out.UserID, "disabled"); err != nil {
			return dsync.Outcome{}, err
		}
	}
	return out, nil
}

// sendOne creates a lone user with the single create endpoint and says what became of
// it, in a batch's terms: a 4xx is the user's failure, settled by the caller with a
// look-up of the loginId, as a failed user of a batch is.
func (s *Sink) sendOne(ctx context.Context, it *batchItem) batchResult {
	var a userAnswer
	err := s.createCall(ctx, "user.create", "/v1/mgmt/user/create", it.body, &a)
	var ae *APIError
	switch {
	case err == nil && a.User.UserID != "":
		return batchResult{kind: resCreated, user: a.User}
	case err == nil:
		return batchResult{kind: resUnsure, err: errors.New("user.create: the answer holds no user")}
	case ctx.Err() != nil, errors.Is(err, dsync.ErrStopSink):
		return batchResult{kind: resError, err: err}
	case errors.As(err, &ae) && ae.Status/100 == 4:
		return batchResult{kind: resFailed, failure: err.Error()}
	}
	return batchResult{kind: resUnsure, err: err}
}

// sendBatch sends items as one create/batch request and says what became of each.
func (s *Sink) sendBatch(ctx context.Context, items []*batchItem) []batchResult {
	res := make([]batchResult, len(items))
	if len(items) == 1 {
		// A lone user goes to the single create endpoint, but inside the batcher, so
		// that its create request counts as the batch's (see batcher.inflight).
		res[0] = s.sendOne(ctx, items[0])
		return res
	}
	body := struct {
		Users     []createBody `json:"users"`
		Invite    bool         `json:"invite,omitempty"`
		InviteURL string       `json:"inviteUrl,omitempty"`
		SendMail  *bool        `json:"sendMail,omitempty"`
	}{Invite: s.cfg.Invite}
	if s.cfg.Invite {
		body.InviteURL, body.SendMail = s.cfg.InviteURL, s.cfg.SendMail
	}
	byLogin := make(map[string]int, len(items))
	for i, it := range items {
		body.Users = append(body.Users, it.body)
		byLogin[strings.ToLower(it.body.LoginID)] = i
		res[i].kind = resUnsure // until the answer names it
	}
	var a struct {
		CreatedUsers []user `json:"createdUsers"`
		FailedUsers  []struct {
			Failure string `json:"failure"`
			User    user   `json:"user"`
		} `json:"failedUsers"`
	}
	err := s.createCall(ctx, "user.create.batch", "/v1/mgmt/user/create/batch", body, &a)
	if err != nil {
		kind := resUnsure
		var ae *APIError
		switch {
		case ctx.Err() != nil, errors.Is(err, dsync.ErrStopSink):
			kind = resError
		case errors.As(err, &ae) && ae.Status/100 == 4:
			kind = resAlone // refused whole: nothing was made
		default:
			s.log.Warn("a batch create failed and may have made some users: each is looked up, and created alone if it is not there",
				"users", len(items), "err", err)
		}
		for i := range res {
			res[i] = batchResult{kind: kind, err: err}
		}
		return res
	}
	find := func(u *user) (int, bool) {
		for _, l := range append([]string{u.LoginID}, u.LoginIDs...) {
			if i, ok := byLogin[strings.ToLower(l)]; ok && l != "" {
				return i, true
			}
		}
		return 0, false
	}
	for _, u := range a.CreatedUsers {
		if i, ok := find(&u); ok && u.UserID != "" {
			res[i] = batchResult{kind: resCreated, user: u}
		}
	}
	for _, f := range a.FailedUsers {
		if i, ok := find(&f.User); ok {
			res[i] = batchResult{kind: resFailed, failure: f.Failure}
		}
	}
	return res
}
