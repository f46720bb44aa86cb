package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/ingest/httpapi"
	"github.com/rosterd/rosterd/ingest/web"
	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state/postgres"
)

// serveCommand is `rosterd serve` (SPEC §2).
func serveCommand() *command {
	return &command{
		name: "serve", summary: "run the daemon: SFTP, HTTP API, ingest and webhook delivery",
		about: "Run the daemon: the SFTP server the organizations upload to, the HTTP API,\n" +
			"the ingest of completed uploads into batches, and webhook delivery. State is\n" +
			"kept in the data directory (created 0700 on first start); one daemon at a\n" +
			"time may use a data directory. With --store postgres://... the state is in\n" +
			"PostgreSQL instead, which several instances share along with the data\n" +
			"directory (README, Several instances): each instance takes uploads, and runs\n" +
			"an organization's batches while it holds the organization's lease. It logs\n" +
			"to standard error and runs until SIGTERM or SIGINT, letting uploads in flight\n" +
			"finish (shutdown_timeout, 30s); SIGHUP re-reads the config file.\n\n" +
			"Each flag also comes from the environment and from the config file: a flag\n" +
			"beats the environment, which beats the file, which beats the default.\n" +
			"docs/configuration.md lists every key.",
		example: "rosterd serve --demo\n" +
			"rosterd serve --config /etc/rosterd/rosterd.toml\n" +
			"ROSTERD_DATA=/var/lib/rosterd rosterd serve --sftp-addr :22 --http-addr 127.0.0.1:8080",
		setup: func(fs *flag.FlagSet) action {
			f := registerServeFlags(fs)
			return func(ctx context.Context, std stdio, args []string) error {
				return runServe(ctx, f, std.out, std.err)
			}
		},
	}
}

func runServe(ctx context.Context, f *serveFlags, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(f, os.Getenv)
	if err != nil {
		return &ExitCodeError{Code: 2, Err: fmt.Errorf("configuration: %w", err)}
	}
	log := newLogger(cfg.LogFormat, stderr)
	setMemoryLimit(cfg, log)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := openDaemon(ctx, cfg, log)
	if err != nil {
		return err
	}
	return d.run(ctx, stop, f, stdout)
}

// newLogger logs text on a terminal and JSON otherwise (SPEC §2).
func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// daemonState is everything `serve` opens, in the order it is closed.
type daemonState struct {
	cfg Config
	log *slog.Logger
	db  daemonStore
	// pg is db when it is PostgreSQL: a fleet's shared store, whose
	// notifications the listener receives.
	pg        *postgres.DB
	listener  *postgres.Listener
	reg       *prometheus.Registry
	sftp      *sftpd.Server
	api       *httpapi.Server
	orgsRoot  string
	ready     atomic.Bool
	pipeline  *ingest.Pipeline
	deliverer *webhook.Deliverer
	audit     *auditSink
	// info is what GET /v1/status says of the daemon; set once both
	// listeners are up.
	info     atomic.Pointer[httpapi.DaemonInfo]
	web      *web.Server
	tls      *tls.Config  // nil: plain HTTP
	sftpAddr atomic.Value // string: the SFTP listener's address, once listening
}

