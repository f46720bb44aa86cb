package sftpd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"
)

// Keys decides who may log in. Authorize returns nil when key is one of
// org's keys; any error refuses the key. It is called for every key a client
// offers, including keys the client then does not sign with, so it must not
// record anything; it may be called concurrently.
type Keys interface {
	Authorize(ctx context.Context, org string, key ssh.PublicKey) error
}

// Uploads receives completion signals. Notify is called with the file name
// as it sits in the organization's folder, after the file is in place: when
// a handle that changed the file (created, truncated or wrote to it) is
// closed cleanly, and when a rename or posix-rename targets that name; never
// for a mode or time change (SPEC §3). It is called for every such name in the
// folder's top level (never for reports/ or for the server's own temporary
// names); the receiver decides which names it processes. Notify must not
// block.
type Uploads interface {
	Notify(org, name string)
}

// Limits are the SPEC §3 limits. A zero field means its default.
type Limits struct {
	MaxUploadSize int64         // largest upload in bytes; default 1 GiB
	MaxSessions   int           // open SFTP sessions per organization; default 10
	IdleTimeout   time.Duration // a connection without traffic is closed; default 10 min
	BanFailures   int           // failed logins from one address ...; default 10
	BanWindow     time.Duration // ... within this window ...; default 5 min
	BanDuration   time.Duration // ... ban the address this long; default 15 min
}

func (l Limits) withDefaults() Limits {
	if l.MaxUploadSize <= 0 {
		l.MaxUploadSize = 1 << 30
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = 10
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 10 * time.Minute
	}
	if l.BanFailures <= 0 {
		l.BanFailures = 10
	}
	if l.BanWindow <= 0 {
		l.BanWindow = 5 * time.Minute
	}
	if l.BanDuration <= 0 {
		l.BanDuration = 15 * time.Minute
	}
	return l
}

// Config configures a Server. A zero field means its documented default.
type Config struct {
	// HostKeys are the server's host keys (see LoadHostKeys). Required.
	HostKeys []ssh.Signer
	// Root is the folder holding one folder per organization. A missing
	// organization folder (and its reports/ subfolder) is created at login.
	// Required.
	Root string
	// Keys authorizes client keys. Required.
	Keys Keys
	// Uploads receives completion signals; nil drops them.
	Uploads Uploads
	// Audit receives the audit trail as records, besides the log; nil
	// keeps it in the log only.
	Audit Audit
	// Limits; zero fields take their defaults.
	Limits Limits
	// AllowSHA1RSA accepts ssh-rsa (SHA-1) signatures from RSA client keys.
	// Off by default (SPEC §3); old clients such as some Windows tools need it.
	AllowSHA1RSA bool
	// Logger receives the audit log; nil discards it.
	Logger *slog.Logger
	// Registerer receives the sftpd metrics; nil does not register them.
	Registerer prometheus.Registerer
}

// handshakeTimeout bounds the time from TCP accept to authenticated
// connection (OpenSSH's LoginGraceTime).
const handshakeTimeout = 2 * time.Minute

// authorizeTimeout bounds one Keys.Authorize call.
const authorizeTimeout = 10 * time.Second

// Server is the SSH/SFTP front door. Its methods are safe for concurrent
// use. Serve may be called for several listeners.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	limits  atomic.Pointer[Limits]
	bans    *banList
	now     func() time.Time // clock of the ban list

	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu          sync.Mutex
	closing     bool
	listeners   map[net.Listener]struct{}
	conns       map[net.Conn]struct{}
	sessions    map[string]int // open sessions per organization
	uploads     int            // uploads and close replies in flight (see hold)
	uploadsDone chan struct{}  // closed when uploads drops to zero
	wg          sync.WaitGroup // connection goroutines
}

// New returns a Server for cfg. It creates cfg.Root (0700) if missing.
func New(cfg Config) (*Server, error) {
	if len(cfg.HostKeys) == 0 {
		return nil, errors.New("sftpd: no host keys")
	}
	if cfg.Root == "" {
		return nil, errors.New("sftpd: no root folder")
	}
	if cfg.Keys == nil {
		return nil, errors.New("sftpd: no key store")
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("sftpd: root folder: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		metrics:   newMetrics(cfg.Registerer),
		now:       time.Now,
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
		sessions:  map[string]int{},
	}
	s.bans = newBanList(func() time.Time { return s.now() })
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.SetLimits(cfg.Limits)
	s.removeStaleUploads()
	return s, nil
}

// SetLimits replaces the limits (SIGHUP reload). They apply to sessions and
// uploads that start afterwards; the ban thresholds apply at once.
func (s *Server) SetLimits(l Limits) {
	l = l.withDefaults()
	s.limits.Store(&l)
}

func (s *Server) currentLimits() Limits { return *s.limits.Load() }

var orgNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidOrgName reports whether name is a valid organization name, which is
// also the SSH user name: [a-z0-9][a-z0-9-]{0,62}.
func ValidOrgName(name string) bool { return orgNameRE.MatchString(name) }

// Serve accepts connections on ln until Shutdown; it then returns
// ErrServerClosed. Other accept errors are returned as they are.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("sftpd: accept: %w", err)
		}
		delay = 0
		if !s.track(nc) {
			nc.Close()
			return ErrServerClosed
		}
		go s.handleConn(nc)
	}
}

