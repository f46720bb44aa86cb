package sftpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// Extension keys of the ssh.Permissions the auth callback returns.
const (
	permOrg   = "rosterd-org"
	permKeyFP = "rosterd-key-fp"
)

// authCandidateAlgorithms are the public key algorithms x/crypto lets
// through to the callbacks: every one it can parse, not only the ones
// SPEC §3 accepts. The policy is applied in the callbacks (checkKeyType
// for the key, signatureAccepted for the signature), where the offered key
// is known, so that a refusal is logged, audited and counted with the key's
// fingerprint (SPEC §3: whichever layer refuses it). Listed here, x/crypto
// would refuse an ssh-rsa signature before any callback sees the key.
// They are also what the server-sig-algs extension announces; clients use
// it only to choose between rsa-sha2-512, rsa-sha2-256 and ssh-rsa, and
// all of them prefer SHA-2.
var authCandidateAlgorithms = slices.Concat(
	ssh.SupportedAlgorithms().PublicKeyAuths,
	ssh.InsecureAlgorithms().PublicKeyAuths,
)

// signatureAccepted reports whether SPEC §3 accepts a signature of this
// algorithm from a client key whose type checkKeyType accepted.
func signatureAccepted(alg string, allowSHA1RSA bool) bool {
	switch alg {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512:
		return true
	case ssh.KeyAlgoRSA:
		return allowSHA1RSA
	}
	return false
}

// authError is a refused authentication attempt as the callbacks return it
// to x/crypto, which hands it back to AuthLogCallback (also for a key whose
// result it cached): it carries the offered key's fingerprint to the log.
type authError struct {
	keyFP  string
	reason string
}

func (e *authError) Error() string { return e.reason }

// connAuth follows the authentication of one connection. x/crypto calls
// the callbacks on the goroutine running ssh.NewServerConn, one at a time,
// and handshakeDone runs on it afterwards, so it needs no lock.
//
// A failed attempt is every authentication request the server refuses,
// except the "none" request a client opens with to learn the methods: an
// unregistered key or a key type SPEC §3 refuses (offered for a query or
// signed), a refused signature algorithm, a signature that does not verify,
// a password or keyboard-interactive attempt. Each is logged, audited and
// counted in rosterd_sftp_auth_failures_total as it happens. The ban list
// gets a connection's failed attempts when its authentication ends without
// a login: a connection that logs in had a client trying its keys in turn
// (OpenSSH, paramiko and agents offer each key they have), which is one
// legitimate login, not an attack.
type connAuth struct {
	srv    *Server
	remote string // address:port, for the log
	ip     string // address, for the ban list

	failures  int    // failed attempts so far
	noneSeen  bool   // the opening "none" request was seen
	offerOrg  string // user name and key of the last key offered,
	offerFP   string // for a signature that then does not verify
	succeeded bool
}

func (s *Server) newConnAuth(remote string) *connAuth {
	ip := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		ip = h
	}
	return &connAuth{srv: s, remote: remote, ip: ip}
}

// serverConfig builds the ssh.ServerConfig of one connection. The callbacks
// report to auth.
func (s *Server) serverConfig(auth *connAuth, hello clientHello) *ssh.ServerConfig {
	ciphers, macs := algorithmsFor(hello)
	cfg := &ssh.ServerConfig{
		Config: ssh.Config{
			KeyExchanges: kexAlgorithms,
			Ciphers:      ciphers,
			MACs:         macs,
		},
		PublicKeyAuthAlgorithms:   authCandidateAlgorithms,
		ServerVersion:             serverVersion,
		PublicKeyCallback:         auth.publicKey,
		VerifiedPublicKeyCallback: auth.verifiedPublicKey,
		AuthLogCallback:           auth.logAttempt,
	}
	for _, k := range s.hostKeysFor(hello) {
		cfg.AddHostKey(k)
	}
	return cfg
}

