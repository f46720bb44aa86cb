package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/rosterd/rosterd/state"
)

// routeEvents registers the events feed (SPEC §7, pull).
func (s *Server) routeEvents() {
	s.handle("GET /v1/events", s.listEvents)
}

// listEvents answers events in id order (emission order) after the
// cursor, for all organizations or one (organization_id). The stored JSON
// is sent as it is. since (RFC 3339), when there is no cursor, starts at
// the events committed from that time on.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := s.page(w, r)
	if !ok {
		return
	}
	if v := r.URL.Query().Get("since"); v != "" && after == "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.error(w, r, http.StatusBadRequest, "invalid_since", "since must be a time such as 2026-11-22T01:02:03Z", nil)
			return
		}
		after = state.EventIDAt(t)
	}
	org := r.URL.Query().Get("organization_id")
	var evs []json.RawMessage
	var ids []string
	err := s.cfg.DB.ForEachEventJSON(org, after, limit+1, func(id string, raw []byte) error {
		evs = append(evs, bytes.Clone(raw))
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	l := List[json.RawMessage]{Data: evs}
	if l.Data == nil {
		l.Data = []json.RawMessage{}
	}
	if len(evs) > limit {
		l.Data = evs[:limit]
		c := ids[limit-1]
		l.ListMetadata.After = &c
	}
	writeJSON(w, http.StatusOK, l)
}