func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[nc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting connections, refuses new uploads, waits for the
// uploads in flight until ctx is done, then closes every connection (an
// upload still open is discarded, never put in place) and waits for the
// connection goroutines. It returns ctx.Err() when ctx ended the wait.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	wait := s.uploadsDone
	if s.uploads == 0 {
		wait = nil
	}
	s.mu.Unlock()

	var err error
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	s.mu.Lock()
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.cancelBase()
	s.wg.Wait()
	return err
}

// beginUpload counts an upload in flight; it fails once Shutdown started.
func (s *Server) beginUpload() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.holdLocked()
	return true
}

func (s *Server) endUpload() { s.release() }

// hold counts work Shutdown waits for: open uploads, and close requests
// whose reply is not written yet (so the client learns its upload landed
// before the connection is closed).
func (s *Server) hold() {
	s.mu.Lock()
	s.holdLocked()
	s.mu.Unlock()
}

func (s *Server) holdLocked() {
	if s.uploads == 0 {
		s.uploadsDone = make(chan struct{})
	}
	s.uploads++
}

func (s *Server) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploads--
	if s.uploads == 0 {
		close(s.uploadsDone)
	}
}

func (s *Server) acquireSession(org string, l Limits) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[org] >= l.MaxSessions {
		return false
	}
	s.sessions[org]++
	return true
}

func (s *Server) releaseSession(org string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[org]--; s.sessions[org] <= 0 {
		delete(s.sessions, org)
	}
}

// connAuth is what one connection's auth callbacks saw. It is used for
// logging and the ban list only; the organization is always taken from the
// Permissions the handshake returns (the CVE-2024-45337 lesson: the
// public-key callback also sees keys a client only offered).
type connAuth struct {
	mu       sync.Mutex
	failures int
}

func (a *connAuth) failed() {
	a.mu.Lock()
	a.failures++
	a.mu.Unlock()
}

func (a *connAuth) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failures
}

func (s *Server) handleConn(nc net.Conn) {
	defer s.untrack(nc)
	defer nc.Close()
	remote := nc.RemoteAddr().String()
	ip := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		ip = h
	}
	if s.bans.Banned(ip) {
		s.metrics.refusals.WithLabelValues("banned").Inc()
		s.log.Warn("connection refused: address banned", "event", "refused", "reason", "banned", "remote_addr", remote)
		return
	}
	limits := s.currentLimits()
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	ic := newIdleConn(nc, limits.IdleTimeout)
	defer ic.stop()

	vc, hello, err := peekClientHello(ic)
	if err != nil {
		s.log.Debug("ssh handshake failed", "remote_addr", remote, "err", err)
		return
	}
	auth := &connAuth{}
	cfg := s.serverConfig(auth, remote, hello)
	sconn, chans, reqs, err := ssh.NewServerConn(vc, cfg)
	if err != nil {
		if auth.count() > 0 {
			s.metrics.authFailures.Inc()
			if s.bans.Fail(ip, s.currentLimits()) {
				s.metrics.bans.Inc()
				s.log.Warn("address banned after repeated authentication failures",
					"event", "ban", "remote_addr", ip, "duration", s.currentLimits().BanDuration.String())
			}
		}
		s.log.Info("ssh handshake failed", "event", "refused", "remote_addr", remote, "err", err)
		return
	}
	defer sconn.Close()
	nc.SetDeadline(time.Time{})
	go ssh.DiscardRequests(reqs) // tcpip-forward and other global requests: refused

	org := sconn.Permissions.Extensions[permOrg]
	keyFP := sconn.Permissions.Extensions[permKeyFP]
	session := newSessionID()
	log := s.log.With("org", org, "session", session, "remote_addr", remote, "key_fp", keyFP)
	var algs ssh.NegotiatedAlgorithms
	if am, ok := sconn.Conn.(ssh.AlgorithmsConnMetadata); ok {
		algs = am.Algorithms()
	}
	start := time.Now()
	c := &conn{srv: s, org: org, session: session, remote: remote, keyFP: keyFP, log: log, limits: limits}
	log.Info("session start", "event", "session.start",
		"client", string(sconn.ClientVersion()), "kex", algs.KeyExchange,
		"cipher", algs.Read.Cipher, "mac", algs.Read.MAC, "host_key", algs.HostKey)
	c.audit(AuditRecord{Time: start, Event: EventSessionStart})
	defer func() {
		d := time.Since(start)
		log.Info("session end", "event", "session.end", "duration", d.String())
		c.audit(AuditRecord{Event: EventSessionEnd, Duration: d})
	}()

	root, err := s.openOrgRoot(org)
	if err != nil {
		c.refuseFolder(chans, err)
		return
	}
	defer root.Close()
	c.root = root

	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			c.refuse("forwarding", "channel", nch.ChannelType())
			nch.Reject(ssh.Prohibited, "forwarding is not allowed: this server only offers SFTP")
			continue
		}
		if !s.acquireSession(org, limits) {
			c.refuse("session_limit", "limit", limits.MaxSessions)
			nch.Reject(ssh.ResourceShortage, "too many open sessions for this organization")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			s.releaseSession(org)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.releaseSession(org)
			c.serveSession(ch, chReqs)
		}()
	}
}

