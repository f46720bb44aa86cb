package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (s *Server) routeHealth() {
	s.route("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.route("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Ready != nil && !s.cfg.Ready() {
			s.error(w, r, http.StatusServiceUnavailable, "not_ready", "starting up or shutting down", nil)
			return
		}
		if s.cfg.Space != nil {
			if err := s.cfg.Space.LowDisk(); err != nil {
				s.error(w, r, http.StatusServiceUnavailable, "low_disk", err.Error(), nil)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if s.cfg.Gatherer != nil {
		s.route("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}).ServeHTTP)
	}
}
