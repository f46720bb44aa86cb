package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The console (SPEC §10), for the operator: sign-in with the API token
// or an operator's password, a session cookie (HttpOnly, SameSite=Strict,
// Secure over TLS), a CSRF token in every form. Every change is a request
// to the API with the API token, so the console can do nothing the API
// refuses.
func (s *Server) routeConsole() {
	s.mux.HandleFunc("GET /console/static/{file}", s.serveStatic)
	s.mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, consolePath, http.StatusSeeOther)
	})
	s.mux.HandleFunc("GET /console/signin", s.signinPage)
	s.mux.HandleFunc("POST /console/signin", s.signin)
	s.mux.HandleFunc("POST /console/signout", s.auth(s.signout))
	s.mux.HandleFunc("GET /console/{$}", s.auth(s.overview))
	s.mux.HandleFunc("POST /console/orgs", s.auth(s.createOrg))
	s.mux.HandleFunc("POST /console/invite", s.auth(s.invite))
	s.mux.HandleFunc("GET /console/orgs/{org}", s.auth(s.orgPage))
	s.mux.HandleFunc("POST /console/orgs/{org}/keys", s.auth(s.addKey))
	s.mux.HandleFunc("POST /console/orgs/{org}/keys/remove", s.auth(s.removeKey))
	s.mux.HandleFunc("POST /console/orgs/{org}/settings", s.auth(s.saveSettings))
	s.mux.HandleFunc("POST /console/orgs/{org}/links", s.auth(s.createLink))
	s.mux.HandleFunc("POST /console/orgs/{org}/links/revoke", s.auth(s.revokeLink))
	s.mux.HandleFunc("GET /console/orgs/{org}/batches/{id}", s.auth(s.consoleBatch))
	s.mux.HandleFunc("POST /console/orgs/{org}/batches/{id}/approve", s.auth(s.approve))
	s.mux.HandleFunc("POST /console/orgs/{org}/check", s.auth(s.consoleCheck))
	s.mux.HandleFunc("GET /console/orgs/{org}/directory", s.auth(s.directory))
	s.mux.HandleFunc("GET /console/orgs/{org}/audit", s.auth(s.auditPage))
	s.mux.HandleFunc("GET /console/orgs/{org}/events", s.auth(s.eventsPage))
	s.mux.HandleFunc("GET /console/webhooks", s.auth(s.webhooksPage))
	s.mux.HandleFunc("POST /console/webhooks/redeliver", s.auth(s.redeliver))
}

const consoleStatic = "/console/static/"

// consoleHandler handles a request of a signed-in operator.
type consoleHandler func(w http.ResponseWriter, r *http.Request, sess *session)

// auth lets a request through with a live session, and a POST only with
// the session's CSRF token. A GET without a session goes to the sign-in.
func (s *Server) auth(h consoleHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.session(r)
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.render(w, http.StatusForbidden, "error", view{Title: "Signed out", Console: true, Static: consoleStatic,
				Error: "your session has ended: sign in again, then repeat what you were doing"})
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 3*s.cfg.MaxCheckSize+1<<20)
			if !checkCSRF(r, sess) {
				s.log.Warn("console: form without a valid CSRF token refused", "remote_addr", r.RemoteAddr, "path", r.URL.Path)
				s.render(w, http.StatusForbidden, "error", view{Title: "Form refused", Console: true, Static: consoleStatic, CSRF: sess.csrf, Who: sess.who,
					Error: "this form did not come from a page of this console (or the page is older than your session): reload the page and try again"})
				return
			}
		}
		h(w, r, sess)
	}
}

// page returns the view for a console page of sess, taking its flash.
func (s *Server) page(sess *session, title string, data any) view {
	v := view{Title: title, Console: true, Static: consoleStatic, CSRF: sess.csrf, Who: sess.who, Data: data}
	msg := s.sessions.takeFlash(sess.id)
	if bad, ok := strings.CutPrefix(msg, "!"); ok {
		v.Error = bad
	} else {
		v.Flash = msg
	}
	return v
}

