package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// settingsJSON is the settings the console's form edits field by field;
// the JSON box beside it edits every setting the API has.
type settingsJSON struct {
	UsersPatterns          []string `json:"users_patterns"`
	UserGroupsPatterns     []string `json:"user_groups_patterns"`
	GroupsPatterns         []string `json:"groups_patterns"`
	DeleteThresholdPercent *float64 `json:"delete_threshold_percent"`
	DeleteThresholdCount   *int     `json:"delete_threshold_count"`
	InactiveUsers          string   `json:"inactive_users"`
	Settle                 string   `json:"settle"`
	SetupAllKeys           *bool    `json:"setup_all_keys"`
	// GroupsFromColumns are the users.csv columns whose values are
	// memberships; the form shows one row each, and blank rows to add.
	GroupsFromColumns []groupColumnJSON `json:"groups_from_columns"`
}

// groupColumnJSON is one entry of groups_from_columns, as the API shows it.
type groupColumnJSON struct {
	Column    string  `json:"column"`
	Template  *string `json:"template,omitempty"`
	Separator string  `json:"separator,omitempty"`
}

// groupRow is one row of the form's groups_from_columns table.
type groupRow struct{ Column, Template, Separator string }

// blankGroupRows is how many empty rows the form adds after the entries.
const blankGroupRows = 2

// groupRows returns the form's rows for the entries gs.
func groupRows(gs []groupColumnJSON) []groupRow {
	rows := make([]groupRow, 0, len(gs)+blankGroupRows)
	for _, g := range gs {
		r := groupRow{Column: g.Column, Separator: g.Separator}
		if g.Template != nil {
			r.Template = *g.Template
		}
		rows = append(rows, r)
	}
	return append(rows, make([]groupRow, blankGroupRows)...)
}

// orgData is one organization's console page.
type orgData struct {
	Base         string // the page's path, for the batches table
	Org          orgJSON
	Settings     settingsJSON
	GroupRows    []groupRow
	SettingsJSON string
	Summary      summaryJSON
	Keys         []keyJSON
	Links        []linkJSON
	Batches      []batchJSON
	Held         []batchPage
	Audit        []auditJSON
}

func (s *Server) orgPage(w http.ResponseWriter, r *http.Request, sess *session) {
	org := r.PathValue("org")
	base := "/v1/organizations/" + pathEscape(org)
	d := orgData{Base: "/console/orgs/" + pathEscape(org)}
	var keys listJSON[keyJSON]
	var links listJSON[linkJSON]
	var batches listJSON[batchJSON]
	var audit listJSON[auditJSON]
	for _, c := range []struct {
		path string
		out  any
	}{
		{base, &d.Org}, {base + "/summary", &d.Summary}, {base + "/keys", &keys}, {base + "/setup_links", &links},
		{base + "/batches?limit=10", &batches}, {base + "/audit?limit=20", &audit},
	} {
		if err := s.get(r, s.cfg.Token, c.path, c.out); err != nil {
			status := http.StatusInternalServerError
			var ae *apiError
			if errors.As(err, &ae) {
				status = ae.Status
			}
			s.render(w, status, "error", s.pageErr(sess, err))
			return
		}
	}
	d.Keys, d.Links, d.Batches, d.Audit = keys.Data, links.Data, batches.Data, audit.Data
	json.Unmarshal(d.Org.Settings, &d.Settings)
	d.GroupRows = groupRows(d.Settings.GroupsFromColumns)
	var pretty bytes.Buffer
	if json.Indent(&pretty, d.Org.Settings, "", "  ") == nil {
		d.SettingsJSON = pretty.String()
	}
	for _, h := range d.Summary.Held {
		var b batchJSON
		if err := s.get(r, s.cfg.Token, base+"/batches/"+pathEscape(h.ID), &b); err != nil {
			continue
		}
		p := batchPage{Org: org, Batch: b, Approve: "/console/orgs/" + pathEscape(org) + "/batches/" + pathEscape(b.ID) + "/approve", CSRF: sess.csrf}
		p.Report, _ = parseReport(b.Report)
		d.Held = append(d.Held, p)
	}
	s.render(w, http.StatusOK, "org", s.page(sess, org, d))
}

func (s *Server) orgBack(org, anchor string) string {
	return "/console/orgs/" + pathEscape(org) + anchor
}

