package web

import (
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
)

// The setup page (SPEC §10), for an organization's admin. Its address
// holds the link's token, the only credential: there is no cookie, so
// no other site can make a browser act on it without knowing the token,
// and the page's requests to the API carry the token, which opens the
// link's organization only. Every action is a plain form.
func (s *Server) routeSetup() {
	s.mux.HandleFunc("GET /setup/static/{file}", s.serveStatic)
	s.mux.HandleFunc("GET /setup/templates/{file}", s.serveCSVTemplate)
	s.mux.HandleFunc("GET /setup/{token}", s.setupPage)
	s.mux.HandleFunc("GET /setup/{token}/batches/{id}", s.setupBatch)
	s.mux.HandleFunc("POST /setup/{token}/keys", s.setupAddKey)
	s.mux.HandleFunc("POST /setup/{token}/keys/remove", s.setupRemoveKey)
	s.mux.HandleFunc("POST /setup/{token}/check", s.setupCheck)
}

const setupStatic = "/setup/static/"

// Batches are the batches the status table lists.
func (d *setupData) Batches() []batchJSON { return d.Setup.Batches }

// setupData is the setup page's content.
type setupData struct {
	Token   string
	Base    string // the page's own path: /setup/TOKEN
	Setup   setupJSON
	Conn    Connection
	Held    []batchJSON
	PubKey  string // the text of a refused key, given back to correct
	Columns []columnDoc
}

// setupLinkError answers a refused link with a page that says why and
// what to do, and reports whether err was one.
func (s *Server) setupLinkError(w http.ResponseWriter, err error) bool {
	var ae *apiError
	if !errors.As(err, &ae) {
		return false
	}
	v := view{Title: "This setup link cannot be used", Static: setupStatic, Error: ae.Message}
	switch ae.Status {
	case http.StatusUnauthorized:
		v.Title = "This setup link is not valid"
		s.render(w, http.StatusNotFound, "setup_gone", v)
	case http.StatusGone:
		if ae.Code == "setup_link_expired" {
			v.Title = "This setup link has expired"
		} else if ae.Code == "setup_link_revoked" {
			v.Title = "This setup link was withdrawn"
		}
		s.render(w, http.StatusGone, "setup_gone", v)
	default:
		return false
	}
	return true
}

// loadSetup fetches the page's content; on a refused link it answers the
// request itself and returns false.
func (s *Server) loadSetup(w http.ResponseWriter, r *http.Request) (*setupData, bool) {
	tok := r.PathValue("token")
	d := &setupData{Token: tok, Base: "/setup/" + tok, Columns: columnDocs}
	if err := s.get(r, tok, "/v1/setup", &d.Setup); err != nil {
		if !s.setupLinkError(w, err) {
			s.render(w, http.StatusInternalServerError, "setup_error", view{Title: "The setup page is not available", Static: setupStatic, Error: s.errorMessage(err)})
		}
		return nil, false
	}
	d.Conn = s.connection(r, d.Setup.Organization.ID)
	for _, b := range d.Setup.Batches {
		if b.Status == "held" {
			d.Held = append(d.Held, b)
		}
	}
	return d, true
}

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	d, ok := s.loadSetup(w, r)
	if !ok {
		return
	}
	v := view{Title: "Set up directory sync for " + d.Setup.Organization.ID, Static: setupStatic, Data: d}
	q := r.URL.Query()
	switch fp := q.Get("fp"); q.Get("done") {
	case "added":
		v.Flash = "Key " + fp + " added. Your export can log in with it now."
	case "removed":
		v.Flash = "Key " + fp + " removed. It can no longer log in."
	}
	s.render(w, http.StatusOK, "setup", v)
}

func (s *Server) setupAddKey(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	text := r.PostFormValue("public_key")
	var added listJSON[keyJSON]
	err := s.send(r, tok, http.MethodPost, "/v1/setup/keys", map[string]string{"public_key": text}, &added)
	if err == nil {
		fps := make([]string, len(added.Data))
		for i, k := range added.Data {
			fps[i] = k.Fingerprint
		}
		http.Redirect(w, r, "/setup/"+tok+"?done=added&fp="+url.QueryEscape(strings.Join(fps, ", "))+"#keys", http.StatusSeeOther)
		return
	}
	if s.setupLinkError(w, err) {
		return
	}
	d, ok := s.loadSetup(w, r)
	if !ok {
		return
	}
	if !strings.Contains(text, "PRIVATE KEY") {
		d.PubKey = text
	}
	s.render(w, http.StatusBadRequest, "setup", view{Title: "Set up directory sync for " + d.Setup.Organization.ID, Static: setupStatic, Data: d, Error: s.errorMessage(err)})
}

