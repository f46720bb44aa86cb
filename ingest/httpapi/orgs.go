package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
)

func (s *Server) routeOrgs() {
	s.handle("GET /v1/organizations", s.listOrgs)
	s.handle("POST /v1/organizations", s.createOrg)
	s.handle("GET /v1/organizations/{org}", s.getOrg)
	s.handle("PATCH /v1/organizations/{org}", s.patchOrg)
	s.handle("DELETE /v1/organizations/{org}", s.deleteOrg)
}

// Organization is the API's view of an organization.
type Organization struct {
	Object    string         `json:"object"`
	ID        string         `json:"id"`
	Settings  state.Settings `json:"settings"`
	CreatedAt time.Time      `json:"created_at"`
}

func orgView(o state.Org) Organization {
	return Organization{Object: "organization", ID: o.Name, Settings: o.Settings, CreatedAt: o.CreatedAt}
}

func (s *Server) listOrgs(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := s.page(w, r)
	if !ok {
		return
	}
	orgs, err := s.cfg.DB.Orgs(after, limit+1)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	views := make([]Organization, len(orgs))
	for i, o := range orgs {
		views[i] = orgView(o)
	}
	writeJSON(w, http.StatusOK, newList(views, limit, func(o Organization) string { return o.ID }))
}

// createOrgRequest creates an organization, optionally with its first
// keys (authorized_keys lines or RFC 4716 blocks), in one step.
type createOrgRequest struct {
	Name      string         `json:"name"`
	Settings  state.Settings `json:"settings"`
	PublicKey string         `json:"public_key"`
}

func (s *Server) createOrg(w http.ResponseWriter, r *http.Request) {
	var req createOrgRequest
	if !s.readJSON(w, r, &req) {
		return
	}
	if !sftpd.ValidOrgName(req.Name) {
		s.error(w, r, http.StatusBadRequest, "invalid_name",
			fmt.Sprintf("organization name %q: use 1 to 63 lowercase letters, digits and dashes, starting with a letter or digit", req.Name), nil)
		return
	}
	if msg := validateSettings(req.Settings); msg != "" {
		s.error(w, r, http.StatusBadRequest, "invalid_settings", msg, nil)
		return
	}
	var keys []state.Key
	if req.PublicKey != "" {
		var msg string
		if keys, msg = parseKeys(req.PublicKey); msg != "" {
			s.error(w, r, http.StatusBadRequest, "invalid_key", msg, nil)
			return
		}
	}
	o := state.Org{Name: req.Name, Settings: req.Settings}
	if err := s.cfg.DB.CreateOrg(o); err != nil {
		s.stateError(w, r, "organization "+req.Name, err)
		return
	}
	for _, k := range keys {
		if err := s.cfg.DB.AddKey(req.Name, k); err != nil && !errors.Is(err, state.ErrExists) {
			s.internal(w, r, err)
			return
		}
	}
	if err := s.makeOrgFolder(req.Name); err != nil {
		s.internal(w, r, err)
		return
	}
	o, err := s.cfg.DB.Org(req.Name)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.log.Info("organization created", "org", o.Name, "keys", len(keys))
	writeJSON(w, http.StatusCreated, orgView(o))
}

// makeOrgFolder creates the organization's SFTP root and its reports
// folder, private to the daemon.
func (s *Server) makeOrgFolder(org string) error {
	if s.cfg.OrgsRoot == "" {
		return nil
	}
	return os.MkdirAll(filepath.Join(s.cfg.OrgsRoot, org, "reports"), 0o700)
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request) {
	o, err := s.cfg.DB.Org(r.PathValue("org"))
	if err != nil {
		s.stateError(w, r, "organization "+r.PathValue("org"), err)
		return
	}
	writeJSON(w, http.StatusOK, orgView(o))
}

