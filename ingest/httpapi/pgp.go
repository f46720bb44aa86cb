package httpapi

import (
	"errors"
	"net/http"

	"github.com/rosterd/rosterd/ingest"
)

// The organization's OpenPGP set-up for encrypted uploads (SPEC §4,
// `rosterd org pgp`): its key pair, made here, and the customer's signing
// keys.
func (s *Server) routePGP() {
	s.handle("GET /v1/organizations/{org}/pgp", s.getPGP)
	s.handle("POST /v1/organizations/{org}/pgp", s.generatePGP)
	s.handle("POST /v1/organizations/{org}/pgp/signers", s.addPGPSigners)
	s.handle("DELETE /v1/organizations/{org}/pgp/signers/{fingerprint}", s.removePGPSigner)
}

func (s *Server) pgpPipeline(w http.ResponseWriter, r *http.Request) *ingest.Pipeline {
	if s.cfg.Pipeline == nil {
		s.error(w, r, http.StatusServiceUnavailable, "unavailable", "the ingest pipeline is not running", nil)
	}
	return s.cfg.Pipeline
}

func (s *Server) getPGP(w http.ResponseWriter, r *http.Request) {
	p := s.pgpPipeline(w, r)
	if p == nil {
		return
	}
	info, err := p.PGP(r.PathValue("org"))
	if err != nil {
		s.stateError(w, r, "organization "+r.PathValue("org"), err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// generatePGPRequest asks for a key pair: algorithm "rsa" (default) or
// "ecc"; rotate makes a new one beside an existing one.
type generatePGPRequest struct {
	Algorithm string `json:"algorithm"`
	Rotate    bool   `json:"rotate"`
}

// generatePGP makes the organization's key pair if it has none (201), or
// answers the one it has (200).
func (s *Server) generatePGP(w http.ResponseWriter, r *http.Request) {
	p := s.pgpPipeline(w, r)
	if p == nil {
		return
	}
	var req generatePGPRequest
	if r.ContentLength != 0 && !s.readJSON(w, r, &req) {
		return
	}
	info, created, err := p.GeneratePGPKey(r.PathValue("org"), req.Algorithm, req.Rotate)
	switch {
	case errors.Is(err, ingest.ErrPGPKeyFile):
		s.error(w, r, http.StatusConflict, "key_file", err.Error()+": generate keys where that file is kept, or clear the setting", nil)
		return
	case errors.Is(err, ingest.ErrBadPGPKey):
		s.error(w, r, http.StatusBadRequest, "invalid_request", err.Error(), nil)
		return
	case err != nil:
		s.stateError(w, r, "organization "+r.PathValue("org"), err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, info)
}

func (s *Server) addPGPSigners(w http.ResponseWriter, r *http.Request) {
	p := s.pgpPipeline(w, r)
	if p == nil {
		return
	}
	var req struct {
		PublicKey string `json:"public_key"`
	}
	if !s.readJSON(w, r, &req) {
		return
	}
	added, err := p.AddPGPSigners(r.PathValue("org"), []byte(req.PublicKey))
	switch {
	case errors.Is(err, ingest.ErrBadPGPKey):
		s.error(w, r, http.StatusBadRequest, "invalid_key", err.Error(), nil)
		return
	case err != nil:
		s.stateError(w, r, "organization "+r.PathValue("org"), err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": added})
}

func (s *Server) removePGPSigner(w http.ResponseWriter, r *http.Request) {
	p := s.pgpPipeline(w, r)
	if p == nil {
		return
	}
	if err := p.RemovePGPSigner(r.PathValue("org"), r.PathValue("fingerprint")); err != nil {
		s.stateError(w, r, "signing key "+r.PathValue("fingerprint"), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
