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

// Organization is the API's view of an organization. Settings are its
// own choices only; the answers about one organization (GET, PATCH) add
// EffectiveSettings and Counts.
type Organization struct {
	Object    string         `json:"object"`
	ID        string         `json:"id"`
	Settings  state.Settings `json:"settings"`
	CreatedAt time.Time      `json:"created_at"`
	// EffectiveSettings are the settings in force: its own, else the
	// daemon's [defaults].
	EffectiveSettings *EffectiveSettings `json:"effective_settings,omitempty"`
	// Counts are the users (and how many are active), groups and
	// memberships of its snapshot.
	Counts *state.SnapshotCounts `json:"counts,omitempty"`
}

// EffectiveSettings are every organization setting with the value in
// force, in the same names and forms as state.Settings.
type EffectiveSettings struct {
	UsersPatterns          []string `json:"users_patterns"`
	UserGroupsPatterns     []string `json:"user_groups_patterns"`
	GroupsPatterns         []string `json:"groups_patterns"`
	DeleteThresholdPercent float64  `json:"delete_threshold_percent"`
	DeleteThresholdCount   int      `json:"delete_threshold_count"`
	InactiveUsers          string   `json:"inactive_users"`
	Settle                 string   `json:"settle"`
	StorageQuota           int64    `json:"storage_quota"` // bytes; 0 or less: none
	SetupAllKeys           bool     `json:"setup_all_keys"`
	// How the organization's exports are read, and its OpenPGP uploads
	// (no daemon default: an empty map or "" is none).
	Columns      map[string]string `json:"columns"`
	StatusValues map[string]string `json:"status_values"`
	DateFormat   string            `json:"date_format"`
	// GroupsFromColumns are the users.csv columns whose values are
	// memberships (SPEC §4, groups derived from users.csv).
	GroupsFromColumns []state.GroupColumn `json:"groups_from_columns"`
	PGPKeyFile        string              `json:"pgp_key_file"`
	RequireSignature  bool                `json:"require_signature"`
}

func orgView(o state.Org) Organization {
	return Organization{Object: "organization", ID: o.Name, Settings: o.Settings, CreatedAt: o.CreatedAt}
}

// orgDetail is orgView with the effective settings and the snapshot's
// counts.
func (s *Server) orgDetail(o state.Org) (Organization, error) {
	v := orgView(o)
	d := ingest.DefaultDefaults
	if s.cfg.Pipeline != nil {
		d = s.cfg.Pipeline.Defaults()
	}
	e := d.Effective(o.Settings)
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	v.EffectiveSettings = &EffectiveSettings{
		UsersPatterns: list(e.UsersPatterns), UserGroupsPatterns: list(e.UserGroupsPatterns), GroupsPatterns: list(e.GroupsPatterns),
		DeleteThresholdPercent: e.DeleteThresholdPercent, DeleteThresholdCount: e.DeleteThresholdCount,
		InactiveUsers: e.InactiveUsers, Settle: e.Settle.String(),
		StorageQuota: ingest.DefaultStorageQuota,
		SetupAllKeys: o.Settings.SetupAllKeys != nil && *o.Settings.SetupAllKeys,
		Columns:      o.Settings.Columns, StatusValues: o.Settings.StatusValues, DateFormat: o.Settings.DateFormat,
		GroupsFromColumns: o.Settings.GroupsFromColumns,
		PGPKeyFile:        o.Settings.PGPKeyFile, RequireSignature: o.Settings.RequireSignature,
	}
	if v.EffectiveSettings.Columns == nil {
		v.EffectiveSettings.Columns = map[string]string{}
	}
	if v.EffectiveSettings.StatusValues == nil {
		v.EffectiveSettings.StatusValues = map[string]string{}
	}
	if v.EffectiveSettings.GroupsFromColumns == nil {
		v.EffectiveSettings.GroupsFromColumns = []state.GroupColumn{}
	}
	if s.cfg.Pipeline != nil {
		v.EffectiveSettings.StorageQuota = s.cfg.Pipeline.QuotaOf(o.Name)
	} else if q := o.Settings.StorageQuota; q != nil {
		v.EffectiveSettings.StorageQuota = *q
	}
	c, err := s.cfg.DB.SnapshotCounts(o.Name)
	if err != nil {
		return v, err
	}
	v.Counts = &c
	return v, nil
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
	v, err := s.orgDetail(o)
	if err != nil {
		s.stateError(w, r, "organization "+o.Name, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
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
		merged, m := mergeSettings(o.Settings, req.Settings)
		if m != "" {
			msg = m
			return errInvalid
		}
		if msg = validateSettings(merged); msg != "" {
			return errInvalid
		}
		o.Settings = merged
		return nil
	})
	switch {
	case errors.Is(err, errInvalid):
		s.error(w, r, http.StatusBadRequest, "invalid_settings", msg, nil)
	case err != nil:
		s.stateError(w, r, "organization "+r.PathValue("org"), err)
	default:
		s.log.Info("organization settings changed", "org", o.Name)
		v, err := s.orgDetail(o)
		if err != nil {
			s.stateError(w, r, "organization "+o.Name, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

var errInvalid = errors.New("invalid")

// mergeSettings applies a PATCH's settings object to cur, field by field
// in their JSON form: a field set to null is removed, so that it returns
// to the daemon default whatever its Go type (decoding null into a
// string would leave it alone), and any other value replaces the stored
// one. It returns a message for the client when patch is not an object
// of known settings.
func mergeSettings(cur state.Settings, patch json.RawMessage) (state.Settings, string) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(patch, &fields); err != nil || fields == nil {
		return cur, "settings: must be an object of settings, such as {\"inactive_users\": \"delete\"}"
	}
	// Unknown names and wrong types are refused, nulls included.
	dec := json.NewDecoder(bytes.NewReader(patch))
	dec.DisallowUnknownFields()
	if err := dec.Decode(new(state.Settings)); err != nil {
		return cur, "settings: " + err.Error()
	}
	stored, err := json.Marshal(cur)
	if err != nil {
		return cur, "settings: " + err.Error()
	}
	var merged map[string]json.RawMessage
	if err := json.Unmarshal(stored, &merged); err != nil {
		return cur, "settings: " + err.Error()
	}
	for k, v := range fields {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			delete(merged, k)
			continue
		}
		merged[k] = v
	}
	b, _ := json.Marshal(merged)
	var out state.Settings
	if err := json.Unmarshal(b, &out); err != nil {
		return cur, "settings: " + err.Error()
	}
	return out, ""
}

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
	if _, err := ingest.OrgMapping(st); err != nil {
		var me *schema.MappingError
		if errors.As(err, &me) {
			return "settings." + strings.Join(me.Problems, "; settings.")
		}
		return "settings: " + err.Error()
	}
	return ""
}
