package sftpd

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

// newSigners returns n new ed25519 keys, registered nowhere.
func newSigners(t *testing.T, n int) []ssh.Signer {
	t.Helper()
	var out []ssh.Signer
	for range n {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// failedLogin dials as org with keys that must all be refused and waits
// until the server has finished with the connection (it records the
// failures for the ban list when its handshake returns, which can be after
// the client saw the refusal).
func (e *env) failedLogin(t *testing.T, org string, keys ...ssh.Signer) {
	t.Helper()
	before := strings.Count(e.logs.String(), `"msg":"ssh handshake failed"`)
	if c, err := e.dial(org, ssh.PublicKeys(keys...)); err == nil {
		c.Close()
		t.Fatal("login with unregistered keys succeeded")
	}
	waitFor(t, "the server to end the handshake", func() bool {
		return strings.Count(e.logs.String(), `"msg":"ssh handshake failed"`) > before
	})
}

func (e *env) authFailureLines() int {
	return strings.Count(e.logs.String(), `"event":"auth.failure"`)
}

// TestBanCountsAttemptsNotConnections: SPEC §3, 10 failed attempts in 5
// minutes ban an address, counted per attempt. Two connections trying 6
// and 4 unregistered keys make 10.
func TestBanCountsAttemptsNotConnections(t *testing.T) {
	e := newEnv(t, nil) // the default limits: 10 attempts in 5 minutes
	good := e.addOrg(t, "acme")
	e.failedLogin(t, "acme", newSigners(t, 6)...)
	if c, err := e.dial("acme", sshPublicKeys(good)); err != nil {
		t.Fatalf("login after 6 failed attempts: %v", err)
	} else {
		c.Close()
	}
	e.failedLogin(t, "acme", newSigners(t, 4)...)
	if c, err := e.dial("acme", sshPublicKeys(good)); err == nil {
		c.Close()
		t.Fatal("login after 10 failed attempts in two connections succeeded; want the address banned")
	}
	mustContain(t, "log", e.logs.String(), `"event":"ban"`, `"reason":"banned"`)
	if n := e.authFailureLines(); n != 10 {
		t.Errorf("auth.failure log lines = %d; want 10", n)
	}
	if got := testutil.ToFloat64(e.srv.metrics.authFailures); got != 10 {
		t.Errorf("rosterd_sftp_auth_failures_total = %v; want 10", got)
	}
}

// TestBanSparesKeysTriedBeforeLogin: a client that offers its keys in turn
// until the registered one is accepted (OpenSSH, paramiko, agents) logs in
// once; the keys refused on the way are logged and counted in the metric
// but do not get the address banned.
func TestBanSparesKeysTriedBeforeLogin(t *testing.T) {
	e := newEnv(t, nil)
	good := e.addOrg(t, "acme")
	for i := range 4 {
		keys := append(newSigners(t, 5), good.Signer)
		c, err := e.dial("acme", ssh.PublicKeys(keys...))
		if err != nil {
			t.Fatalf("login %d with the registered key sixth: %v", i+1, err)
		}
		c.Close()
	}
	if n := e.authFailureLines(); n != 20 {
		t.Errorf("auth.failure log lines = %d; want 20", n)
	}
	if got := testutil.ToFloat64(e.srv.metrics.authFailures); got != 20 {
		t.Errorf("rosterd_sftp_auth_failures_total = %v; want 20", got)
	}
	if strings.Contains(e.logs.String(), `"event":"ban"`) {
		t.Error("address banned for keys tried before successful logins")
	}
}

// TestAuthSHA1SignatureRefusalVisible is issue 11 item 5 without Java: an
// RSA key registered for acme, a client that signs only with ssh-rsa
// (SHA-1). The refusal is logged with the key's fingerprint and the
// allow_sha1_rsa hint, audited, counted in the metric and by the ban list.
func TestAuthSHA1SignatureRefusalVisible(t *testing.T) {
	rec := &auditRecorder{}
	e := newEnv(t, func(c *Config) {
		c.Audit = rec
		c.Limits.BanFailures = 1
	})
	signer, sha1Only := rsaSigners(t)
	e.keys.add("acme", signer.PublicKey())
	fp := Fingerprint(signer.PublicKey())
	e.failedLogin(t, "acme", sha1Only)

	var line string
	for l := range strings.Lines(e.logs.String()) {
		if strings.Contains(l, `"event":"auth.failure"`) {
			line = l
		}
	}
	mustContain(t, "auth.failure log line", line, `"org":"acme"`, `"remote_addr":"127.0.0.1:`, `"key_fp":"`+fp+`"`, "allow_sha1_rsa")
	if got := testutil.ToFloat64(e.srv.metrics.authFailures); got != 1 {
		t.Errorf("rosterd_sftp_auth_failures_total = %v; want 1", got)
	}
	fails := rec.find(EventAuthFailure)
	if len(fails) != 1 || fails[0].Org != "acme" || fails[0].KeyFP != fp || !strings.Contains(fails[0].Reason, "allow_sha1_rsa") {
		t.Errorf("auth failure records = %+v; want one for acme with %s and the allow_sha1_rsa hint", fails, fp)
	}
	// BanFailures is 1: the refusal counted for the ban list.
	if c, err := e.dial("acme", ssh.PublicKeys(signer)); err == nil {
		c.Close()
		t.Fatal("login after the refused attempt succeeded; want the address banned")
	}
}

// TestAuthSHA1SignatureAllowed: with AllowSHA1RSA the same client logs in.
func TestAuthSHA1SignatureAllowed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowSHA1RSA = true })
	signer, sha1Only := rsaSigners(t)
	e.keys.add("acme", signer.PublicKey())
	c, err := e.dial("acme", ssh.PublicKeys(sha1Only))
	if err != nil {
		t.Fatalf("ssh-rsa login with allow_sha1_rsa: %v", err)
	}
	c.Close()
}

