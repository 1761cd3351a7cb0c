package descopetest

import (
	"fmt"
	"strings"
)

// The user store and its loginId index. Every function here runs with s.mu held.

// resolve finds a user by loginId or userId, as the API's loginId keys do. s.mu is
// held.
func (s *Server) resolve(key string) *User {
	if key == "" {
		return nil
	}
	if id, ok := s.logins[strings.ToLower(key)]; ok {
		return s.users[id]
	}
	return s.users[key]
}

// insert stores a new user, giving it a userId and creation time. s.mu is held.
func (s *Server) insert(u *User) {
	s.nextID++
	if u.UserID == "" {
		u.UserID = fmt.Sprintf("U2%08d", s.nextID)
	}
	u.seq = s.nextID
	if u.CreatedTime == 0 {
		u.CreatedTime = s.opt.Now().Unix()
	}
	s.users[u.UserID] = u
	for _, l := range u.LoginIDs {
		s.logins[strings.ToLower(l)] = u.UserID
	}
}

// remove deletes a user. s.mu is held.
func (s *Server) remove(u *User) {
	for _, l := range u.LoginIDs {
		delete(s.logins, strings.ToLower(l))
	}
	delete(s.users, u.UserID)
}

// setLoginIDs replaces a user's login ids. s.mu is held; the caller checked that the
// new ones are free.
func (s *Server) setLoginIDs(u *User, ids []string) {
	for _, l := range u.LoginIDs {
		delete(s.logins, strings.ToLower(l))
	}
	u.LoginIDs = ids
	for _, l := range ids {
		s.logins[strings.ToLower(l)] = u.UserID
	}
}

// takenBy returns the user other than self that holds loginId. s.mu is held.
func (s *Server) takenBy(loginID string, self *User) *User {
	u := s.resolveLogin(loginID)
	if u == nil || u == self {
		return nil
	}
	return u
}

// resolveLogin finds a user by loginId only. s.mu is held.
func (s *Server) resolveLogin(loginID string) *User {
	if id, ok := s.logins[strings.ToLower(loginID)]; ok {
		return s.users[id]
	}
	return nil
}

// emailTakenBy returns another user with this email, when Options.UniqueEmails is
// set. s.mu is held.
func (s *Server) emailTakenBy(email string, self *User) *User {
	if !s.opt.UniqueEmails || email == "" {
		return nil
	}
	for _, u := range s.users {
		if u != self && strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}