func (s *Server) setupRemoveKey(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	fp := r.PostFormValue("fingerprint")
	err := s.send(r, tok, http.MethodDelete, "/v1/setup/keys/"+pathEscape(fp), nil, nil)
	if err == nil {
		http.Redirect(w, r, "/setup/"+tok+"?done=removed&fp="+url.QueryEscape(fp)+"#keys", http.StatusSeeOther)
		return
	}
	if s.setupLinkError(w, err) {
		return
	}
	d, ok := s.loadSetup(w, r)
	if !ok {
		return
	}
	s.render(w, http.StatusBadRequest, "setup", view{Title: "Set up directory sync for " + d.Setup.Organization.ID, Static: setupStatic, Data: d, Error: s.errorMessage(err)})
}

func (s *Server) setupBatch(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	var b batchJSON
	if err := s.get(r, tok, "/v1/setup/batches/"+pathEscape(r.PathValue("id")), &b); err != nil {
		if !s.setupLinkError(w, err) {
			s.render(w, http.StatusNotFound, "setup_error", view{Title: "No such batch", Static: setupStatic, Error: s.errorMessage(err)})
		}
		return
	}
	d := batchPage{Batch: b, Back: "/setup/" + tok + "#status"}
	if len(b.Report) > 0 {
		rep, err := parseReport(b.Report)
		if err != nil {
			s.log.Error("web: batch report", "batch", b.ID, "err", err)
		}
		d.Report = rep
	}
	s.render(w, http.StatusOK, "batch", view{Title: "Batch " + b.ID, Static: setupStatic, Data: d})
}

// batchPage is a batch with its report laid out.
type batchPage struct {
	Org    string
	Batch  batchJSON
	Report *reportView
	Back   string
	// Approve is where the console's Approve form posts, with CSRF ("" on
	// the setup page).
	Approve, CSRF string
}

// checkPage is the outcome of "check a file".
type checkPage struct {
	Back     string
	Files    []string
	Validate *reportView
	Plan     *reportView
	PlanNote string
}

// PlanIssues says whether the dry run found issues that validation alone
// did not (such as memberships of users only the snapshot has).
func (d *checkPage) PlanIssues() bool {
	return d.Plan != nil && d.Validate != nil && d.Plan.IssuesTotal != d.Validate.IssuesTotal
}

// setupCheck validates the uploaded files as `rosterd validate` would and
// runs the dry run against the organization's snapshot as `rosterd plan`
// would, applying nothing.
func (s *Server) setupCheck(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	s.check(w, r, checkTarget{token: tok, planPath: "/v1/setup/plan", back: "/setup/" + tok + "#check", static: setupStatic})
}

// checkTarget says whose snapshot a check plans against and how.
type checkTarget struct {
	token, planPath, back, static string
	console                       bool
	csrf                          string
}