// openDaemon prepares the data directory, opens the store, loads the host
// keys and API token and makes the servers, without listening yet.
func openDaemon(ctx context.Context, cfg Config, log *slog.Logger) (*daemonState, error) {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	db, pg, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	d := &daemonState{cfg: cfg, log: log, db: db, pg: pg, orgsRoot: filepath.Join(cfg.Data, "orgs")}
	if err := d.open(); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// open makes the daemon's parts over its store.
func (d *daemonState) open() error {
	cfg, log := d.cfg, d.log
	// SPEC §11: from the store, so that every instance of a fleet shows
	// the same host key and takes the same token.
	hostKeys, err := loadHostKeys(d.db)
	if err != nil {
		return err
	}
	for _, k := range hostKeys {
		log.Info("host key", "type", k.PublicKey().Type(), "fingerprint", sftpd.KeygenLine(k.PublicKey(), ""))
	}
	token := cfg.APIToken
	if token == "" {
		if token, err = loadAPIToken(d.db); err != nil {
			return err
		}
		if d.pg != nil {
			// The client subcommands read it from the data directory.
			if err := writeIfChanged(filepath.Join(cfg.Data, fileAPIToken), []byte(token+"\n")); err != nil {
				return fmt.Errorf("write API token: %w", err)
			}
		}
	}
	if err := os.MkdirAll(d.orgsRoot, 0o700); err != nil {
		return fmt.Errorf("create organizations folder: %w", err)
	}
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if d.deliverer, err = newDeliverer(cfg, d); err != nil {
		return err
	}
	if err := d.openIngest(); err != nil {
		return err
	}
	if d.pg != nil {
		// SPEC §11: one listener per instance; the events another
		// instance commits wake this one's deliverer, and its poll (every
		// organization, "") is the fallback for notifications lost.
		d.listener = d.pg.NewListener(postgres.ListenerConfig{Logger: log})
		d.listener.Handle(postgres.ChannelEvents, d.deliverer.Wake)
		// A batch another instance recorded: this one runs it if that one
		// dies (ingest/lease.go).
		d.listener.Handle(postgres.ChannelBatches, d.pipeline.Wake)
		log.Info("store: PostgreSQL", "instance", d.pg.Instance(), "lease_ttl", cfg.LeaseTTL.D().String())
	}

	space := d.pipeline.Space()
	d.sftp, err = sftpd.New(sftpd.Config{
		HostKeys:     hostKeys,
		Root:         d.orgsRoot,
		Keys:         keyAuth{d.db},
		Uploads:      d.pipeline,
		Storage:      space,
		Audit:        d.openAudit(),
		Limits:       sftpLimits(cfg),
		AllowSHA1RSA: cfg.AllowSHA1RSA,
		// On PostgreSQL the folder is a fleet's: another instance may be
		// staging an upload in it.
		SharedRoot: d.pg != nil,
		Logger:     log,
		Registerer: d.reg,
	})
	if err != nil {
		return err
	}
	d.api = httpapi.New(httpapi.Config{
		DB:        d.db,
		Token:     token,
		OrgsRoot:  d.orgsRoot,
		Gatherer:  d.reg,
		Ready:     d.ready.Load,
		Space:     space,
		Logger:    log,
		Pipeline:  d.pipeline,
		Deliverer: d.deliverer,
		// Removing a key or an organization closes its SFTP sessions on
		// this instance at once; other instances close theirs at their
		// next key re-check (limits.key_recheck_interval).
		Revoke:       d.sftp.Revoke,
		ReadTimeout:  cfg.HTTP.ReadTimeout.D(),
		WriteTimeout: cfg.HTTP.WriteTimeout.D(),
		Daemon: func() httpapi.DaemonInfo {
			if info := d.info.Load(); info != nil {
				return *info
			}
			return httpapi.DaemonInfo{Version: version()}
		},
		PublicURL: cfg.Console.PublicURL,
	})
	if d.tls, err = loadTLS(cfg); err == nil {
		d.web, err = d.newWeb(token, hostKeys)
	}
	return err
}

// openIngest makes the pipeline, which receives sftpd's completion
// signals and wakes delivery after each applied batch with events. It
// runs on either store (d.db is an ingest.Store).
//
// On PostgreSQL the pipeline runs an organization's batches while it
// holds state.BatchLease(org), taken from the store (ingest/lease.go),
// and the listener's postgres.ChannelBatches wakes it (Pipeline.Wake) for
// the batches another instance recorded and did not finish.
func (d *daemonState) openIngest() error {
	ic := ingestConfig(d.cfg, d)
	ic.OnApplied = d.deliverer.Wake
	if err := applyTestHooks(os.Getenv, &ic); err != nil {
		return err
	}
	var err error
	d.pipeline, err = ingest.New(ic)
	return err
}

// writeIfChanged writes data to path (0600, atomically) unless the file
// holds it already: instances sharing the data directory write the same.
func writeIfChanged(path string, data []byte) error {
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, data) {
		return nil
	}
	return sftpd.WriteFileAtomic(path, data, 0o600)
}

