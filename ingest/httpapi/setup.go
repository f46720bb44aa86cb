package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/rosterd/rosterd/state"
)

// The routes a setup link opens (SPEC §10), with the link's token as the
// bearer token instead of the API token, for the link's organization only:
//
//	GET    /v1/setup                      the organization, its visible keys, recent batches and uploads
//	GET    /v1/setup/batches/{id}         a batch with its report
//	POST   /v1/setup/keys                 {"public_key": "..."}: add keys, as the admin
//	DELETE /v1/setup/keys/{fingerprint}   remove a visible key
//	POST   /v1/setup/plan                 multipart files: the dry run, nothing applied
//
// The organization comes from the link, never from the request, so a
// link reaches no other organization. The admin sees and removes only
// the keys added through setup links, unless the organization's setting
// setup_all_keys lets them manage the operator's too. Every request
// counts as a use of the link and is audited (setup.open, setup.report,
// setup.key_added, setup.key_removed, setup.check); a request with an
// expired or revoked link is refused with 410, audited as
// setup.refused, and changes nothing. The first use of a link made with
// create_organization creates the organization.
//
// The web setup page (package web) makes these same requests.
func (s *Server) routeSetup() {
	s.handleSetup("GET /v1/setup", s.setupOverview)
	s.handleSetup("GET /v1/setup/batches/{id}", s.setupBatch)
	s.handleSetup("POST /v1/setup/keys", s.setupAddKeys)
	s.handleSetup("DELETE /v1/setup/keys/{fingerprint...}", s.setupRemoveKey)
	s.handleSetup("POST /v1/setup/plan", s.setupPlan)
}

// Audit events of setup link uses.
const (
	AuditSetupOpen       = "setup.open"
	AuditSetupReport     = "setup.report"
	AuditSetupKeyAdded   = "setup.key_added"
	AuditSetupKeyRemoved = "setup.key_removed"
	AuditSetupCheck      = "setup.check"
	AuditSetupRefused    = "setup.refused"
)

// setupHandler handles a request made with a valid setup link.
type setupHandler func(w http.ResponseWriter, r *http.Request, l state.SetupLink)

// handleSetup registers a route a setup link opens: it checks the token,
// counts the use (creating the organization on a create link's first
// use) and calls h with the link.
func (s *Server) handleSetup(pattern string, h setupHandler) {
	s.route(pattern, func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !ValidSetupToken(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rosterd setup"`)
			s.error(w, r, http.StatusUnauthorized, "invalid_setup_link", "this setup link is not valid: check that it was copied whole, or ask for a new one", nil)
			return
		}
		l, created, err := s.cfg.DB.UseSetupLink(hashSetupToken(tok))
		if err != nil {
			s.setupRefused(w, r, l, err)
			return
		}
		if created {
			if err := s.makeOrgFolder(l.Org); err != nil {
				s.internal(w, r, err)
				return
			}
			s.log.Info("organization created", "org", l.Org, "setup_link", l.ID)
		}
		h(w, r, l)
	})
}

// setupRefused answers a link that cannot be used.
func (s *Server) setupRefused(w http.ResponseWriter, r *http.Request, l state.SetupLink, err error) {
	day := func(t time.Time) string { return t.UTC().Format("2 January 2006 15:04 UTC") }
	switch {
	case errors.Is(err, state.ErrNotFound):
		w.Header().Set("WWW-Authenticate", `Bearer realm="rosterd setup"`)
		s.error(w, r, http.StatusUnauthorized, "invalid_setup_link", "this setup link is not valid: check that it was copied whole, or ask for a new one", nil)
	case errors.Is(err, state.ErrLinkExpired):
		s.audit(r, state.AuditRecord{Org: l.Org, Event: AuditSetupRefused, SetupLink: l.ID, Reason: "expired"})
		s.error(w, r, http.StatusGone, "setup_link_expired", "this setup link expired on "+day(l.ExpiresAt)+"; ask for a new one", nil)
	case errors.Is(err, state.ErrLinkRevoked):
		s.audit(r, state.AuditRecord{Org: l.Org, Event: AuditSetupRefused, SetupLink: l.ID, Reason: "revoked"})
		s.error(w, r, http.StatusGone, "setup_link_revoked", "this setup link was withdrawn on "+day(*l.RevokedAt)+"; ask for a new one", nil)
	case errors.Is(err, state.ErrOrgGone):
		s.error(w, r, http.StatusGone, "organization_removed", "the organization of this setup link was removed", nil)
	default:
		s.internal(w, r, err)
	}
}

// SetupView is what GET /v1/setup answers: everything the setup page
// shows about the link's organization.
type SetupView struct {
	Object       string        `json:"object"`
	Link         SetupLinkView `json:"link"`
	Organization Organization  `json:"organization"`
	// Keys are the keys the admin may see and remove.
	Keys []KeyView `json:"keys"`
	// AllKeys says whether Keys holds the operator's keys too
	// (setting setup_all_keys).
	AllKeys bool `json:"all_keys"`
	// Batches are the newest batches, newest first, without reports.
	Batches []BatchView `json:"batches"`
	// Uploads are the newest completed and discarded uploads.
	Uploads []AuditView `json:"uploads"`
}

// setupRecent is how many batches and uploads GET /v1/setup lists.
const setupRecent = 20

