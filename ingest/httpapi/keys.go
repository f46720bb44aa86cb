package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
)

func (s *Server) routeKeys() {
	s.handle("GET /v1/organizations/{org}/keys", s.listKeys)
	s.handle("POST /v1/organizations/{org}/keys", s.addKeys)
	s.handle("DELETE /v1/organizations/{org}/keys/{fingerprint...}", s.removeKey)
}

// KeyView is the API's view of a key.
type KeyView struct {
	Object string `json:"object"`
	state.Key
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.DB.Keys(r.PathValue("org"))
	if err != nil {
		s.stateError(w, r, "organization "+r.PathValue("org"), err)
		return
	}
	views := make([]KeyView, len(keys))
	for i, k := range keys {
		views[i] = KeyView{"key", k}
	}
	writeJSON(w, http.StatusOK, List[KeyView]{Data: views})
}

// addKeys adds every key in {"public_key": "..."}: one or more
// authorized_keys lines or RFC 4716 blocks. Keys already present are
// reported, not refused, so that re-running an onboarding script is safe.
func (s *Server) addKeys(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	var req struct {
		PublicKey string `json:"public_key"`
	}
	if !s.readJSON(w, r, &req) {
		return
	}
	keys, msg := parseKeys(req.PublicKey)
	if msg != "" {
		s.error(w, r, http.StatusBadRequest, "invalid_key", msg, nil)
		return
	}
	views := make([]KeyView, 0, len(keys))
	for _, k := range keys {
		err := s.cfg.DB.AddKey(org, k)
		if err != nil && !errors.Is(err, state.ErrExists) {
			s.stateError(w, r, "organization "+org, err)
			return
		}
		if err == nil {
			s.log.Info("key added", "org", org, "key_fp", k.Fingerprint)
		}
		views = append(views, KeyView{"key", k})
	}
	writeJSON(w, http.StatusCreated, List[KeyView]{Data: views})
}

func (s *Server) removeKey(w http.ResponseWriter, r *http.Request) {
	org, fp := r.PathValue("org"), r.PathValue("fingerprint")
	if !strings.HasPrefix(fp, "SHA256:") {
		fp = "SHA256:" + fp
	}
	if err := s.cfg.DB.RemoveKey(org, fp); err != nil {
		s.stateError(w, r, "key "+fp+" of organization "+org, err)
		return
	}
	s.log.Info("key removed", "org", org, "key_fp", fp, "sessions_closed", s.revoke(org, fp))
	w.WriteHeader(http.StatusNoContent)
}

// parseKeys turns authorized_keys or RFC 4716 text into keys to store, or
// returns a message for the client.
func parseKeys(text string) ([]state.Key, string) {
	if strings.TrimSpace(text) == "" {
		return nil, "public_key is empty: give an authorized_keys line (ssh-ed25519 AAAA...) or an RFC 4716 block"
	}
	parsed, err := sftpd.ParseKeys([]byte(text))
	if err != nil {
		return nil, "public_key: " + err.Error()
	}
	keys := make([]state.Key, len(parsed))
	for i, p := range parsed {
		keys[i] = state.Key{
			Fingerprint: sftpd.Fingerprint(p.Key),
			Type:        p.Key.Type(),
			Comment:     p.Comment,
			PublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p.Key))),
		}
	}
	return keys, ""
}