func (s *Server) addKey(w http.ResponseWriter, r *http.Request, sess *session) {
	org := r.PathValue("org")
	var added listJSON[keyJSON]
	if err := s.send(r, s.cfg.Token, http.MethodPost, "/v1/organizations/"+pathEscape(org)+"/keys", map[string]string{"public_key": r.PostFormValue("public_key")}, &added); err != nil {
		s.done(w, r, sess, s.orgBack(org, "#keys"), s.errorMessage(err), true)
		return
	}
	var fps []string
	for _, k := range added.Data {
		fps = append(fps, k.Fingerprint)
	}
	s.done(w, r, sess, s.orgBack(org, "#keys"), "Key "+strings.Join(fps, ", ")+" added.", false)
}

func (s *Server) removeKey(w http.ResponseWriter, r *http.Request, sess *session) {
	org, fp := r.PathValue("org"), r.PostFormValue("fingerprint")
	if err := s.send(r, s.cfg.Token, http.MethodDelete, "/v1/organizations/"+pathEscape(org)+"/keys/"+pathEscape(fp), nil, nil); err != nil {
		s.done(w, r, sess, s.orgBack(org, "#keys"), s.errorMessage(err), true)
		return
	}
	s.done(w, r, sess, s.orgBack(org, "#keys"), "Key "+fp+" removed; its sessions were closed.", false)
}

// saveSettings sends the form's settings to the API: the fields of the
// form (an empty field returns the setting to the daemon's default), or,
// from the JSON box, whatever settings it holds.
func (s *Server) saveSettings(w http.ResponseWriter, r *http.Request, sess *session) {
	org := r.PathValue("org")
	back := s.orgBack(org, "#settings")
	var settings any
	if r.PostFormValue("mode") == "json" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.PostFormValue("settings_json")), &m); err != nil {
			s.done(w, r, sess, back, "the settings are not a JSON object: "+err.Error(), true)
			return
		}
		settings = m
	} else {
		m, msg := settingsForm(r)
		if msg != "" {
			s.done(w, r, sess, back, msg, true)
			return
		}
		settings = m
	}
	if err := s.send(r, s.cfg.Token, http.MethodPatch, "/v1/organizations/"+pathEscape(org), map[string]any{"settings": settings}, nil); err != nil {
		s.done(w, r, sess, back, s.errorMessage(err), true)
		return
	}
	s.done(w, r, sess, back, "Settings saved.", false)
}

