package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
)

// Setup links (SPEC §10), an addition to SPEC §8's list. The operator's
// routes, with the API token:
//
//	POST   /v1/organizations/{org}/setup_links        {"expires_in": "7d", "create_organization": false}
//	GET    /v1/organizations/{org}/setup_links
//	DELETE /v1/organizations/{org}/setup_links/{id}   (revokes; the record stays)
//
// The token and the page's URL are in the creation's answer only: the
// store keeps the token's SHA-256. The routes a link opens are in
// setup.go.
func (s *Server) routeSetupLinks() {
	s.handle("POST /v1/organizations/{org}/setup_links", s.createSetupLink)
	s.handle("GET /v1/organizations/{org}/setup_links", s.listSetupLinks)
	s.handle("DELETE /v1/organizations/{org}/setup_links/{id}", s.revokeSetupLink)
}

// Bounds and default of a setup link's lifetime.
const (
	DefaultSetupLinkTTL = 7 * 24 * time.Hour
	MaxSetupLinkTTL     = 90 * 24 * time.Hour
)

// SetupLinkView is the API's view of a setup link. URL and Token are set
// only in the answer that created the link.
type SetupLinkView struct {
	Object                string     `json:"object"`
	ID                    string     `json:"id"`
	OrganizationID        string     `json:"organization_id"`
	URL                   string     `json:"url,omitempty"`
	Token                 string     `json:"token,omitempty"`
	Status                string     `json:"status"` // active, expired or revoked
	CreateOrganization    bool       `json:"create_organization"`
	OrganizationCreatedAt *time.Time `json:"organization_created_at"`
	CreatedAt             time.Time  `json:"created_at"`
	ExpiresAt             time.Time  `json:"expires_at"`
	RevokedAt             *time.Time `json:"revoked_at"`
	LastUsedAt            *time.Time `json:"last_used_at"`
	Uses                  int        `json:"uses"`
}

func setupLinkView(l state.SetupLink, now time.Time) SetupLinkView {
	v := SetupLinkView{
		Object: "setup_link", ID: l.ID, OrganizationID: l.Org, Status: "active",
		CreateOrganization: l.CreateOrg, OrganizationCreatedAt: l.OrgCreatedAt,
		CreatedAt: l.CreatedAt, ExpiresAt: l.ExpiresAt, RevokedAt: l.RevokedAt, LastUsedAt: l.LastUsedAt, Uses: l.Uses,
	}
	switch {
	case l.RevokedAt != nil:
		v.Status = "revoked"
	case !now.Before(l.ExpiresAt):
		v.Status = "expired"
	}
	return v
}

// ParseTTL reads a setup link's lifetime: a Go duration ("36h", "90m") or
// a number of days ("7d").
func ParseTTL(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration such as \"7d\" or \"36h\"", v)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as \"7d\" or \"36h\"", v)
	}
	return d, nil
}

func (s *Server) createSetupLink(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	var req struct {
		ExpiresIn          string `json:"expires_in"`
		CreateOrganization bool   `json:"create_organization"`
	}
	if r.ContentLength != 0 && !s.readJSON(w, r, &req) {
		return
	}
	if !sftpd.ValidOrgName(org) {
		s.error(w, r, http.StatusBadRequest, "invalid_name",
			fmt.Sprintf("organization name %q: use 1 to 63 lowercase letters, digits and dashes, starting with a letter or digit", org), nil)
		return
	}
	ttl := DefaultSetupLinkTTL
	if req.ExpiresIn != "" {
		d, err := ParseTTL(req.ExpiresIn)
		if err == nil && (d <= 0 || d > MaxSetupLinkTTL) {
			err = fmt.Errorf("%s is not between 1s and 90d", req.ExpiresIn)
		}
		if err != nil {
			s.error(w, r, http.StatusBadRequest, "invalid_expires_in", "expires_in: "+err.Error(), nil)
			return
		}
		ttl = d
	}
	token, sum := newSetupToken()
	now := time.Now().UTC()
	l := state.SetupLink{
		ID: newSetupLinkID(), Org: org, TokenSHA256: sum, CreateOrg: req.CreateOrganization,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if err := s.cfg.DB.CreateSetupLink(l); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			s.error(w, r, http.StatusNotFound, "not_found",
				"organization "+org+" not found (create_organization makes the link create it on first use)", nil)
			return
		}
		s.internal(w, r, err)
		return
	}
	s.audit(r, state.AuditRecord{Org: org, Event: "setup_link.created", SetupLink: l.ID, Reason: "expires " + l.ExpiresAt.Format(time.RFC3339)})
	s.log.Info("setup link created", "org", org, "setup_link", l.ID, "expires_at", l.ExpiresAt)
	v := setupLinkView(l, now)
	v.Token = token
	v.URL = s.publicURL(r) + "/setup/" + token
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listSetupLinks(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	links, err := s.cfg.DB.SetupLinks(org)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if len(links) == 0 {
		if _, err := s.cfg.DB.Org(org); err != nil {
			s.stateError(w, r, "organization "+org, err)
			return
		}
	}
	now := time.Now()
	views := make([]SetupLinkView, len(links))
	for i, l := range links {
		views[i] = setupLinkView(l, now)
	}
	writeJSON(w, http.StatusOK, List[SetupLinkView]{Data: views})
}

func (s *Server) revokeSetupLink(w http.ResponseWriter, r *http.Request) {
	org, id := r.PathValue("org"), r.PathValue("id")
	l, err := s.cfg.DB.RevokeSetupLink(org, id)
	if err != nil {
		s.stateError(w, r, "setup link "+id+" of organization "+org, err)
		return
	}
	s.audit(r, state.AuditRecord{Org: org, Event: "setup_link.revoked", SetupLink: id})
	s.log.Info("setup link revoked", "org", org, "setup_link", id)
	writeJSON(w, http.StatusOK, setupLinkView(l, time.Now()))
}

// publicURL is where the daemon's pages are reached: Config.PublicURL, or
// the scheme and host the request came with.
func (s *Server) publicURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// setupTokenLen is the length of a token: 32 random bytes, base64url.
const setupTokenLen = 43

// newSetupToken returns a new token and its SHA-256 in hex.
func newSetupToken() (token, sum string) {
	b := make([]byte, 32)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashSetupToken(token)
}

func hashSetupToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ValidSetupToken reports whether tok has the form of a setup link's
// token, so that other strings are refused before any lookup.
func ValidSetupToken(tok string) bool {
	if len(tok) != setupTokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(tok)
	return err == nil
}

func newSetupLinkID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "sl_" + hex.EncodeToString(b)
}

// audit appends one record to the organization's audit trail with the
// request's address. A failure is logged: the action it records is done.
func (s *Server) audit(r *http.Request, rec state.AuditRecord) {
	rec.Time = time.Now().UTC()
	rec.RemoteAddr = r.RemoteAddr
	if err := s.cfg.DB.AppendAudit([]state.AuditRecord{rec}, 0); err != nil {
		s.log.Error("audit", "org", rec.Org, "event", rec.Event, "err", err)
	}
}
