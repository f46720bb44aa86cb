package httpapi

// routeDirectory registers the directory routes; owned by the delivery engineer.
func (s *Server) routeDirectory() {}