func (s *Server) refuse(log *slog.Logger, reason string, args ...any) {
	s.metrics.refusals.WithLabelValues(reason).Inc()
	log.Info("request refused", append([]any{"event", "refused", "reason", reason}, args...)...)
}

func newSessionID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Extension keys of the ssh.Permissions the auth callback returns.
const (
	permOrg   = "rosterd-org"
	permKeyFP = "rosterd-key-fp"
)

// serverConfig builds the ssh.ServerConfig of one connection. The callbacks
// record failures in auth for the ban list and the log.
func (s *Server) serverConfig(auth *connAuth, remote string, hello clientHello) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config: ssh.Config{
			KeyExchanges: kexAlgorithms,
			Ciphers:      ciphersFor(hello),
			MACs:         macsFor(hello),
		},
		PublicKeyAuthAlgorithms: pubKeyAuthAlgorithms(s.cfg.AllowSHA1RSA),
		ServerVersion:           serverVersion,
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			org := meta.User()
			fp := Fingerprint(key)
			err := s.authorize(org, key)
			if err != nil {
				auth.failed()
				s.log.Warn("authentication failed", "event", "auth.failure", "org", org,
					"remote_addr", remote, "key_fp", fp, "err", err)
				s.auditAuthFailure(org, remote, fp, err.Error())
				return nil, err
			}
			return &ssh.Permissions{Extensions: map[string]string{permOrg: org, permKeyFP: fp}}, nil
		},
		AuthLogCallback: func(meta ssh.ConnMetadata, method string, err error) {
			if err != nil && method != "none" && method != "publickey" {
				auth.failed()
				s.log.Warn("authentication failed", "event", "auth.failure", "org", meta.User(),
					"remote_addr", remote, "method", method, "err", err)
				s.auditAuthFailure(meta.User(), remote, "", "method "+method+" is not accepted")
			}
		},
	}
	for _, k := range s.cfg.HostKeys {
		cfg.AddHostKey(k)
	}
	return cfg
}

var errUnknownKey = errors.New("key not authorized for this organization")

func (s *Server) authorize(org string, key ssh.PublicKey) error {
	if !ValidOrgName(org) {
		return errors.New("invalid organization name")
	}
	if err := checkKeyType(key); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.baseCtx, authorizeTimeout)
	defer cancel()
	if err := s.cfg.Keys.Authorize(ctx, org, key); err != nil {
		return fmt.Errorf("%w: %w", errUnknownKey, err)
	}
	return nil
}

// idleConn closes the connection after a period without traffic in either
// direction. Activity is a timestamp store per Read/Write; a timer checks it.
type idleConn struct {
	net.Conn
	timeout time.Duration
	last    atomic.Int64 // unix nanoseconds of the last activity
	timer   *time.Timer
}

func newIdleConn(nc net.Conn, timeout time.Duration) *idleConn {
	c := &idleConn{Conn: nc, timeout: timeout}
	c.last.Store(time.Now().UnixNano())
	c.timer = time.AfterFunc(timeout, c.check)
	return c
}

func (c *idleConn) check() {
	idle := time.Duration(time.Now().UnixNano() - c.last.Load())
	if idle >= c.timeout {
		c.Conn.Close()
		return
	}
	c.timer.Reset(c.timeout - idle)
}

func (c *idleConn) stop() { c.timer.Stop() }

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.last.Store(time.Now().UnixNano())
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.last.Store(time.Now().UnixNano())
	return n, err
}

var _ io.ReadWriter = (*idleConn)(nil)

func (s *Server) notify(org, name string) {
	if s.cfg.Uploads != nil {
		s.cfg.Uploads.Notify(org, name)
	}
}