// run listens, serves until ctx is done, then shuts down in order: SFTP
// (uploads in flight get the shutdown timeout), ingest, delivery, HTTP,
// state.
func (d *daemonState) run(ctx context.Context, stopSignals func(), f *serveFlags, stdout io.Writer) error {
	defer d.db.Close()
	defer d.audit.Close() // after the SFTP server's shutdown, before state closes
	sftpLn, err := net.Listen("tcp", d.cfg.SFTPAddr)
	if err != nil {
		return fmt.Errorf("listen sftp: %w", err)
	}
	httpLn, err := net.Listen("tcp", d.cfg.HTTPAddr)
	if err != nil {
		sftpLn.Close()
		return fmt.Errorf("listen http: %w", err)
	}
	d.sftpAddr.Store(sftpLn.Addr().String())
	addrFiles := map[string]string{fileSFTPAddr: sftpLn.Addr().String(), fileHTTPAddr: httpScheme(d.tls) + httpLn.Addr().String()}
	if d.tls != nil {
		// The client subcommands trust exactly this certificate on the
		// loopback address, whatever names it is issued for.
		addrFiles[fileHTTPCert] = certPEM(d.tls)
	}
	for name, addr := range addrFiles {
		path, content := filepath.Join(d.cfg.Data, name), []byte(strings.TrimSuffix(addr, "\n")+"\n")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		// Instances of a fleet may share the data directory: remove the
		// file only while it is still this one's.
		defer func() {
			if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, content) {
				os.Remove(path)
			}
		}()
	}

	d.info.Store(&httpapi.DaemonInfo{Version: version(), StartedAt: time.Now().UTC(), Listeners: []httpapi.Listener{
		{Name: "sftp", Address: sftpLn.Addr().String()}, {Name: "http", Address: httpLn.Addr().String()},
	}})
	hs := newHTTPServer(d.cfg.HTTP, d.httpHandler(), d.log)
	hs.TLSConfig = d.tls
	httpLn = newLimitListener(httpLn, d.cfg.HTTP.MaxConnections, d.reg)
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.sftp.Serve(sftpLn); err != nil && !errors.Is(err, sftpd.ErrServerClosed) {
			errc <- fmt.Errorf("sftp server: %w", err)
		}
	})
	wg.Go(func() {
		serve := hs.Serve
		if d.tls != nil {
			serve = func(ln net.Listener) error { return hs.ServeTLS(ln, "", "") }
		}
		if err := serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	})
	// Ingest runs until the SFTP server has drained, so uploads in flight
	// still become batches.
	ingestCtx, stopIngest := context.WithCancel(context.Background())
	defer stopIngest()
	ingestDone := make(chan error, 1)
	if d.pipeline != nil {
		go func() { ingestDone <- d.pipeline.Run(ingestCtx) }()
	} else {
		ingestDone <- nil
	}
	// Delivery stops after ingest; what is not delivered by then goes at
	// the next start.
	deliverCtx, stopDelivery := context.WithCancel(context.Background())
	defer stopDelivery()
	deliverDone := make(chan error, 1)
	go func() { deliverDone <- d.deliverer.Run(deliverCtx) }()
	listenDone := make(chan error, 1)
	if d.listener != nil {
		go func() { listenDone <- d.listener.Run(deliverCtx) }()
	} else {
		listenDone <- nil
	}

	d.log.Info("rosterd listening", "sftp_addr", sftpLn.Addr().String(), "http_addr", httpLn.Addr().String(), "data", d.cfg.Data, "version", version())

	if f.demo {
		if err := d.setupDemo(sftpLn.Addr().String(), stdout); err != nil {
			d.log.Error("demo setup failed", "err", err)
		}
	}
	d.ready.Store(true)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		d.log.Warn("sd_notify failed", "err", err)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-hup:
			d.reload(f)
		}
	}
	stopSignals() // a second signal now ends the process at once
	d.ready.Store(false)
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	d.log.Info("shutting down", "drain", d.cfg.ShutdownTimeout.D().String())

	drain, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout.D())
	defer cancel()
	if err := d.sftp.Shutdown(drain); err != nil {
		d.log.Warn("sftp shutdown cut uploads short", "err", err)
	}
	stopIngest() // the batch in progress finishes or is abandoned and redone at next start
	if err := <-ingestDone; err != nil {
		d.log.Error("ingest", "err", err)
	}
	stopDelivery()
	if err := <-deliverDone; err != nil {
		d.log.Error("webhook delivery", "err", err)
	}
	if err := <-listenDone; err != nil {
		d.log.Error("store notifications", "err", err)
	}
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelHTTP()
	hs.Shutdown(httpCtx)
	wg.Wait()
	d.log.Info("stopped")
	return runErr
}