// done shows msg on the next page (an error when bad) and sends the
// browser to path (Post/Redirect/Get).
func (s *Server) done(w http.ResponseWriter, r *http.Request, sess *session, path, msg string, bad bool) {
	if bad {
		msg = "!" + msg
	}
	s.sessions.setFlash(sess.id, msg)
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// signinData is the sign-in page's content.
type signinData struct {
	Next      string
	Operators bool
	Name      string
	Out       bool
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	if s.session(r) != nil {
		http.Redirect(w, r, consolePath, http.StatusSeeOther)
		return
	}
	tok := randomToken()
	s.setCookie(w, r, signinCookie, tok, 3600)
	d := signinData{Next: r.URL.Query().Get("next"), Operators: len(s.cfg.Operators) > 0, Out: r.URL.Query().Has("out")}
	s.render(w, http.StatusOK, "signin", view{Title: "Sign in", Console: true, Static: consoleStatic, CSRF: tok, Data: d})
}

func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	c, err := r.Cookie(signinCookie)
	form := r.PostFormValue("csrf")
	if err != nil || form == "" || c.Value != form {
		s.log.Warn("console: sign-in form without a valid CSRF token refused", "remote_addr", r.RemoteAddr)
		s.render(w, http.StatusForbidden, "error", view{Title: "Form refused", Console: true, Static: consoleStatic,
			Error: "this sign-in form did not come from this console: open the sign-in page again"})
		return
	}
	name := strings.TrimSpace(r.PostFormValue("operator"))
	next := r.PostFormValue("next")
	refuse := func(status int, msg string) {
		tok := randomToken()
		s.setCookie(w, r, signinCookie, tok, 3600)
		d := signinData{Next: next, Operators: len(s.cfg.Operators) > 0, Name: name}
		s.render(w, status, "signin", view{Title: "Sign in", Console: true, Static: consoleStatic, CSRF: tok, Data: d, Error: msg})
	}
	ip := remoteIP(r)
	if !s.signins.allowed(ip) {
		s.log.Warn("console: sign-in refused: too many failures from the address", "remote_addr", r.RemoteAddr, "operator", name)
		refuse(http.StatusTooManyRequests, "too many failed sign-ins from your address: try again in a few minutes")
		return
	}
	who, ok := s.authenticate(name, r.PostFormValue("secret"))
	if !ok {
		s.signins.failed(ip)
		s.log.Warn("console: sign-in refused", "remote_addr", r.RemoteAddr, "operator", name)
		refuse(http.StatusUnauthorized, "wrong token, or wrong operator name or password")
		return
	}
	sess := s.sessions.create(who)
	s.setCookie(w, r, sessionCookie, sess.id, int(s.cfg.SessionTTL.Seconds()))
	s.setCookie(w, r, signinCookie, "", -1)
	s.log.Info("console: signed in", "remote_addr", r.RemoteAddr, "operator", who)
	if !strings.HasPrefix(next, consolePath) || strings.HasPrefix(next, "//") || strings.Contains(next, `\`) {
		next = consolePath
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, sess *session) {
	s.sessions.end(sess.id)
	s.setCookie(w, r, sessionCookie, "", -1)
	s.log.Info("console: signed out", "remote_addr", r.RemoteAddr, "operator", sess.who)
	http.Redirect(w, r, "/console/signin?out", http.StatusSeeOther)
}

// overviewRow is one organization at a glance.
type overviewRow struct {
	Org     string
	Summary summaryJSON
	Failed  int
	Err     string
}

type overviewData struct {
	Q     string
	Rows  []overviewRow
	Next  string
	Total int
}

// overviewPage is how many organizations the overview shows at a time.
const overviewPage = 50

func (s *Server) overview(w http.ResponseWriter, r *http.Request, sess *session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	after := r.URL.Query().Get("after")
	var names []string
	cursor := ""
	for {
		var l listJSON[orgJSON]
		if err := s.get(r, s.cfg.Token, "/v1/organizations?limit=1000&after="+url.QueryEscape(cursor), &l); err != nil {
			s.render(w, http.StatusInternalServerError, "error", s.pageErr(sess, err))
			return
		}
		for _, o := range l.Data {
			if q == "" || strings.Contains(strings.ToLower(o.ID), strings.ToLower(q)) {
				names = append(names, o.ID)
			}
		}
		if l.ListMetadata.After == nil {
			break
		}
		cursor = *l.ListMetadata.After
	}
	d := overviewData{Q: q, Total: len(names)}
	start, _ := slices.BinarySearch(names, after)
	if start < len(names) && names[start] == after {
		start++
	}
	shown := names[start:]
	if len(shown) > overviewPage {
		shown = shown[:overviewPage]
		d.Next = shown[len(shown)-1]
	}
	failed := s.failedByOrg(r)
	for _, org := range shown {
		row := overviewRow{Org: org, Failed: failed[org]}
		if err := s.get(r, s.cfg.Token, "/v1/organizations/"+pathEscape(org)+"/summary", &row.Summary); err != nil {
			row.Err = s.errorMessage(err)
		}
		d.Rows = append(d.Rows, row)
	}
	s.render(w, http.StatusOK, "overview", s.page(sess, "Organizations", d))
}

// failedByOrg counts the failed deliveries of every endpoint by
// organization (an event failed at two endpoints counts twice).
func (s *Server) failedByOrg(r *http.Request) map[string]int {
	out := map[string]int{}
	var eps listJSON[endpointJSON]
	if err := s.get(r, s.cfg.Token, "/v1/webhooks?limit=1000", &eps); err != nil {
		return out // no delivery running: nothing failed
	}
	for _, ep := range eps.Data {
		if ep.Failed == 0 {
			continue
		}
		after := ""
		for {
			var fs listJSON[failedJSON]
			if err := s.get(r, s.cfg.Token, "/v1/webhooks/"+pathEscape(ep.ID)+"/failed?limit=1000&after="+url.QueryEscape(after), &fs); err != nil {
				break
			}
			for _, f := range fs.Data {
				out[f.Org]++
			}
			if fs.ListMetadata.After == nil {
				break
			}
			after = *fs.ListMetadata.After
		}
	}
	return out
}

// pageErr is the error page's view for err.
func (s *Server) pageErr(sess *session, err error) view {
	v := s.page(sess, "Something went wrong", nil)
	v.Error = s.errorMessage(err)
	return v
}

func (s *Server) createOrg(w http.ResponseWriter, r *http.Request, sess *session) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	body := map[string]string{"name": name}
	if k := r.PostFormValue("public_key"); strings.TrimSpace(k) != "" {
		body["public_key"] = k
	}
	if err := s.send(r, s.cfg.Token, http.MethodPost, "/v1/organizations", body, nil); err != nil {
		s.done(w, r, sess, consolePath, s.errorMessage(err), true)
		return
	}
	s.done(w, r, sess, "/console/orgs/"+pathEscape(name), "Organization "+name+" created.", false)
}

// linkCreated is the page that shows a new setup link, once.
type linkCreated struct {
	Link linkJSON
	Back string
}

// invite creates a setup link from the overview: for an organization
// that may not exist yet.
func (s *Server) invite(w http.ResponseWriter, r *http.Request, sess *session) {
	org := strings.TrimSpace(r.PostFormValue("name"))
	s.newLink(w, r, sess, org, r.PostFormValue("create") != "", consolePath)
}

func (s *Server) createLink(w http.ResponseWriter, r *http.Request, sess *session) {
	org := r.PathValue("org")
	s.newLink(w, r, sess, org, false, "/console/orgs/"+pathEscape(org)+"#links")
}

func (s *Server) newLink(w http.ResponseWriter, r *http.Request, sess *session, org string, create bool, back string) {
	body := map[string]any{"create_organization": create}
	if e := strings.TrimSpace(r.PostFormValue("expires_in")); e != "" {
		body["expires_in"] = e
	}
	var l linkJSON
	if err := s.send(r, s.cfg.Token, http.MethodPost, "/v1/organizations/"+pathEscape(org)+"/setup_links", body, &l); err != nil {
		s.done(w, r, sess, back, s.errorMessage(err), true)
		return
	}
	s.render(w, http.StatusCreated, "link_created", s.page(sess, "Setup link for "+org, linkCreated{Link: l, Back: back}))
}

func (s *Server) revokeLink(w http.ResponseWriter, r *http.Request, sess *session) {
	org, id := r.PathValue("org"), r.PostFormValue("id")
	back := "/console/orgs/" + pathEscape(org) + "#links"
	if err := s.send(r, s.cfg.Token, http.MethodDelete, "/v1/organizations/"+pathEscape(org)+"/setup_links/"+pathEscape(id), nil, nil); err != nil {
		s.done(w, r, sess, back, s.errorMessage(err), true)
		return
	}
	s.done(w, r, sess, back, "Setup link "+id+" revoked: it no longer opens the setup page.", false)
}
