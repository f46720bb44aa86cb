package main

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/ingest/web"
)

// validateConsole checks the [console] table and the [[operator]] list.
func (c *Config) validateConsole(bad func(key, format string, args ...any)) {
	if u := c.Console.PublicURL; u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || (p.Path != "" && p.Path != "/") {
			bad("console.public_url", "%q is not an http:// or https:// address without a path", u)
		}
	}
	if a := c.Console.PublicSFTPAddr; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("console.public_sftp_addr", "%q is not host:port", a)
		}
	}
	seen := map[string]bool{}
	for i, op := range c.Operators {
		key := fmt.Sprintf("operator[%d]", i)
		if op.Name == "" || seen[op.Name] {
			bad(key+".name", "%q: give each operator a name of their own", op.Name)
		}
		seen[op.Name] = true
		if _, err := bcrypt.Cost([]byte(op.PasswordHash)); err != nil {
			bad(key+".password_hash", "not a bcrypt hash (\"$2b$12$...\"; see README, The web console)")
		}
	}
}

// newWeb returns the console and setup pages over the daemon's API.
func (d *daemonState) newWeb(token string, hostKeys []ssh.Signer) (*web.Server, error) {
	ops := make([]web.Operator, len(d.cfg.Operators))
	for i, op := range d.cfg.Operators {
		ops[i] = web.Operator{Name: op.Name, PasswordHash: op.PasswordHash}
	}
	pubs := make([]ssh.PublicKey, len(hostKeys))
	for i, k := range hostKeys {
		pubs[i] = k.PublicKey()
	}
	// Read now, not from d.cfg later: a reload replaces d.cfg while pages
	// are served (and these keys change only at a restart anyway).
	public, listen := d.cfg.Console.PublicSFTPAddr, d.cfg.SFTPAddr
	return web.New(web.Config{
		API:       d.api,
		Token:     token,
		Operators: ops,
		HostKeys:  pubs,
		SFTPAddr: func() string {
			if public != "" {
				return public
			}
			if a, ok := d.sftpAddr.Load().(string); ok {
				return a
			}
			return listen
		},
		Limits:     schemaLimits(d.cfg),
		SessionTTL: d.cfg.Console.SessionTimeout.D(),
		Logger:     d.log,
	})
}

// httpHandler serves the console and the setup pages beside the API.
func (d *daemonState) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/console", d.web)
	mux.Handle("/console/", d.web)
	mux.Handle("/setup/", d.web)
	mux.Handle("/", d.api)
	return mux
}

// loadTLS reads tls_cert and tls_key, or returns nil when they are not
// set.
func loadTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls_cert, tls_key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// httpScheme is the scheme of the HTTP listener's address file.
func httpScheme(tc *tls.Config) string {
	if tc != nil {
		return "https://"
	}
	return ""
}

// certPEM is the certificate the HTTP listener serves, in PEM.
func certPEM(tc *tls.Config) string {
	var b strings.Builder
	for _, der := range tc.Certificates[0].Certificate[:1] {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return b.String()
}
