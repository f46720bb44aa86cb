package httpapi

// routeBatches registers the batches routes; owned by the ingest engineer.
func (s *Server) routeBatches() {}
