package httpapi

// routeEvents registers the events routes; owned by the ingest engineer.
func (s *Server) routeEvents() {}