// check runs "check a file" for the setup page and the console.
func (s *Server) check(w http.ResponseWriter, r *http.Request, t checkTarget) {
	v := view{Title: "Check of your files", Static: t.static, Console: t.console, CSRF: t.csrf}
	r.Body = http.MaxBytesReader(w, r.Body, 3*s.cfg.MaxCheckSize+1<<20)
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		v.Error = "the files could not be read: choose one to three CSV files of at most " + size(s.cfg.MaxCheckSize) + " each"
		s.render(w, http.StatusBadRequest, "check", v)
		return
	}
	defer r.MultipartForm.RemoveAll()
	fhs := r.MultipartForm.File["file"]
	d := checkPage{Back: t.back}
	v.Data = &d
	kind := schema.Kind(r.FormValue("kind"))
	switch kind {
	case "", schema.Users, schema.UserGroups, schema.Groups:
	default:
		v.Error = "choose users, user_groups or groups as the kind of file"
		s.render(w, http.StatusBadRequest, "check", v)
		return
	}
	if len(fhs) == 0 {
		v.Error = "choose a file to check"
		s.render(w, http.StatusBadRequest, "check", v)
		return
	}
	for _, fh := range fhs {
		d.Files = append(d.Files, fh.Filename)
	}

	// The dry run first: it also checks the link, before anything is read.
	var raw json.RawMessage
	err := s.callPlan(r, t, kind, fhs, &raw)
	switch {
	case err == nil:
		if d.Plan, err = parseReport(raw); err != nil {
			d.PlanNote = s.errorMessage(err)
		}
	case !t.console && s.setupLinkError(w, err):
		return
	default:
		d.PlanNote = s.errorMessage(err)
	}

	inputs := make([]report.Input, 0, len(fhs))
	for _, fh := range fhs {
		f, err := fh.Open()
		if err != nil {
			v.Error = s.errorMessage(err)
			s.render(w, http.StatusInternalServerError, "check", v)
			return
		}
		defer f.Close()
		inputs = append(inputs, report.Input{Name: fh.Filename, Kind: kind, R: f})
	}
	rep, err := report.Validate(inputs, *s.limits.Load(), time.Now())
	if err != nil {
		if errors.Is(err, report.ErrUnknownKind) || errors.Is(err, report.ErrSameKind) {
			v.Error = strings.Replace(err.Error(), "give --kind", "choose the kind of file", 1)
			s.render(w, http.StatusBadRequest, "check", v)
			return
		}
		v.Error = s.errorMessage(err)
		s.render(w, http.StatusInternalServerError, "check", v)
		return
	}
	d.Validate = &reportView{Report: *rep}
	s.render(w, http.StatusOK, "check", v)
}

// callPlan sends the files to the API's dry run, streamed as multipart:
// a part named after the kind when one is chosen, "file" otherwise.
func (s *Server) callPlan(r *http.Request, t checkTarget, kind schema.Kind, fhs []*multipart.FileHeader, out *json.RawMessage) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	field := "file"
	if kind != "" {
		field = string(kind)
	}
	go func() {
		err := func() error {
			for _, fh := range fhs {
				f, err := fh.Open()
				if err != nil {
					return err
				}
				part, err := mw.CreateFormFile(field, fh.Filename)
				if err == nil {
					_, err = io.Copy(part, f)
				}
				f.Close()
				if err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	return s.call(r, apiRequest{method: http.MethodPost, path: t.planPath, token: t.token, body: pr, contentType: mw.FormDataContentType()}, out)
}

// serveCSVTemplate serves a file with the header row and two example
// rows of each kind (SPEC §4).
func (s *Server) serveCSVTemplate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	body, ok := csvTemplates[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	io.WriteString(w, body)
}

var csvTemplates = map[string]string{
	"users.csv": "user_id,email,first_name,last_name,job_title,department_name,manager_id,status\r\n" +
		"E1001,ada.lovelace@example.com,Ada,Lovelace,Engineer,Research,,active\r\n" +
		"E1002,alan.turing@example.com,Alan,Turing,Analyst,Research,E1001,active\r\n",
	"user_groups.csv": "group_name,user_id\r\n" +
		"Research,E1001\r\n" +
		"Research,E1002\r\n",
	"groups.csv": "group_name,group_id,description\r\n" +
		"Research,G-RES,Research and development\r\n" +
		"Sales,G-SALES,Sales in every region\r\n",
}

// columnDoc is one row of the file requirements table (SPEC §4).
type columnDoc struct {
	File, Columns, Rule string
}

var columnDocs = []columnDoc{
	{"users.csv", "user_id", "Required. Your own stable id for the person (an employee number); unique in the file."},
	{"users.csv", "email", "Required. A valid email address, unique in the file (capitals do not count)."},
	{"users.csv", "first_name, last_name", "Required, not empty."},
	{"users.csv", "username, display_name, job_title, employee_type, employment_start_date, department_name, division_name, cost_center_name, manager_id, manager_name, manager_email, work_address_street, work_address_locality, work_address_region, work_address_postal_code, work_address_country", "Optional."},
	{"users.csv", "status (or state)", "Optional. Empty, active, true or 1 mean active; inactive, suspended, disabled, terminated, deprovisioned, false or 0 mean inactive."},
	{"users.csv", "any other column", "Kept as a custom attribute under its header name."},
	{"user_groups.csv", "group_name, user_id", "Both required: one row per person in a group. The user_id must be in users.csv."},
	{"groups.csv", "group_name", "Required and unique: one row per group."},
	{"groups.csv", "group_id, description", "Optional. A group_id lets you rename a group later."},
}