// patchOrg merges the given settings into the stored ones: a field present
// replaces the stored value, null or "" returns it to the daemon default,
// an absent field is left alone.
func (s *Server) patchOrg(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Settings json.RawMessage `json:"settings"`
	}
	if !s.readJSON(w, r, &req) {
		return
	}
	if len(req.Settings) == 0 {
		s.error(w, r, http.StatusBadRequest, "invalid_settings", `the body must be {"settings": {...}}`, nil)
		return
	}
	var msg string
	o, err := s.cfg.DB.UpdateOrg(r.PathValue("org"), func(o *state.Org) error {
		clearReplacedMaps(&o.Settings, req.Settings)
		dec := json.NewDecoder(bytes.NewReader(req.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o.Settings); err != nil {
			msg = "settings: " + err.Error()
			return errInvalid
		}
		if msg = validateSettings(o.Settings); msg != "" {
			return errInvalid
		}
		return nil
	})
	switch {
	case errors.Is(err, errInvalid):
		s.error(w, r, http.StatusBadRequest, "invalid_settings", msg, nil)
	case err != nil:
		s.stateError(w, r, "organization "+r.PathValue("org"), err)
	default:
		s.log.Info("organization settings changed", "org", o.Name)
		writeJSON(w, http.StatusOK, orgView(o))
	}
}

var errInvalid = errors.New("invalid")

// deleteOrg removes the organization, its keys, snapshot and batches, and
// its SFTP folder, after closing its SFTP sessions. Copies of every processed upload stay in the archive.
func (s *Server) deleteOrg(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	if err := s.cfg.DB.DeleteOrg(org); err != nil {
		s.stateError(w, r, "organization "+org, err)
		return
	}
	closed := s.revoke(org, "")
	if s.cfg.OrgsRoot != "" && sftpd.ValidOrgName(org) {
		if err := os.RemoveAll(filepath.Join(s.cfg.OrgsRoot, org)); err != nil {
			s.internal(w, r, err)
			return
		}
	}
	s.log.Info("organization removed", "org", org, "sessions_closed", closed)
	w.WriteHeader(http.StatusNoContent)
}

// validateSettings returns a message naming the first bad setting, or "".
func validateSettings(st state.Settings) string {
	for name, pats := range map[string][]string{
		"users_patterns": st.UsersPatterns, "user_groups_patterns": st.UserGroupsPatterns, "groups_patterns": st.GroupsPatterns,
	} {
		for _, p := range pats {
			if _, err := path.Match(p, ""); err != nil || p == "" || bytes.ContainsAny([]byte(p), "/\\") {
				return fmt.Sprintf("settings.%s: %q is not a file name pattern (use * and ? as in users_*.csv)", name, p)
			}
		}
	}
	if p := st.DeleteThresholdPercent; p != nil && (*p < 0 || *p > 100) {
		return fmt.Sprintf("settings.delete_threshold_percent: %v is not between 0 and 100", *p)
	}
	if c := st.DeleteThresholdCount; c != nil && *c < 0 {
		return fmt.Sprintf("settings.delete_threshold_count: %d is negative", *c)
	}
	switch st.InactiveUsers {
	case "", "keep", "delete":
	default:
		return fmt.Sprintf(`settings.inactive_users: %q is not "keep" or "delete"`, st.InactiveUsers)
	}
	if q := st.StorageQuota; q != nil && *q <= 0 {
		return fmt.Sprintf("settings.storage_quota: %d is not a positive number of bytes", *q)
	}
	if st.Settle != "" {
		if d, err := time.ParseDuration(st.Settle); err != nil || d < 0 {
			return fmt.Sprintf(`settings.settle: %q is not a duration such as "10s" or "0s"`, st.Settle)
		}
	}
	if st.PGPKeyFile != "" {
		if err := ingest.CheckPGPKeyFile(st.PGPKeyFile); err != nil {
			return "settings.pgp_key_file: " + err.Error()
		}
	}
	if _, err := schema.NewMapping(st.Columns, st.StatusValues, st.DateFormat); err != nil {
		var me *schema.MappingError
		if errors.As(err, &me) {
			return "settings." + strings.Join(me.Problems, "; settings.")
		}
		return "settings: " + err.Error()
	}
	return ""
}

// clearReplacedMaps empties the map settings that raw sets, so that a
// PATCH replaces a map as a whole, like any other setting, instead of
// adding its entries to the stored ones (what decoding into a map does).
func clearReplacedMaps(st *state.Settings, raw json.RawMessage) {
	var present map[string]json.RawMessage
	if json.Unmarshal(raw, &present) != nil {
		return
	}
	if _, ok := present["columns"]; ok {
		st.Columns = nil
	}
	if _, ok := present["status_values"]; ok {
		st.StatusValues = nil
	}
}
