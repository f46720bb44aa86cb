package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Console sessions live in memory: a restart signs everyone out. A
// session holds its CSRF token, which every console form carries and
// every POST must return (checkCSRF).
const (
	sessionCookie = "rosterd_console"
	// signinCookie carries the sign-in form's CSRF token before there is
	// a session (double submit).
	signinCookie = "rosterd_signin"
	consolePath  = "/console/"
)

type session struct {
	id, csrf string
	who      string
	expires  time.Time
	flash    string // shown once, on the next page
}

type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, now: time.Now, m: map[string]*session{}}
}

// create starts a session for who, dropping expired ones.
func (ss *sessions) create(who string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for id, s := range ss.m {
		if !now.Before(s.expires) {
			delete(ss.m, id)
		}
	}
	s := &session{id: randomToken(), csrf: randomToken(), who: who, expires: now.Add(ss.ttl)}
	ss.m[s.id] = s
	return s
}

// get returns a copy of the live session with id, or nil.
func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, id)
		return nil
	}
	c := *s
	return &c
}

// setFlash sets the message the session's next page shows.
func (ss *sessions) setFlash(id, msg string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.m[id]; s != nil {
		s.flash = msg
	}
}

// takeFlash returns and clears the session's message.
func (ss *sessions) takeFlash(id string) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil {
		return ""
	}
	msg := s.flash
	s.flash = ""
	return msg
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secure reports whether the browser reached the daemon over TLS: the
// daemon's own, or a reverse proxy's that says so in X-Forwarded-Proto.
// A forged header only makes a cookie stricter.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: consolePath, MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode,
	})
}

// session returns the request's live console session, or nil.
func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return s.sessions.get(c.Value)
}

// checkCSRF reports whether the form carries the session's CSRF token.
func checkCSRF(r *http.Request, sess *session) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

// authenticate checks a sign-in: the API token (name empty), or an
// operator's name and password.
func (s *Server) authenticate(name, secret string) (who string, ok bool) {
	if name == "" {
		if secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.Token)) == 1 {
			return "API token", true
		}
		return "", false
	}
	for _, op := range s.cfg.Operators {
		if op.Name == name {
			return op.Name, bcrypt.CompareHashAndPassword([]byte(op.PasswordHash), []byte(secret)) == nil
		}
	}
	// An unknown name costs as much as a wrong password.
	bcrypt.CompareHashAndPassword(dummyHash(), []byte(secret))
	return "", false
}

// dummyHash is made at the first sign-in with an unknown name, not at
// start: every command of the binary would pay for it.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("rosterd"), bcrypt.DefaultCost)
	return h
})

func bcryptHash(h string) bool {
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}
