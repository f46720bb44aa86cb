package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/schema"
)

//go:embed templates static
var assets embed.FS

// Config wires the pages to the daemon. API and Token are required.
type Config struct {
	// API is the daemon's HTTP API handler (httpapi.Server). Every page
	// reads and changes state by requests to it, in process.
	API http.Handler
	// Token is the API token: the console's requests carry it, and
	// signing in with it opens the console.
	Token string
	// Operators may sign in with a name and password besides the token.
	Operators []Operator
	// HostKeys are the SFTP server's host keys, shown on the setup page.
	HostKeys []ssh.PublicKey
	// SFTPAddr returns the host:port admins connect to. A host of
	// 0.0.0.0, :: or none is replaced by the host the page was asked for.
	SFTPAddr func() string
	// Limits are the limits a file is checked with (as `rosterd validate
	// --config` would with the daemon's config); SetLimits changes them.
	Limits schema.Limits
	// MaxCheckSize bounds each file checked on a page; 0 = 64 MiB. A
	// larger file is checked with `rosterd plan`.
	MaxCheckSize int64
	// SessionTTL is how long a console session lasts after sign-in; 0 =
	// 12 hours.
	SessionTTL time.Duration
	Logger     *slog.Logger
}

// Operator is one person who may sign in to the console with a password.
type Operator struct {
	Name string
	// PasswordHash is a bcrypt hash ("$2a$", "$2b$" or "$2y$").
	PasswordHash string
}

// Server serves /console/ and /setup/. It is an http.Handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	pages    *pages
	sessions *sessions
	signins  *signinLimiter
	static   http.Handler
	limits   atomic.Pointer[schema.Limits]
}

// SetLimits changes the limits files are checked with (a reload of the
// daemon's configuration). Safe while pages are served.
func (s *Server) SetLimits(l schema.Limits) { s.limits.Store(&l) }

// New returns the pages' handler.
func New(cfg Config) (*Server, error) {
	if cfg.API == nil || cfg.Token == "" {
		return nil, errors.New("web: Config.API and Config.Token are required")
	}
	for _, op := range cfg.Operators {
		if !bcryptHash(op.PasswordHash) {
			return nil, fmt.Errorf("web: operator %q: password_hash is not a bcrypt hash ($2a$, $2b$ or $2y$)", op.Name)
		}
	}
	if cfg.MaxCheckSize <= 0 {
		cfg.MaxCheckSize = 64 << 20
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.SFTPAddr == nil {
		cfg.SFTPAddr = func() string { return "" }
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), sessions: newSessions(cfg.SessionTTL), signins: newSigninLimiter()}
	s.SetLimits(cfg.Limits)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	s.static = http.FileServerFS(static)
	s.routeSetup()
	s.routeConsole()
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Nothing is loaded from elsewhere, no page is framed, and no address
	// (a setup page's holds its token) is sent on to another site.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// serveStatic serves the embedded stylesheet and script.
func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + r.PathValue("file")
	s.static.ServeHTTP(w, r2)
}

// apiError is an error answer of the API: its message is meant for the
// person who made the request.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return e.Message }

// errorMessage is what a page shows for err: the API's own message, or a
// general one (the cause is logged).
func (s *Server) errorMessage(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Message
	}
	s.log.Error("web request failed", "err", err)
	return "something went wrong on the server; the daemon's log says what"
}

// apiRequest is one in-process request to the API.
type apiRequest struct {
	method, path string
	token        string
	body         io.Reader
	contentType  string
}

// call sends req to the API as from the client of r (its address, host
// and scheme) and decodes a 2xx JSON answer into out (when not nil). A
// non-2xx answer is an *apiError.
func (s *Server) call(r *http.Request, req apiRequest, out any) error {
	ir, err := http.NewRequestWithContext(r.Context(), req.method, req.path, req.body)
	if err != nil {
		return err
	}
	ir.RemoteAddr, ir.Host, ir.TLS = r.RemoteAddr, r.Host, r.TLS
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		ir.Header.Set("X-Forwarded-Proto", p)
	}
	ir.Header.Set("Authorization", "Bearer "+req.token)
	if req.contentType != "" {
		ir.Header.Set("Content-Type", req.contentType)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	s.cfg.API.ServeHTTP(rec, ir)
	if rec.status/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Error.Message == "" {
			return fmt.Errorf("%s %s: status %d", req.method, req.path, rec.status)
		}
		return &apiError{Status: rec.status, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil || rec.body.Len() == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = bytes.Clone(rec.body.Bytes())
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", req.method, req.path, err)
	}
	return nil
}

// get is call for a GET with a JSON answer.
func (s *Server) get(r *http.Request, token, path string, out any) error {
	return s.call(r, apiRequest{method: http.MethodGet, path: path, token: token}, out)
}

// send is call with a JSON body (nil: none).
func (s *Server) send(r *http.Request, token, method, path string, body, out any) error {
	req := apiRequest{method: method, path: path, token: token}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		req.body, req.contentType = bytes.NewReader(b), "application/json"
	}
	return s.call(r, req, out)
}

// recorder collects an in-process API answer.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}

// pathEscape escapes one path segment for an API path.
func pathEscape(s string) string { return url.PathEscape(s) }