// settingsForm reads the settings form, or returns a message naming a
// field that is not a number.
func settingsForm(r *http.Request) (map[string]any, string) {
	m := map[string]any{}
	for _, f := range []string{"users_patterns", "user_groups_patterns", "groups_patterns"} {
		pats := strings.FieldsFunc(r.PostFormValue(f), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t' })
		if len(pats) == 0 {
			m[f] = nil
		} else {
			m[f] = pats
		}
	}
	if v := strings.TrimSpace(r.PostFormValue("delete_threshold_percent")); v == "" {
		m["delete_threshold_percent"] = nil
	} else if p, err := strconv.ParseFloat(v, 64); err == nil {
		m["delete_threshold_percent"] = p
	} else {
		return nil, fmt.Sprintf("deletion threshold: %q is not a percentage", v)
	}
	if v := strings.TrimSpace(r.PostFormValue("delete_threshold_count")); v == "" {
		m["delete_threshold_count"] = nil
	} else if n, err := strconv.Atoi(v); err == nil {
		m["delete_threshold_count"] = n
	} else {
		return nil, fmt.Sprintf("deletion threshold: %q is not a whole number of users", v)
	}
	m["inactive_users"] = r.PostFormValue("inactive_users")
	m["settle"] = strings.TrimSpace(r.PostFormValue("settle"))
	if cols, ok := r.PostForm["group_column"]; ok {
		// One row per entry: a row without a column is left out, an
		// empty template means the value itself.
		tmpls, seps := r.PostForm["group_template"], r.PostForm["group_separator"]
		var gs []groupColumnJSON
		for i, c := range cols {
			if c = strings.TrimSpace(c); c == "" {
				continue
			}
			g := groupColumnJSON{Column: c}
			if i < len(tmpls) && strings.TrimSpace(tmpls[i]) != "" {
				t := tmpls[i]
				g.Template = &t
			}
			if i < len(seps) {
				g.Separator = seps[i]
			}
			gs = append(gs, g)
		}
		if len(gs) == 0 {
			m["groups_from_columns"] = nil
		} else {
			m["groups_from_columns"] = gs
		}
	}
	switch r.PostFormValue("setup_all_keys") {
	case "yes":
		m["setup_all_keys"] = true
	case "no":
		m["setup_all_keys"] = false
	default:
		m["setup_all_keys"] = nil
	}
	return m, ""
}

func (s *Server) consoleBatch(w http.ResponseWriter, r *http.Request, sess *session) {
	org, id := r.PathValue("org"), r.PathValue("id")
	var b batchJSON
	if err := s.get(r, s.cfg.Token, "/v1/organizations/"+pathEscape(org)+"/batches/"+pathEscape(id), &b); err != nil {
		s.render(w, http.StatusNotFound, "error", s.pageErr(sess, err))
		return
	}
	d := batchPage{Org: org, Batch: b, Back: s.orgBack(org, "#batches")}
	if b.Status == "held" {
		d.Approve, d.CSRF = "/console/orgs/"+pathEscape(org)+"/batches/"+pathEscape(id)+"/approve", sess.csrf
	}
	if len(b.Report) > 0 {
		d.Report, _ = parseReport(b.Report)
	}
	s.render(w, http.StatusOK, "batch", s.page(sess, "Batch "+id+" of "+org, d))
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request, sess *session) {
	org, id := r.PathValue("org"), r.PathValue("id")
	var b batchJSON
	if err := s.send(r, s.cfg.Token, http.MethodPost, "/v1/organizations/"+pathEscape(org)+"/batches/"+pathEscape(id)+"/approve", nil, &b); err != nil {
		s.done(w, r, sess, s.orgBack(org, "#held"), s.errorMessage(err), true)
		return
	}
	s.log.Info("console: held batch approved", "org", org, "batch", id, "operator", sess.who)
	s.done(w, r, sess, s.orgBack(org, "#batches"), fmt.Sprintf("Batch %s approved: it is now %s (%s).", id, b.Status, changeSum(b.Changes)), false)
}

func (s *Server) consoleCheck(w http.ResponseWriter, r *http.Request, sess *session) {
	org := r.PathValue("org")
	s.check(w, r, checkTarget{token: s.cfg.Token, planPath: "/v1/organizations/" + pathEscape(org) + "/plan",
		back: s.orgBack(org, "#check"), static: consoleStatic, console: true, csrf: sess.csrf})
}

// directoryData is a page of the snapshot's users or groups.
type directoryData struct {
	Org, Kind, Q string
	Items        []map[string]any
	Next         string
	Message      string
}

func (s *Server) directory(w http.ResponseWriter, r *http.Request, sess *session) {
	org := r.PathValue("org")
	q := r.URL.Query()
	d := directoryData{Org: org, Kind: q.Get("kind"), Q: strings.TrimSpace(q.Get("q"))}
	if d.Kind != "groups" {
		d.Kind = "users"
	}
	base := "/v1/organizations/" + pathEscape(org) + "/" + d.Kind
	var err error
	switch {
	case d.Q != "" && d.Kind == "users" && strings.Contains(d.Q, "@"):
		var l listJSON[map[string]any]
		err = s.get(r, s.cfg.Token, base+"?limit=50&email="+url.QueryEscape(d.Q)+"&after="+url.QueryEscape(q.Get("after")), &l)
		d.Items = l.Data
		if l.ListMetadata.After != nil {
			d.Next = *l.ListMetadata.After
		}
	case d.Q != "":
		var one map[string]any
		if err = s.get(r, s.cfg.Token, base+"/"+pathEscape(d.Q), &one); err == nil {
			d.Items = []map[string]any{one}
		}
	default:
		var l listJSON[map[string]any]
		err = s.get(r, s.cfg.Token, base+"?limit=50&after="+url.QueryEscape(q.Get("after")), &l)
		d.Items = l.Data
		if l.ListMetadata.After != nil {
			d.Next = *l.ListMetadata.After
		}
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && d.Q != "" {
		err, d.Message = nil, "No "+strings.TrimSuffix(d.Kind, "s")+" with id "+d.Q+"."
	}
	if err != nil {
		s.render(w, http.StatusInternalServerError, "error", s.pageErr(sess, err))
		return
	}
	s.render(w, http.StatusOK, "directory", s.page(sess, strings.ToUpper(d.Kind[:1])+d.Kind[1:]+" of "+org, d))
}

type auditData struct {
	Org     string
	Records []auditJSON
	Next    string
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, sess *session) {
	org := r.PathValue("org")
	var l listJSON[auditJSON]
	if err := s.get(r, s.cfg.Token, "/v1/organizations/"+pathEscape(org)+"/audit?limit=100&after="+url.QueryEscape(r.URL.Query().Get("after")), &l); err != nil {
		s.render(w, http.StatusInternalServerError, "error", s.pageErr(sess, err))
		return
	}
	d := auditData{Org: org, Records: l.Data}
	if l.ListMetadata.After != nil {
		d.Next = *l.ListMetadata.After
	}
	s.render(w, http.StatusOK, "audit", s.page(sess, "Audit trail of "+org, d))
}

type eventsData struct {
	Org, Since string
	Events     []eventRow
	Next       string
}

type eventRow struct {
	ID, Event, CreatedAt, Object, Batch string
}

// eventsPage lists the organization's events from a time on, oldest
// first (the feed's order).
func (s *Server) eventsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	org := r.PathValue("org")
	q := r.URL.Query()
	d := eventsData{Org: org, Since: q.Get("since")}
	ago, err := time.ParseDuration(d.Since)
	if err != nil || ago <= 0 {
		d.Since, ago = "24h", 24*time.Hour
	}
	since := time.Now().Add(-ago).UTC().Format(time.RFC3339)
	var l listJSON[json.RawMessage]
	if err := s.get(r, s.cfg.Token, "/v1/events?limit=100&organization_id="+url.QueryEscape(org)+"&since="+url.QueryEscape(since)+"&after="+url.QueryEscape(q.Get("after")), &l); err != nil {
		s.render(w, http.StatusInternalServerError, "error", s.pageErr(sess, err))
		return
	}
	for _, raw := range l.Data {
		var e struct {
			ID        string `json:"id"`
			Event     string `json:"event"`
			CreatedAt string `json:"created_at"`
			Batch     string `json:"batch_id"`
			Data      struct {
				ID    string `json:"id"`
				Email string `json:"email"`
				Name  string `json:"name"`
				User  *struct {
					ID string `json:"id"`
				} `json:"user"`
				Group *struct {
					Name string `json:"name"`
				} `json:"group"`
			} `json:"data"`
		}
		json.Unmarshal(raw, &e)
		obj := strings.TrimSpace(e.Data.ID + " " + e.Data.Email + e.Data.Name)
		if e.Data.User != nil && e.Data.Group != nil {
			obj = e.Data.User.ID + " in " + e.Data.Group.Name
		}
		d.Events = append(d.Events, eventRow{ID: e.ID, Event: e.Event, CreatedAt: e.CreatedAt, Object: obj, Batch: e.Batch})
	}
	if l.ListMetadata.After != nil {
		d.Next = *l.ListMetadata.After
	}
	s.render(w, http.StatusOK, "events", s.page(sess, "Events of "+org, d))
}

type webhooksData struct {
	Endpoints []endpointJSON
	Failed    map[string][]failedJSON
	Message   string
}

func (s *Server) webhooksPage(w http.ResponseWriter, r *http.Request, sess *session) {
	d := webhooksData{Failed: map[string][]failedJSON{}}
	var eps listJSON[endpointJSON]
	if err := s.get(r, s.cfg.Token, "/v1/webhooks?limit=1000", &eps); err != nil {
		d.Message = s.errorMessage(err)
	}
	d.Endpoints = eps.Data
	for _, ep := range eps.Data {
		if ep.Failed == 0 {
			continue
		}
		var fs listJSON[failedJSON]
		if err := s.get(r, s.cfg.Token, "/v1/webhooks/"+pathEscape(ep.ID)+"/failed?limit=100", &fs); err == nil {
			d.Failed[ep.ID] = fs.Data
		}
	}
	s.render(w, http.StatusOK, "webhooks", s.page(sess, "Webhooks", d))
}

func (s *Server) redeliver(w http.ResponseWriter, r *http.Request, sess *session) {
	ev, ep := r.PostFormValue("event"), r.PostFormValue("endpoint")
	var res redeliveryJSON
	if err := s.send(r, s.cfg.Token, http.MethodPost, "/v1/events/"+pathEscape(ev)+"/redeliver?endpoint="+url.QueryEscape(ep), nil, &res); err != nil {
		s.done(w, r, sess, "/console/webhooks", s.errorMessage(err), true)
		return
	}
	var msgs []string
	bad := false
	for _, d := range res.Data {
		if d.Delivered {
			msgs = append(msgs, "Event "+ev+" delivered to "+d.Endpoint+".")
			continue
		}
		bad = true
		why := d.Error
		if d.Status != 0 {
			why = fmt.Sprintf("it answered %d", d.Status)
		}
		msgs = append(msgs, "Event "+ev+" not delivered to "+d.Endpoint+": "+why+".")
	}
	s.log.Info("console: event redelivered", "event", ev, "endpoint", ep, "operator", sess.who)
	s.done(w, r, sess, "/console/webhooks", strings.Join(msgs, " "), bad)
}
