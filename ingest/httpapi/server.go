package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/state"
)

// Config wires the API to the rest of the daemon. DB and Token are
// required; a nil optional part makes its routes answer 503.
type Config struct {
	DB Store
	// Token is the bearer token every /v1 request must carry.
	Token string
	// OrgsRoot is the folder holding one SFTP folder per organization; an
	// organization's folder is created with it and removed with it.
	OrgsRoot string
	// Gatherer serves /metrics; nil answers 404.
	Gatherer prometheus.Gatherer
	// Ready reports whether the daemon is ready (both listeners up,
	// startup scan done); nil means always ready.
	Ready func() bool
	// Space, when set, makes /readyz answer not ready, with the reason,
	// while the disk is low (uploads are refused then; SPEC §3).
	Space  *ingest.Space
	Logger *slog.Logger
	// Deliverer serves /v1/webhooks and redelivery; nil answers 503.
	Deliverer *webhook.Deliverer
	// Pipeline runs plans and approvals; nil answers 503 on those routes.
	Pipeline *ingest.Pipeline
	// Revoke closes the SFTP sessions of org that logged in with the key
	// whose SHA256 fingerprint is keyFP, or all of org's sessions when
	// keyFP is empty, and returns how many it closed (sftpd.Server.Revoke).
	// It is called after a key or an organization is removed (SPEC §3),
	// and reaches the sessions of this instance only; nil closes none.
	Revoke func(org, keyFP string) int
	// ReadTimeout and WriteTimeout are the HTTP server's. A plan body may
	// be far larger than ReadTimeout lets through: the plan route renews
	// the read deadline by ReadTimeout at each read of its body, and gives
	// its answer WriteTimeout from the end of the body. Zero: not renewed.
	ReadTimeout, WriteTimeout time.Duration
	// Daemon describes the running daemon (version, start, listeners)
	// for GET /v1/status; nil leaves them out.
	Daemon func() DaemonInfo
	// PublicURL is where users reach the daemon's pages
	// ("https://rosterd.example.com"), for the URLs of setup links; ""
	// takes the scheme and host of the request that creates the link.
	PublicURL string
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	routes []string // the patterns registered, "GET /v1/events"
}

// New returns the API handler.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.routeHealth()
	s.routeOrgs()
	s.routeKeys()
	s.routeBatches()
	s.routeEvents()
	s.routeDirectory()
	s.routeWebhooks()
	s.routeAudit()
	s.routePGP()
	s.routeStatus()
	s.routeSetupLinks()
	s.routeSetup()
	s.routeSummary()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.error(w, r, http.StatusNotFound, "not_found", "no such endpoint", nil)
	})
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Routes returns the patterns of every route the server registers, such
// as "GET /v1/events", in the order they were registered: what
// docs/openapi.json describes.
func (s *Server) Routes() []string { return slices.Clone(s.routes) }

// route registers a route without authentication.
func (s *Server) route(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, h)
}

// handle registers an authenticated /v1 route.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.route(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rosterd"`)
			s.error(w, r, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token", nil)
			return
		}
		h(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
}

// errorBody is the one error shape of SPEC §8.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// error answers status with code and message for the client, and logs
// cause (which never reaches the client) when it is not nil.
func (s *Server) error(w http.ResponseWriter, r *http.Request, status int, code, message string, cause error) {
	if cause != nil {
		s.log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", cause)
	}
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	writeJSON(w, status, b)
}

// revoke closes the sessions of a removed key or organization.
func (s *Server) revoke(org, keyFP string) int {
	if s.cfg.Revoke == nil {
		return 0
	}
	return s.cfg.Revoke(org, keyFP)
}

// internal answers 500 for an unexpected error.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.error(w, r, http.StatusInternalServerError, "internal", "internal error; see the daemon's log", err)
}

// stateError maps state's sentinels to 404 and 409, anything else to 500.
func (s *Server) stateError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, state.ErrNotFound):
		s.error(w, r, http.StatusNotFound, "not_found", what+" not found", nil)
	case errors.Is(err, state.ErrExists):
		s.error(w, r, http.StatusConflict, "already_exists", what+" already exists", nil)
	default:
		s.internal(w, r, err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// readJSON decodes a request body of at most 1 MiB, refusing unknown
// fields so that a misspelt setting is an error, not silently ignored.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.error(w, r, http.StatusBadRequest, "invalid_json", "request body: "+err.Error(), nil)
		return false
	}
	return true
}

// List is the list shape of SPEC §8.
type List[T any] struct {
	Data         []T          `json:"data"`
	ListMetadata ListMetadata `json:"list_metadata"`
}

// ListMetadata carries the cursor of the next page; After is nil on the
// last page.
type ListMetadata struct {
	After *string `json:"after"`
}

// page reads limit (default 100, 1..1000) and after from the query.
func (s *Server) page(w http.ResponseWriter, r *http.Request) (after string, limit int, ok bool) {
	q := r.URL.Query()
	limit = 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.error(w, r, http.StatusBadRequest, "invalid_limit", "limit must be a whole number from 1 to 1000", nil)
			return "", 0, false
		}
		limit = n
	}
	return q.Get("after"), limit, true
}

// newList builds a page from up to limit+1 fetched items: the extra item,
// if present, says there is a next page, whose cursor is cursor(last kept).
func newList[T any](items []T, limit int, cursor func(T) string) List[T] {
	l := List[T]{Data: items}
	if l.Data == nil {
		l.Data = []T{}
	}
	if len(items) > limit {
		l.Data = items[:limit]
		c := cursor(l.Data[limit-1])
		l.ListMetadata.After = &c
	}
	return l
}
