package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
)

func (s *Server) routeKeys() {
	s.handle("GET /v1/organizations/{org}/keys", s.listKeys)
	s.handle("POST /v1/organizations/{org}/keys", s.addKeys)
	s.handle("DELETE /v1/organizations/{org}/keys/{fingerprint...}", s.removeKey)
}

// KeyView is the API's view of a key. AddedBy is "operator" or
// "setup_link"; LastUsedAt is the start of the newest SFTP session the
// audit trail holds for the key (nil: none among its records).
type KeyView struct {
	Object string `json:"object"`
	state.Key
	LastUsedAt *time.Time `json:"last_used_at"`
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	views, err := s.keyViews(r.PathValue("org"))
	if err != nil {
		s.stateError(w, r, "organization "+r.PathValue("org"), err)
		return
	}
	writeJSON(w, http.StatusOK, List[KeyView]{Data: views})
}

// keyViews returns org's keys with who added them and when each last
// logged in, read from the audit trail (one pass over it).
func (s *Server) keyViews(org string) ([]KeyView, error) {
	keys, err := s.cfg.DB.Keys(org)
	if err != nil {
		return nil, err
	}
	views := make([]KeyView, len(keys))
	idx := map[string]int{}
	for i, k := range keys {
		if k.AddedBy == "" {
			k.AddedBy = state.KeyAddedByOperator
		}
		views[i] = KeyView{Object: "key", Key: k}
		idx[k.Fingerprint] = i
	}
	sessions, err := s.recentAudit(org, state.AuditKeep, "session.start")
	if err != nil {
		return nil, err
	}
	for _, rec := range sessions {
		if i, ok := idx[rec.KeyFP]; ok && views[i].LastUsedAt == nil {
			t := rec.Time
			views[i].LastUsedAt = &t
		}
	}
	return views, nil
}

// addKeys adds every key in {"public_key": "..."}: one or more
// authorized_keys lines or RFC 4716 blocks. Keys already present are
// reported, not refused, so that re-running an onboarding script is safe.
func (s *Server) addKeys(w http.ResponseWriter, r *http.Request) {
	if views, ok := s.addKeysAs(w, r, r.PathValue("org"), state.KeyAddedByOperator, ""); ok {
		writeJSON(w, http.StatusCreated, List[KeyView]{Data: views})
	}
}

// addKeysAs adds the keys of the request's body to org as added by
// addedBy (through setup link linkID) and returns them; on a bad request
// it answers the error itself and returns false.
func (s *Server) addKeysAs(w http.ResponseWriter, r *http.Request, org, addedBy, linkID string) ([]KeyView, bool) {
	var req struct {
		PublicKey string `json:"public_key"`
	}
	if !s.readJSON(w, r, &req) {
		return nil, false
	}
	keys, msg := parseKeys(req.PublicKey)
	if msg != "" {
		s.error(w, r, http.StatusBadRequest, "invalid_key", msg, nil)
		return nil, false
	}
	views := make([]KeyView, 0, len(keys))
	for _, k := range keys {
		k.AddedBy, k.SetupLink = addedBy, linkID
		err := s.cfg.DB.AddKey(org, k)
		if err != nil && !errors.Is(err, state.ErrExists) {
			s.stateError(w, r, "organization "+org, err)
			return nil, false
		}
		if err == nil {
			s.log.Info("key added", "org", org, "key_fp", k.Fingerprint, "added_by", addedBy)
		}
		views = append(views, KeyView{Object: "key", Key: k})
	}
	return views, true
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
	if strings.Contains(text, "PRIVATE KEY") {
		return nil, "public_key: this is a private key, which must never leave its owner's computer; give the public key (the .pub file) instead"
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