// reload re-reads the configuration on SIGHUP and applies what can change
// while running; what needs a restart is logged.
func (d *daemonState) reload(f *serveFlags) {
	cfg, err := loadConfig(f, os.Getenv)
	if err != nil {
		d.log.Error("reload refused: configuration is invalid; keeping the running one", "err", err)
		return
	}
	old := d.cfg
	restart := needsRestart(old, cfg)
	d.sftp.SetLimits(sftpLimits(cfg))
	if d.pipeline != nil {
		d.pipeline.SetDefaults(ingestDefaults(cfg))
		d.pipeline.SetLimits(schemaLimits(cfg))
		d.pipeline.SetSpaceLimits(spaceLimits(cfg))
	}
	d.web.SetLimits(schemaLimits(cfg))
	d.reloadDelivery(cfg)
	setMemoryLimit(cfg, d.log)
	// Keys that need a restart keep their running values.
	cfg.Data, cfg.SFTPAddr, cfg.HTTPAddr, cfg.LogFormat, cfg.APIToken, cfg.AllowSHA1RSA, cfg.Retention.Reports, cfg.Retention.Archive =
		old.Data, old.SFTPAddr, old.HTTPAddr, old.LogFormat, old.APIToken, old.AllowSHA1RSA, old.Retention.Reports, old.Retention.Archive
	cfg.Retention.ArchiveBatches, cfg.Store, cfg.Instance, cfg.LeaseTTL = old.Retention.ArchiveBatches, old.Store, old.Instance, old.LeaseTTL
	cfg.HTTP = old.HTTP
	cfg.TLSCert, cfg.TLSKey, cfg.Console, cfg.Operators = old.TLSCert, old.TLSKey, old.Console, old.Operators
	d.cfg = cfg
	if len(restart) > 0 {
		d.log.Warn("configuration reloaded; these keys change only at restart", "keys", strings.Join(restart, ","))
		return
	}
	d.log.Info("configuration reloaded")
}

// setMemoryLimit applies [limits] memory, unless GOMEMLIMIT is set: the
// operator's environment wins, as the Go runtime documents.
func setMemoryLimit(cfg Config, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(cfg.Limits.Memory)
	if limit == 0 {
		limit = math.MaxInt64
	}
	if debug.SetMemoryLimit(limit) != limit {
		log.Debug("memory limit set", "bytes", cfg.Limits.Memory)
	}
}

// keyAuth lets sftpd ask state whether a key belongs to an organization.
type keyAuth struct{ db daemonStore }

func (k keyAuth) Authorize(ctx context.Context, org string, key ssh.PublicKey) error {
	ok, err := k.db.HasKey(org, sftpd.Fingerprint(key))
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("unknown organization or key")
	}
	return nil
}