func (s *Server) setupOverview(w http.ResponseWriter, r *http.Request, l state.SetupLink) {
	s.audit(r, state.AuditRecord{Org: l.Org, Event: AuditSetupOpen, SetupLink: l.ID})
	o, err := s.cfg.DB.Org(l.Org)
	if err != nil {
		s.stateError(w, r, "organization "+l.Org, err)
		return
	}
	keys, err := s.visibleKeys(o)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	bs, err := s.cfg.DB.Batches(l.Org, "", setupRecent)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	ups, err := s.recentAudit(l.Org, setupRecent, "upload", "upload.discarded")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	v := SetupView{
		Object: "setup", Link: setupLinkView(l, time.Now()), Organization: orgView(o),
		Keys: keys, AllKeys: allKeys(o), Batches: make([]BatchView, len(bs)), Uploads: make([]AuditView, len(ups)),
	}
	for i, b := range bs {
		v.Batches[i] = BatchView{Object: "batch", Batch: adminBatch(b)}
	}
	for i, u := range ups {
		v.Uploads[i] = auditView(u)
	}
	writeJSON(w, http.StatusOK, v)
}

func allKeys(o state.Org) bool {
	return o.Settings.SetupAllKeys != nil && *o.Settings.SetupAllKeys
}

// visibleKeys are the keys of o that its admin may see on the setup page.
func (s *Server) visibleKeys(o state.Org) ([]KeyView, error) {
	keys, err := s.keyViews(o.Name)
	if err != nil {
		return nil, err
	}
	out := []KeyView{}
	for _, k := range keys {
		if allKeys(o) || k.AddedBy == state.KeyAddedBySetupLink {
			out = append(out, k)
		}
	}
	return out, nil
}

func (s *Server) setupBatch(w http.ResponseWriter, r *http.Request, l state.SetupLink) {
	id := r.PathValue("id")
	s.audit(r, state.AuditRecord{Org: l.Org, Event: AuditSetupReport, SetupLink: l.ID, Target: id})
	v, err := s.batchView(l.Org, id)
	if err != nil {
		s.stateError(w, r, "batch "+id, err)
		return
	}
	v.Batch, v.Report = adminBatch(v.Batch), adminReport(v.Report)
	writeJSON(w, http.StatusOK, v)
}

// adminBatch is a batch record as the organization's admin sees it:
// without last_error, the server's own error (a path of the data
// directory, a bug) that failed a run of the batch, which is for the
// operator; the report says in plain words that the batch is retried.
func adminBatch(b state.Batch) state.Batch {
	b.LastError = ""
	return b
}

// adminReport is a stored report as the organization's admin reads it in
// /reports/: without the notes meant for the operator (operator_notes,
// such as the command that approves a held batch).
func adminReport(raw json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m["operator_notes"] == nil {
		return raw
	}
	delete(m, "operator_notes")
	out, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return out
}

func (s *Server) setupAddKeys(w http.ResponseWriter, r *http.Request, l state.SetupLink) {
	views, ok := s.addKeysAs(w, r, l.Org, state.KeyAddedBySetupLink, l.ID)
	if !ok {
		return
	}
	for _, v := range views {
		s.audit(r, state.AuditRecord{Org: l.Org, Event: AuditSetupKeyAdded, SetupLink: l.ID, KeyFP: v.Fingerprint})
	}
	writeJSON(w, http.StatusCreated, List[KeyView]{Data: views})
}

func (s *Server) setupRemoveKey(w http.ResponseWriter, r *http.Request, l state.SetupLink) {
	fp := r.PathValue("fingerprint")
	if !strings.HasPrefix(fp, "SHA256:") {
		fp = "SHA256:" + fp
	}
	o, err := s.cfg.DB.Org(l.Org)
	if err != nil {
		s.stateError(w, r, "organization "+l.Org, err)
		return
	}
	keys, err := s.visibleKeys(o)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	visible := false
	for _, k := range keys {
		visible = visible || k.Fingerprint == fp
	}
	if !visible {
		// A key the admin may not see answers as if it did not exist.
		s.error(w, r, http.StatusNotFound, "not_found", "key "+fp+" not found", nil)
		return
	}
	if err := s.cfg.DB.RemoveKey(l.Org, fp); err != nil {
		s.stateError(w, r, "key "+fp, err)
		return
	}
	s.audit(r, state.AuditRecord{Org: l.Org, Event: AuditSetupKeyRemoved, SetupLink: l.ID, KeyFP: fp})
	s.log.Info("key removed", "org", l.Org, "key_fp", fp, "setup_link", l.ID, "sessions_closed", s.revoke(l.Org, fp))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setupPlan(w http.ResponseWriter, r *http.Request, l state.SetupLink) {
	s.audit(r, state.AuditRecord{Org: l.Org, Event: AuditSetupCheck, SetupLink: l.ID})
	r.SetPathValue("org", l.Org)
	s.plan(w, r)
}

// recentAudit returns up to n of org's newest audit records whose event
// is one of events, reading at most AuditKeep records.
func (s *Server) recentAudit(org string, n int, events ...string) ([]state.AuditRecord, error) {
	var out []state.AuditRecord
	after := ""
	for read := 0; len(out) < n && read < state.AuditKeep; {
		page, err := s.cfg.DB.AuditRecords(org, after, 500, state.NewestFirst)
		if err != nil {
			return nil, err
		}
		for _, rec := range page {
			for _, e := range events {
				if rec.Event == e && len(out) < n {
					out = append(out, rec)
				}
			}
		}
		if len(page) < 500 {
			break
		}
		read += len(page)
		after = page[len(page)-1].ID
	}
	return out, nil
}
