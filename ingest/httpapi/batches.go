package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// routeBatches registers the batches and plan routes (SPEC §8).
func (s *Server) routeBatches() {
	s.handle("GET /v1/organizations/{org}/batches", s.listBatches)
	s.handle("GET /v1/organizations/{org}/batches/{id}", s.getBatch)
	s.handle("POST /v1/organizations/{org}/batches/{id}/approve", s.approveBatch)
	s.handle("POST /v1/organizations/{org}/plan", s.plan)
}

// BatchView is the API's view of a batch; Report is the batch's JSON
// report (SPEC §5), present on single-batch answers.
type BatchView struct {
	Object string `json:"object"`
	state.Batch
	Report json.RawMessage `json:"report,omitempty"`
}

// listBatches lists an organization's batches, newest first; the cursor
// is the last batch id of the page.
func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := s.page(w, r)
	if !ok {
		return
	}
	org := r.PathValue("org")
	bs, err := s.cfg.DB.Batches(org, after, limit+1)
	if err != nil {
		s.stateError(w, r, "organization "+org, err)
		return
	}
	views := make([]BatchView, len(bs))
	for i, b := range bs {
		views[i] = BatchView{Object: "batch", Batch: b}
	}
	writeJSON(w, http.StatusOK, newList(views, limit, func(b BatchView) string { return b.ID }))
}

func (s *Server) batchView(org, id string) (BatchView, error) {
	b, err := s.cfg.DB.Batch(org, id)
	if err != nil {
		return BatchView{}, err
	}
	v := BatchView{Object: "batch", Batch: b}
	if rep, err := s.cfg.DB.BatchReport(org, id); err == nil {
		v.Report = rep
	} else if !errors.Is(err, state.ErrNotFound) {
		return BatchView{}, err
	}
	return v, nil
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	v, err := s.batchView(r.PathValue("org"), r.PathValue("id"))
	if err != nil {
		s.stateError(w, r, "batch "+r.PathValue("id"), err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// approveBatch releases a held batch and answers the batch as it ended.
func (s *Server) approveBatch(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Pipeline == nil {
		s.error(w, r, http.StatusServiceUnavailable, "unavailable", "the ingest pipeline is not running", nil)
		return
	}
	org, id := r.PathValue("org"), r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
	defer cancel()
	_, err := s.cfg.Pipeline.Approve(ctx, org, id)
	switch {
	case errors.Is(err, ingest.ErrNotHeld):
		b, _ := s.cfg.DB.Batch(org, id)
		s.error(w, r, http.StatusConflict, "not_held", "batch "+id+" is "+b.Status+", not held: only a held batch can be approved", nil)
		return
	case errors.Is(err, ingest.ErrNotRunning):
		s.error(w, r, http.StatusServiceUnavailable, "unavailable", "the ingest pipeline is not running", nil)
		return
	case err != nil:
		s.stateError(w, r, "batch "+id, err)
		return
	}
	s.log.Info("held batch approved through the API", "org", org, "batch", id)
	v, err := s.batchView(org, id)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// maxPlanBody bounds a plan request: three files at the default size
// limit. Parts beyond 32 MiB are spooled to temporary files.
const maxPlanBody = 3<<30 + 1<<20

// plan is the dry run behind `rosterd plan`: multipart files (the file
// name, or a part named users, user_groups or groups, gives the kind),
// and optionally a value named mapping, a JSON object with the settings
// columns, status_values, date_format and groups_from_columns, read instead of the
// organization's mapping; it answers the report of what they would
// change.
func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Pipeline == nil {
		s.error(w, r, http.StatusServiceUnavailable, "unavailable", "the ingest pipeline is not running", nil)
		return
	}
	org := r.PathValue("org")
	if _, err := s.cfg.DB.Org(org); err != nil {
		s.stateError(w, r, "organization "+org, err)
		return
	}
	rc := http.NewResponseController(w)
	body := r.Body
	if s.cfg.ReadTimeout > 0 {
		body = &renewingBody{ReadCloser: body, rc: rc, timeout: s.cfg.ReadTimeout}
	}
	r.Body = http.MaxBytesReader(w, body, maxPlanBody)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		s.error(w, r, http.StatusBadRequest, "invalid_request", "the body must be multipart/form-data with one part per file: "+err.Error(), nil)
		return
	}
	if s.cfg.WriteTimeout > 0 {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	}
	defer r.MultipartForm.RemoveAll()
	var files []ingest.PlanFile
	for field, fhs := range r.MultipartForm.File {
		for _, fh := range fhs {
			f := ingest.PlanFile{Name: fh.Filename, Open: func() (io.ReadCloser, error) { return fh.Open() }}
			switch k := schema.Kind(field); k {
			case schema.Users, schema.UserGroups, schema.Groups:
				f.Kind = k
			}
			if f.Name == "" {
				f.Name = field + ".csv"
			}
			files = append(files, f)
		}
	}
	var opt ingest.PlanOptions
	if raw := r.MultipartForm.Value["mapping"]; len(raw) > 0 {
		m, msg := parseMapping(raw[0])
		if msg != "" {
			s.error(w, r, http.StatusBadRequest, "invalid_mapping", msg, nil)
			return
		}
		opt.Mapping, opt.NoMapping = m, m == nil
	}
	rep, err := s.cfg.Pipeline.PlanWith(r.Context(), org, files, opt)
	switch {
	case errors.Is(err, ingest.ErrBadFiles):
		s.error(w, r, http.StatusBadRequest, "invalid_files", err.Error(), nil)
		return
	case err != nil:
		s.stateError(w, r, "organization "+org, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	rep.WriteJSON(w)
}

// renewingBody sets the connection's read deadline timeout ahead before
// each read: a body of any size gets through as long as it keeps coming,
// and a client that stalls for timeout is still cut off.
type renewingBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *renewingBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	return b.ReadCloser.Read(p)
}

// parseMapping reads a plan's mapping value: a JSON object with the
// settings columns, status_values, date_format and groups_from_columns.
// It returns a message naming what is wrong, or "".
func parseMapping(raw string) (*schema.Mapping, string) {
	var v struct {
		Columns           map[string]string   `json:"columns"`
		StatusValues      map[string]string   `json:"status_values"`
		DateFormat        string              `json:"date_format"`
		GroupsFromColumns []state.GroupColumn `json:"groups_from_columns"`
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return nil, "mapping: " + err.Error()
	}
	m, err := schema.NewMapping(v.Columns, v.StatusValues, v.DateFormat, ingest.GroupColumns(v.GroupsFromColumns)...)
	if err != nil {
		return nil, "mapping." + strings.ReplaceAll(err.Error(), "; ", "; mapping.")
	}
	return m, ""
}
