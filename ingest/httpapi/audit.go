package httpapi

import (
	"net/http"

	"github.com/rosterd/rosterd/state"
)

// routeAudit registers the audit trail of the SFTP side, an addition to
// SPEC §8's list (SPEC §3: kept for the API):
//
//	GET /v1/organizations/{org}/audit?after=&limit=&order=
//
// It lists the organization's sessions (session.start, session.end),
// uploads (upload with file, bytes, sha256 and duration; upload.discarded
// with the reason), renames, removals, refused requests and refused logins
// (auth.failure, under the organization the client named), newest first;
// order=asc lists oldest first, so that paging with the last id follows
// the trail as it grows. The cursor is the last id of a page. The daemon
// keeps each organization's newest state.AuditKeep records, and writes
// them about once a second, so a record can appear up to a second after
// the event. An unknown organization answers 404.
func (s *Server) routeAudit() {
	s.handle("GET /v1/organizations/{org}/audit", s.listAudit)
}

// AuditView is the API's view of an audit record.
type AuditView struct {
	Object         string  `json:"object"`
	ID             string  `json:"id"`
	OrganizationID string  `json:"organization_id"`
	Time           string  `json:"time"`
	Event          string  `json:"event"`
	RemoteAddr     string  `json:"remote_addr,omitempty"`
	KeyFP          string  `json:"key_fingerprint,omitempty"`
	Session        string  `json:"session,omitempty"`
	File           string  `json:"file,omitempty"`
	Target         string  `json:"target,omitempty"`
	Bytes          *int64  `json:"bytes,omitempty"`
	SHA256         string  `json:"sha256,omitempty"`
	DurationMS     float64 `json:"duration_ms,omitempty"`
	Reason         string  `json:"reason,omitempty"`
	SetupLink      string  `json:"setup_link,omitempty"`
}

// fileEvents are the events whose Bytes is meaningful even when zero (an
// empty upload).
var fileEvents = map[string]bool{"upload": true, "upload.discarded": true, "rename": true, "remove": true}

func auditView(r state.AuditRecord) AuditView {
	v := AuditView{
		Object: "audit_record", ID: r.ID, OrganizationID: r.Org, Time: r.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
		Event: r.Event, RemoteAddr: r.RemoteAddr, KeyFP: r.KeyFP, Session: r.Session, File: r.File, Target: r.Target,
		SHA256: r.SHA256, DurationMS: float64(r.Duration.Microseconds()) / 1000, Reason: r.Reason,
		SetupLink: r.SetupLink,
	}
	if fileEvents[r.Event] {
		v.Bytes = &r.Bytes
	}
	return v
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := s.page(w, r)
	if !ok {
		return
	}
	order := state.NewestFirst
	switch r.URL.Query().Get("order") {
	case "", "desc":
	case "asc":
		order = state.OldestFirst
	default:
		s.error(w, r, http.StatusBadRequest, "invalid_order", "order must be asc or desc", nil)
		return
	}
	org := r.PathValue("org")
	recs, err := s.cfg.DB.AuditRecords(org, after, limit+1, order)
	if err != nil {
		s.stateError(w, r, "organization "+org, err)
		return
	}
	views := make([]AuditView, len(recs))
	for i, rec := range recs {
		views[i] = auditView(rec)
	}
	writeJSON(w, http.StatusOK, newList(views, limit, func(v AuditView) string { return v.ID }))
}
