package httpapi

// routeWebhooks registers the webhooks routes; owned by the delivery engineer.
func (s *Server) routeWebhooks() {}
