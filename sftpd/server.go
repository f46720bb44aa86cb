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

// Storage decides whether an organization may store more: SPEC §3 refuses
// uploads while the server is low on disk space or the organization is at
// its storage quota. Admit is called when a file is opened for writing
// (grow 0) and before an upload writes past what it was admitted for
// (grow: the next AdmitChunk bytes, or more for a larger write). A non-nil
// error refuses: its message goes to the client as an SFTP failure (so it
// must not name a server path), and an upload refused half-way is
// discarded, leaving the previous file as it was. Admit may be called
// concurrently and should be cheap.
type Storage interface {
	Admit(org string, grow int64) error
}

// AdmitChunk is how many bytes an upload is admitted for at a time
// (Storage.Admit).
const AdmitChunk = 4 << 20

// Limits are the SPEC §3 limits. A zero field means its default.
type Limits struct {
	MaxUploadSize int64         // largest upload in bytes; default 1 GiB
	MaxSessions   int           // open SFTP sessions per organization; default 10
	IdleTimeout   time.Duration // a connection without traffic is closed; default 10 min
	BanFailures   int           // failed logins from one address ...; default 10
	BanWindow     time.Duration // ... within this window ...; default 5 min
	BanDuration   time.Duration // ... ban the address this long; default 15 min

	// MaxStartups caps the connections that have not authenticated yet,
	// with early random drop (OpenSSH's MaxStartups); default 10:30:100.
	MaxStartups Startups
	// MaxStartupsPerAddress caps the connections from one IP address that
	// have not authenticated yet; default 10.
	MaxStartupsPerAddress int
	// LoginGraceTime closes a connection that has not authenticated this
	// long after it was accepted (OpenSSH's LoginGraceTime); default 30 s.
	LoginGraceTime time.Duration
	// KeyRecheck is how often an authenticated connection asks Keys again
	// whether its key still belongs to its organization, and is closed
	// when it does not; default 1 min. See Server.Revoke.
	KeyRecheck time.Duration
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
	if l.MaxStartups == (Startups{}) {
		l.MaxStartups = DefaultStartups
	}
	if l.MaxStartupsPerAddress <= 0 {
		l.MaxStartupsPerAddress = 10
	}
	if l.LoginGraceTime <= 0 {
		l.LoginGraceTime = 30 * time.Second
	}
	if l.KeyRecheck <= 0 {
		l.KeyRecheck = time.Minute
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
	// Storage admits uploads by disk space and quota; nil admits all.
	Storage Storage
	// Audit receives the audit trail as records, besides the log; nil
	// keeps it in the log only.
	Audit Audit
	// Limits; zero fields take their defaults.
	Limits Limits
	// AllowSHA1RSA accepts ssh-rsa (SHA-1) signatures from RSA client keys
	// and offers the RSA host key with ssh-rsa signatures too. Off by
	// default (SPEC §3); clients that know neither rsa-sha2-256/512 nor
	// ed25519 (JSch 0.1.54 with an RSA key) need it.
	AllowSHA1RSA bool
	// SharedRoot says that other servers (the instances of a fleet, SPEC
	// §11) serve Root too and may be staging uploads in it: at start,
	// only the staging files not written for longer than the idle timeout
	// are removed as stale, not every one.
	SharedRoot bool
	// Logger receives the audit log; nil discards it.
	Logger *slog.Logger
	// Registerer receives the sftpd metrics; nil does not register them.
	Registerer prometheus.Registerer
}

// authorizeTimeout bounds one Keys.Authorize call.
const authorizeTimeout = 10 * time.Second

// Server is the SSH/SFTP front door. Its methods are safe for concurrent
// use. Serve may be called for several listeners.
type Server struct {
	cfg      Config
	hostKeys []ssh.Signer // cfg.HostKeys as offered (see hostKeySigners)
	log      *slog.Logger
	metrics  *metrics
	limits   atomic.Pointer[Limits]
	bans     *banList
	now      func() time.Time // clock of the ban list

	baseCtx    context.Context
	cancelBase context.CancelFunc

	// acceptLog and dropLog throttle the log lines of accept errors and
	// of connections dropped over the caps.
	acceptLog, dropLog throttle

	mu          sync.Mutex
	closing     bool
	listeners   map[net.Listener]struct{}
	conns       map[net.Conn]struct{}
	sessions    map[string]int // open sessions per organization
	uploads     int            // uploads and close replies in flight (see hold)
	uploadsDone chan struct{}  // closed when uploads drops to zero
	wg          sync.WaitGroup // connection goroutines

	// Also under mu: the connections not authenticated yet, and the
	// authenticated ones, which Revoke closes.
	startups startups
	logins   map[*login]struct{}
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
	hostKeys, err := hostKeySigners(cfg.HostKeys, cfg.AllowSHA1RSA)
	if err != nil {
		return nil, fmt.Errorf("sftpd: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		hostKeys:  hostKeys,
		log:       log,
		metrics:   newMetrics(cfg.Registerer),
		now:       time.Now,
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
		sessions:  map[string]int{},
		startups:  startups{byAddr: map[string]int{}},
		logins:    map[*login]struct{}{},
		acceptLog: throttle{every: 10 * time.Second},
		dropLog:   throttle{every: 10 * time.Second},
	}
	s.bans = newBanList(func() time.Time { return s.now() })
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.SetLimits(cfg.Limits)
	s.removeStaleUploads()
	return s, nil
}

// SetLimits replaces the limits (SIGHUP reload). They apply to connections,
// sessions and uploads that start afterwards; the ban thresholds and the
// caps on unauthenticated connections apply at once.
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
// ErrServerClosed. It returns another error only when ln is closed by
// someone else. Any other accept error (EMFILE and ENFILE when descriptors
// run out, ECONNABORTED, ...) is logged and retried after a pause that
// doubles from 5 ms to 1 s, as net/http does (SPEC §3: never stops the
// daemon).
//
// A connection over the caps on unauthenticated connections
// (Limits.MaxStartups, Limits.MaxStartupsPerAddress) is closed at once,
// before any byte is written.
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
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("sftpd: accept: %w", err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.metrics.acceptErrors.Inc()
			if ok, held := s.acceptLog.allow(time.Now()); ok {
				s.log.Error("sftp accept failed; retrying", "err", err, "retry_in", delay.String(), "suppressed", held)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		ip := remoteIP(nc)
		if reason := s.admit(ip, s.currentLimits()); reason != "" {
			nc.Close()
			s.metrics.refusals.WithLabelValues(reason).Inc()
			if ok, held := s.dropLog.allow(time.Now()); ok {
				s.log.Warn("connection dropped: too many unauthenticated connections", "event", "refused",
					"reason", reason, "remote_addr", nc.RemoteAddr().String(), "suppressed", held)
			}
			continue
		}
		if !s.track(nc) {
			s.authenticated(ip)
			nc.Close()
			return ErrServerClosed
		}
		go s.handleConn(nc, ip)
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

// handleConn serves one connection admitted by Serve, which counted it as
// unauthenticated under ip; that count ends when the handshake does.
func (s *Server) handleConn(nc net.Conn, ip string) {
	defer s.untrack(nc)
	defer nc.Close()
	var counted sync.Once
	endStartup := func() { counted.Do(func() { s.authenticated(ip) }) }
	defer endStartup()
	remote := nc.RemoteAddr().String()
	auth := s.newConnAuth(remote)
	if s.bans.Banned(ip) {
		s.metrics.refusals.WithLabelValues("banned").Inc()
		s.log.Warn("connection refused: address banned", "event", "refused", "reason", "banned", "remote_addr", remote)
		return
	}
	limits := s.currentLimits()
	// SPEC §3: a connection that has not authenticated within the login
	// grace time is closed.
	grace := time.AfterFunc(limits.LoginGraceTime, func() { nc.Close() })
	graceExpired := func() bool {
		if grace.Stop() {
			return false
		}
		s.metrics.refusals.WithLabelValues(reasonLoginGraceTime).Inc()
		s.log.Info("connection closed: not authenticated within the login grace time", "event", "refused",
			"reason", reasonLoginGraceTime, "remote_addr", remote, "grace", limits.LoginGraceTime.String())
		return true
	}
	ic := newIdleConn(nc, limits.IdleTimeout)
	defer ic.stop()

	vc, hello, err := peekClientHello(ic)
	if err != nil {
		if !graceExpired() {
			s.log.Debug("ssh handshake failed", "remote_addr", remote, "err", err)
		}
		return
	}
	sconn, chans, reqs, err := ssh.NewServerConn(vc, s.serverConfig(auth, hello))
	expired := graceExpired()
	endStartup()
	auth.handshakeDone(err)
	if err != nil {
		return
	}
	defer sconn.Close()
	if expired {
		return
	}
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

	key, _ := sconn.Permissions.ExtraData[permKey].(ssh.PublicKey)
	if key == nil {
		log.Error("authenticated connection without its key; closing it")
		return
	}
	l := &login{c: c, key: key, close: sconn.Close}
	defer s.unregister(l)
	if !s.register(l) {
		return
	}
	recheckCtx, stopRecheck := context.WithCancel(s.baseCtx)
	defer stopRecheck()
	go s.recheck(recheckCtx, l, limits.KeyRecheck)

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

// permKey is the ssh.Permissions ExtraData key of the ssh.PublicKey the
// connection authenticated with, which the key re-check asks Keys about.
const permKey = "rosterd-key"

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
