package httpapi

import (
	"errors"
	"net/http"

	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/state"
)

// routeWebhooks registers the webhook routes of SPEC §8. Without a
// Deliverer (no endpoints configured is still a Deliverer) they answer
// 503.
func (s *Server) routeWebhooks() {
	s.handle("GET /v1/webhooks", s.needDeliverer(s.listWebhooks))
	s.handle("GET /v1/webhooks/{id}/failed", s.needDeliverer(s.listFailed))
	s.handle("POST /v1/events/{id}/redeliver", s.needDeliverer(s.redeliver))
}

func (s *Server) needDeliverer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Deliverer == nil {
			s.error(w, r, http.StatusServiceUnavailable, "unavailable", "webhook delivery is not running", nil)
			return
		}
		h(w, r)
	}
}

// WebhookEndpoint is the API's view of an endpoint; never its secret.
type WebhookEndpoint struct {
	Object string `json:"object"`
	webhook.EndpointStatus
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := s.page(w, r)
	if !ok {
		return
	}
	all, err := s.cfg.Deliverer.Endpoints()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var views []WebhookEndpoint
	for _, e := range all {
		if e.ID > after && len(views) <= limit {
			views = append(views, WebhookEndpoint{Object: "webhook_endpoint", EndpointStatus: e})
		}
	}
	writeJSON(w, http.StatusOK, newList(views, limit, func(e WebhookEndpoint) string { return e.ID }))
}

// FailedDelivery is the API's view of an event an endpoint did not accept
// after the last retry.
type FailedDelivery struct {
	Object string `json:"object"`
	state.FailedDelivery
}

func (s *Server) listFailed(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.cfg.Deliverer.HasEndpoint(id) {
		s.error(w, r, http.StatusNotFound, "not_found", "webhook endpoint "+id+" not found", nil)
		return
	}
	after, limit, ok := s.page(w, r)
	if !ok {
		return
	}
	fs, err := s.cfg.DB.FailedDeliveries(id, after, limit+1)
	if err != nil {
		s.stateError(w, r, "webhook endpoint "+id, err)
		return
	}
	views := make([]FailedDelivery, len(fs))
	for i, f := range fs {
		views[i] = FailedDelivery{Object: "failed_delivery", FailedDelivery: f}
	}
	writeJSON(w, http.StatusOK, newList(views, limit, func(f FailedDelivery) string { return f.EventID }))
}

// redeliver sends an event once more, out of band, to the endpoints that
// failed it (or all covering its organization, or ?endpoint=ID), and
// answers each endpoint's outcome.
func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ep := r.URL.Query().Get("endpoint")
	res, err := s.cfg.Deliverer.Redeliver(r.Context(), id, ep)
	switch {
	case errors.Is(err, state.ErrNotFound):
		s.error(w, r, http.StatusNotFound, "not_found", "event "+id+" not found", nil)
	case errors.Is(err, webhook.ErrNoEndpoint):
		s.error(w, r, http.StatusNotFound, "no_endpoint", "no webhook endpoint receives this event's organization", nil)
	case err != nil:
		s.internal(w, r, err)
	default:
		writeJSON(w, http.StatusOK, struct {
			Object string               `json:"object"`
			Event  string               `json:"event_id"`
			Data   []webhook.Redelivery `json:"data"`
		}{"redelivery", id, res})
	}
}
