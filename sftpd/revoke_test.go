package sftpd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

func (k *keyStore) remove(org string, key ssh.PublicKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var kept []ssh.PublicKey
	for _, have := range k.keys[org] {
		if !bytes.Equal(have.Marshal(), key.Marshal()) {
			kept = append(kept, have)
		}
	}
	k.keys[org] = kept
}

// session is one logged-in connection of a revocation test.
type session struct {
	ssh    *ssh.Client
	sftp   *sftp.Client
	closed chan struct{}
}

func (e *env) session(t *testing.T, org string, k sftptest.Key) *session {
	t.Helper()
	c, err := e.dial(org, ssh.PublicKeys(k.Signer))
	if err != nil {
		t.Fatalf("dial %s: %v", org, err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{ssh: c, sftp: sc, closed: make(chan struct{})}
	go func() { c.Wait(); close(s.closed) }()
	return s
}

func (s *session) waitClosed(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still open 10s after the revocation", what)
	}
}

func (s *session) open(t *testing.T, what string) {
	t.Helper()
	if _, err := s.sftp.Stat("/"); err != nil {
		t.Errorf("%s: %v; want it open", what, err)
	}
}

// TestRevokeKey revokes one key of an organization in the middle of an
// upload: its session is closed at once, the upload is discarded, the
// closure is in the audit trail, and the sessions of the organization's
// other key and of another organization stay open.
func TestRevokeKey(t *testing.T) {
	rec := &auditRecorder{}
	e := newEnv(t, func(c *Config) { c.Audit = rec })
	k1, k2, other := e.addOrg(t, "acme"), e.addOrg(t, "acme"), e.addOrg(t, "globex")
	s1, s2, so := e.session(t, "acme", k1), e.session(t, "acme", k2), e.session(t, "globex", other)
	f, err := s1.sftp.Create("users.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("user_id,email\n")); err != nil {
		t.Fatal(err)
	}

	e.keys.remove("acme", k1.Public)
	if n := e.srv.Revoke("acme", Fingerprint(k1.Public)); n != 1 {
		t.Errorf("Revoke(acme, k1) = %d; want 1 connection closed", n)
	}
	s1.waitClosed(t, "session of the revoked key")
	s2.open(t, "session of acme's other key")
	so.open(t, "session of globex")
	if _, err := os.Stat(e.orgFile("acme", "users.csv")); err == nil {
		t.Error("the revoked session's upload was put in place")
	}
	waitFor(t, "the session.revoked record", func() bool { return len(rec.find(EventSessionRevoked)) > 0 })
	r := rec.find(EventSessionRevoked)[0]
	if r.Org != "acme" || r.KeyFP != Fingerprint(k1.Public) || r.Reason != revokedKey || r.Session == "" {
		t.Errorf("session.revoked record = %+v; want acme, k1, %q, with its session", r, revokedKey)
	}
	if _, err := e.dial("acme", ssh.PublicKeys(k1.Signer)); err == nil {
		t.Error("login with the revoked key succeeded")
	}
}

// TestRevokeOrg revokes a whole organization: all its sessions close,
// another organization's stay.
func TestRevokeOrg(t *testing.T) {
	rec := &auditRecorder{}
	e := newEnv(t, func(c *Config) { c.Audit = rec })
	k1, k2, other := e.addOrg(t, "acme"), e.addOrg(t, "acme"), e.addOrg(t, "globex")
	s1, s2, so := e.session(t, "acme", k1), e.session(t, "acme", k2), e.session(t, "globex", other)
	if n := e.srv.Revoke("acme", ""); n != 2 {
		t.Errorf("Revoke(acme, \"\") = %d; want 2", n)
	}
	s1.waitClosed(t, "acme session 1")
	s2.waitClosed(t, "acme session 2")
	so.open(t, "session of globex")
	waitFor(t, "two session.revoked records", func() bool { return len(rec.find(EventSessionRevoked)) == 2 })
	for _, r := range rec.find(EventSessionRevoked) {
		if r.Org != "acme" || r.Reason != revokedOrg {
			t.Errorf("session.revoked record = %+v; want acme, %q", r, revokedOrg)
		}
	}
	if n := e.srv.Revoke("nobody", ""); n != 0 {
		t.Errorf("Revoke(nobody) = %d; want 0", n)
	}
}

// TestKeyRecheckClosesSession removes a key from the store without
// calling Revoke, as another instance sharing the store would: the
// periodic re-check closes the session.
func TestKeyRecheckClosesSession(t *testing.T) {
	rec := &auditRecorder{}
	e := newEnv(t, func(c *Config) { c.Audit = rec; c.Limits.KeyRecheck = 100 * time.Millisecond })
	k := e.addOrg(t, "acme")
	s := e.session(t, "acme", k)
	s.open(t, "session before the removal")
	e.keys.remove("acme", k.Public)
	s.waitClosed(t, "session whose key left the store")
	waitFor(t, "the session.revoked record", func() bool { return len(rec.find(EventSessionRevoked)) == 1 })
	if r := rec.find(EventSessionRevoked)[0]; r.Reason != revokedRecheck {
		t.Errorf("reason = %q; want %q", r.Reason, revokedRecheck)
	}
}

// onceKeys authorizes each key the first time it is asked and refuses it
// afterwards: a removal that lands between authentication and the
// session's registration, where Revoke cannot see the session yet.
type onceKeys struct{ calls atomic.Int32 }

func (k *onceKeys) Authorize(context.Context, string, ssh.PublicKey) error {
	if k.calls.Add(1) == 1 {
		return nil
	}
	return errors.New("removed")
}

func TestRevokeBetweenAuthAndRegistration(t *testing.T) {
	keys := &onceKeys{}
	e := newEnv(t, func(c *Config) { c.Keys = keys })
	k := sftptest.GenerateKey(t, t.TempDir(), "id")
	c, err := e.dial("acme", ssh.PublicKeys(k.Signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection whose key was removed right after authentication is still open")
	}
	mustContain(t, "log", e.logs.String(), `"event":"session.revoked"`, revokedRecheck)
}