// rsaSigners returns a new 2048-bit RSA key and a signer of it that signs
// with ssh-rsa (SHA-1) only, as JSch 0.1.54 does.
func rsaSigners(t *testing.T) (ssh.Signer, ssh.Signer) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sha1Only, err := ssh.NewSignerWithAlgorithms(signer.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSA})
	if err != nil {
		t.Fatal(err)
	}
	return signer, sha1Only
}

// TestAuthBadSignatureCounted: a client offers a registered public key
// (public keys are not secret) and signs with another key. x/crypto drops
// the connection without asking the callbacks again; the attempt is still
// logged with the offered key and counted.
func TestAuthBadSignatureCounted(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.BanFailures = 1 })
	good := e.addOrg(t, "acme")
	evil := sftptest.GenerateKey(t, t.TempDir(), "evil")
	e.failedLogin(t, "acme", swappedSigner{pub: good.Public, Signer: evil.Signer})
	mustContain(t, "log", e.logs.String(), `"event":"auth.failure"`, `"key_fp":"`+Fingerprint(good.Public)+`"`)
	if got := testutil.ToFloat64(e.srv.metrics.authFailures); got != 1 {
		t.Errorf("rosterd_sftp_auth_failures_total = %v; want 1", got)
	}
	if c, err := e.dial("acme", sshPublicKeys(good)); err == nil {
		c.Close()
		t.Fatal("login after the bad signature succeeded; want the address banned (BanFailures 1)")
	}
}

// TestHostKeySHA1OnlyWhenAllowed is issue 11 item 7: the RSA host key is
// not offered with ssh-rsa (SHA-1) signatures unless AllowSHA1RSA.
func TestHostKeySHA1OnlyWhenAllowed(t *testing.T) {
	for _, allow := range []bool{false, true} {
		e := newEnv(t, func(c *Config) { c.AllowSHA1RSA = allow })
		k := e.addOrg(t, "acme")
		rsaHost := testHostKeys[len(testHostKeys)-1].PublicKey()
		c, err := ssh.Dial("tcp", e.addr, &ssh.ClientConfig{
			User:              "acme",
			Auth:              []ssh.AuthMethod{sshPublicKeys(k)},
			HostKeyCallback:   ssh.FixedHostKey(rsaHost),
			HostKeyAlgorithms: []string{ssh.KeyAlgoRSA},
		})
		if c != nil {
			c.Close()
		}
		switch {
		case allow && err != nil:
			t.Errorf("allow_sha1_rsa on: host key algorithm ssh-rsa: %v", err)
		case !allow && err == nil:
			t.Error("allow_sha1_rsa off: host key algorithm ssh-rsa negotiated")
		case !allow && !strings.Contains(err.Error(), "host key"):
			t.Errorf("allow_sha1_rsa off: err = %v; want no common host key algorithm", err)
		}
	}
}

// TestHostKeyECDSAOnlyForClientsWithoutOthers: the ECDSA host key, added
// for JSch 0.1.54, must not replace the host key that clients preferring
// ECDSA (Go, rclone, libssh2) negotiated before it existed and their users
// pinned; only a client that can use no other key gets it.
func TestHostKeyECDSAOnlyForClientsWithoutOthers(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	for _, tc := range []struct {
		algs []string // the client's host key algorithms; nil: Go's defaults
		want string
	}{
		{nil, ssh.KeyAlgoRSA},
		{[]string{ssh.KeyAlgoECDSA256, ssh.KeyAlgoED25519}, ssh.KeyAlgoED25519},
		{[]string{ssh.KeyAlgoECDSA256}, ssh.KeyAlgoECDSA256},
	} {
		var got string
		c, err := ssh.Dial("tcp", e.addr, &ssh.ClientConfig{
			User: "acme",
			Auth: []ssh.AuthMethod{sshPublicKeys(k)},
			HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
				got = key.Type()
				return nil
			},
			HostKeyAlgorithms: tc.algs,
		})
		if err != nil {
			t.Errorf("host key algorithms %v: %v", tc.algs, err)
			continue
		}
		c.Close()
		if got != tc.want {
			t.Errorf("host key algorithms %v: host key %s; want %s", tc.algs, got, tc.want)
		}
	}
}