// publicKey decides whether key may log in as the organization named by
// the user name. x/crypto calls it for keys a client only offers as well
// as for keys it signs with, and caches the answer per user and key; the
// organization is therefore taken from the Permissions of the finished
// handshake only (the CVE-2024-45337 lesson).
func (a *connAuth) publicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	org, fp := meta.User(), Fingerprint(key)
	a.offerOrg, a.offerFP = org, fp
	if a.srv.bans.Banned(a.ip) {
		return nil, &authError{keyFP: fp, reason: "address banned"}
	}
	if err := a.srv.authorize(org, key); err != nil {
		return nil, &authError{keyFP: fp, reason: err.Error()}
	}
	return &ssh.Permissions{Extensions: map[string]string{permOrg: org, permKeyFP: fp}, ExtraData: map[any]any{permKey: key}}, nil
}

// verifiedPublicKey runs once the client proved it holds a key publicKey
// accepted; it refuses the signature algorithms SPEC §3 does not accept
// (ssh-rsa, SHA-1, unless the operator allowed it).
func (a *connAuth) verifiedPublicKey(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, alg string) (*ssh.Permissions, error) {
	if signatureAccepted(alg, a.srv.cfg.AllowSHA1RSA) {
		return perms, nil
	}
	reason := fmt.Sprintf("signature algorithm %s refused", alg)
	if alg == ssh.KeyAlgoRSA {
		reason = "ssh-rsa (SHA-1) signature refused: allow_sha1_rsa = true would accept it (better: a client that signs with rsa-sha2-256/512, or an ed25519 key)"
	}
	return nil, &authError{keyFP: Fingerprint(key), reason: reason}
}

// logAttempt is x/crypto's AuthLogCallback: it sees every authentication
// request except a public key query that was answered with "key accepted".
func (a *connAuth) logAttempt(meta ssh.ConnMetadata, method string, err error) {
	if err == nil {
		a.succeeded = true
		return
	}
	if method == "none" && !a.noneSeen && a.failures == 0 {
		a.noneSeen = true
		return
	}
	var fp string
	var ae *authError
	if errors.As(err, &ae) {
		fp = ae.keyFP
	}
	reason := err.Error()
	if method != "publickey" {
		reason = "method " + method + " is not accepted"
	}
	a.failed(meta.User(), method, fp, reason)
}

func (a *connAuth) failed(org, method, fp, reason string) {
	s := a.srv
	a.failures++
	s.metrics.authFailures.Inc()
	args := []any{"event", EventAuthFailure, "org", org, "remote_addr", a.remote, "method", method}
	if fp != "" {
		args = append(args, "key_fp", fp)
	}
	s.log.Warn("authentication failed", append(args, "err", reason)...)
	s.auditAuthFailure(org, a.remote, fp, reason)
}

// handshakeDone records how the connection's handshake ended (err is
// ssh.NewServerConn's) and, when it ended without a login, gives its failed
// attempts to the ban list.
func (a *connAuth) handshakeDone(err error) {
	if err == nil {
		return
	}
	s := a.srv
	var authErr *ssh.ServerAuthError
	if a.offerFP != "" && !a.succeeded && !errors.As(err, &authErr) && !clientGone(err) {
		// x/crypto ends the connection without calling AuthLogCallback when
		// a signature does not verify: a client that offered a registered
		// key (public keys are not secret) and then signed with another.
		a.failed(a.offerOrg, "publickey", a.offerFP, err.Error())
	}
	if a.failures > 0 {
		l := s.currentLimits()
		if s.bans.Fail(a.ip, a.failures, l) {
			s.metrics.bans.Inc()
			s.log.Warn("address banned after repeated authentication failures",
				"event", "ban", "remote_addr", a.ip, "duration", l.BanDuration.String())
		}
	}
	s.log.Info("ssh handshake failed", "event", "refused", "remote_addr", a.remote, "err", err)
}

// clientGone reports whether err means that the client went away (closed
// the connection, sent SSH_MSG_DISCONNECT, timed out), not that it sent
// something the server refused.
func clientGone(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne) ||
		// x/crypto's error for the client's SSH_MSG_DISCONNECT; its type is
		// not exported.
		strings.HasPrefix(err.Error(), "ssh: disconnect, reason")
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
