package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/rosterd/rosterd/state"
)

// routeDirectory registers the recipient store of SPEC §8: the applied
// snapshot's users and groups, read-only. Lists are in id order and their
// cursor is the last object's id, so a page boundary stays put while
// batches are applied: an object present before and after is listed
// exactly once; one created or deleted meanwhile may or may not appear.
//
// GET /users takes email= (case-insensitive, exact) besides state=.
func (s *Server) routeDirectory() {
	s.handle("GET /v1/organizations/{org}/users", s.listUsers)
	s.handle("GET /v1/organizations/{org}/users/{id}", s.getUser)
	s.handle("GET /v1/organizations/{org}/users/{id}/groups", s.listUserGroups)
	s.handle("GET /v1/organizations/{org}/groups", s.listGroups)
	s.handle("GET /v1/organizations/{org}/groups/{id}", s.getGroup)
	s.handle("GET /v1/organizations/{org}/groups/{id}/users", s.listGroupUsers)
}

// objectID reads the id of a directory object for the list cursor.
func objectID(raw json.RawMessage) string {
	var o struct {
		ID string `json:"id"`
	}
	json.Unmarshal(raw, &o)
	return o.ID
}

// orgExists answers 404 and returns false when the path's organization
// does not exist.
func (s *Server) orgExists(w http.ResponseWriter, r *http.Request) (string, bool) {
	org := r.PathValue("org")
	if _, err := s.cfg.DB.Org(org); err != nil {
		s.stateError(w, r, "organization "+org, err)
		return "", false
	}
	return org, true
}

// directoryList answers one page fetched by fetch(after, limit+1).
func (s *Server) directoryList(w http.ResponseWriter, r *http.Request, what string, fetch func(org, after string, limit int) ([]json.RawMessage, error)) {
	org, ok := s.orgExists(w, r)
	if !ok {
		return
	}
	after, limit, ok := s.page(w, r)
	if !ok {
		return
	}
	items, err := fetch(org, after, limit+1)
	if err != nil {
		s.stateError(w, r, what, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(items, limit, objectID))
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	st := r.URL.Query().Get("state")
	if st != "" && st != "active" && st != "inactive" {
		s.error(w, r, http.StatusBadRequest, "invalid_state", `state must be "active" or "inactive"`, nil)
		return
	}
	email := r.URL.Query().Get("email")
	s.directoryList(w, r, "users", func(org, after string, limit int) ([]json.RawMessage, error) {
		if email != "" {
			return s.usersByEmail(org, st, email, after, limit)
		}
		return s.cfg.DB.Users(org, st, after, limit)
	})
}

// usersByEmail returns up to limit users after after whose email is email
// (case-insensitive). The snapshot has no email index: it reads the users
// in id order, so a search costs a pass over them.
func (s *Server) usersByEmail(org, st, email, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for {
		page, err := s.cfg.DB.Users(org, st, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, raw := range page {
			var u struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			}
			if err := json.Unmarshal(raw, &u); err != nil {
				return nil, err
			}
			after = u.ID
			if strings.EqualFold(u.Email, email) {
				if out = append(out, raw); len(out) == limit {
					return out, nil
				}
			}
		}
		if len(page) < 1000 {
			return out, nil
		}
	}
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	s.directoryList(w, r, "groups", s.cfg.DB.Groups)
}

func (s *Server) listUserGroups(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.directoryList(w, r, "user "+id, func(org, after string, limit int) ([]json.RawMessage, error) {
		return s.cfg.DB.UserGroups(org, id, after, limit)
	})
}

func (s *Server) listGroupUsers(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.directoryList(w, r, "group "+id, func(org, after string, limit int) ([]json.RawMessage, error) {
		return s.cfg.DB.GroupUsers(org, id, after, limit)
	})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	s.directoryObject(w, r, "user", s.cfg.DB.User)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	s.directoryObject(w, r, "group", s.cfg.DB.Group)
}

func (s *Server) directoryObject(w http.ResponseWriter, r *http.Request, what string, get func(org, id string) (json.RawMessage, error)) {
	org, ok := s.orgExists(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	obj, err := get(org, id)
	if errors.Is(err, state.ErrNotFound) {
		s.error(w, r, http.StatusNotFound, "not_found", what+" "+id+" not found", nil)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, obj)
}
