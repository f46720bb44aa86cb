package sftpd

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

func TestHostKeysSurviveRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "host_keys")
	first, err := LoadHostKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadHostKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 || len(second) != 3 {
		t.Fatalf("LoadHostKeys returned %d and %d keys; want 3", len(first), len(second))
	}
	wantTypes := []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSA}
	for i := range first {
		if a, b := Fingerprint(first[i].PublicKey()), Fingerprint(second[i].PublicKey()); a != b {
			t.Errorf("key %d fingerprint changed across restart: %s, then %s", i, a, b)
		}
		if got := first[i].PublicKey().Type(); got != wantTypes[i] {
			t.Errorf("key %d type = %s; want %s", i, got, wantTypes[i])
		}
	}
	rk := first[2].PublicKey().(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
	if rk.N.BitLen() != 3072 {
		t.Errorf("RSA host key has %d bits; want 3072", rk.N.BitLen())
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("host key dir mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	for _, name := range HostKeyFiles {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, %v; want 0600", name, st.Mode().Perm(), err)
		}
	}
	// The fingerprint is the one ssh-keygen -lf prints.
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command(keygen, "-lf", filepath.Join(dir, HostKeyEd25519)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if fp := Fingerprint(first[0].PublicKey()); !strings.Contains(string(out), fp) {
			t.Errorf("ssh-keygen -lf = %q; want it to contain %s", out, fp)
		}
	}
	// A corrupt key is an error, never silently replaced.
	os.WriteFile(filepath.Join(dir, HostKeyEd25519), []byte("garbage"), 0o600)
	if _, err := LoadHostKeys(dir); err == nil {
		t.Error("LoadHostKeys with a corrupt key = nil error; want an error")
	}
}

// TestLoadHostKeysFrom: the keys come from where load keeps them (a
// fleet's store): generated once, the same ones afterwards, and a kept key
// that does not parse is an error.
func TestLoadHostKeysFrom(t *testing.T) {
	kept := map[string][]byte{}
	var generated []string
	load := func(name string, gen func() ([]byte, error)) ([]byte, error) {
		if v, ok := kept[name]; ok {
			return v, nil
		}
		generated = append(generated, name)
		v, err := gen()
		kept[name] = v
		return v, err
	}
	first, err := LoadHostKeysFrom(load)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadHostKeysFrom(load)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(generated, ",") != strings.Join(HostKeyFiles, ",") {
		t.Errorf("generated %v; want each of %v once", generated, HostKeyFiles)
	}
	if len(first) != 3 || len(second) != 3 {
		t.Fatalf("LoadHostKeysFrom returned %d and %d keys; want 3", len(first), len(second))
	}
	for i := range first {
		if a, b := Fingerprint(first[i].PublicKey()), Fingerprint(second[i].PublicKey()); a != b {
			t.Errorf("key %d: %s, then %s; want the kept key", i, a, b)
		}
	}
	kept[HostKeyECDSA] = []byte("garbage")
	if _, err := LoadHostKeysFrom(load); err == nil || !strings.Contains(err.Error(), HostKeyECDSA) {
		t.Errorf("LoadHostKeysFrom with a corrupt kept key = %v; want an error naming %s", err, HostKeyECDSA)
	}
}

func rfc4716(comment string, key ssh.PublicKey) string {
	b64 := base64.StdEncoding.EncodeToString(key.Marshal())
	var lines []string
	for len(b64) > 70 {
		lines = append(lines, b64[:70])
		b64 = b64[70:]
	}
	lines = append(lines, b64)
	// The comment is split over a continuation line as RFC 4716 allows.
	half := len(comment) / 2
	return "---- BEGIN SSH2 PUBLIC KEY ----\r\nComment: \"" + comment[:half] + "\\\r\n" + comment[half:] +
		"\"\r\nx-other: value\r\n" + strings.Join(lines, "\r\n") + "\r\n---- END SSH2 PUBLIC KEY ----\r\n"
}

func TestParseKeys(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ed, _ := ssh.NewPublicKey(edPriv.Public())
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec, _ := ssh.NewPublicKey(ecPriv.Public())
	rsaSmallPriv, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaSmall, _ := ssh.NewPublicKey(rsaSmallPriv.Public())
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaKey, _ := ssh.NewPublicKey(rsaPriv.Public())
	line := func(k ssh.PublicKey, comment string) string {
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
	}
	tests := []struct {
		name     string
		in       string
		want     []ssh.PublicKey
		comments []string
		wantErr  error
	}{
		{"authorized_keys line", line(ed, "alice@laptop") + "\n", []ssh.PublicKey{ed}, []string{"alice@laptop"}, nil},
		{"options, comments and blank lines", "# rotation\n\nfrom=\"10.0.0.0/8\" " + line(ec, "ci") + "\n" + line(rsaKey, "old") + "\n",
			[]ssh.PublicKey{ec, rsaKey}, []string{"ci", "old"}, nil},
		{"rfc 4716 block", rfc4716("workday export key", ed), []ssh.PublicKey{ed}, []string{"workday export key"}, nil},
		{"rfc 4716 and a line", rfc4716("one", rsaKey) + line(ec, "two"), []ssh.PublicKey{rsaKey, ec}, []string{"one", "two"}, nil},
		{"rsa under 2048 bits", line(rsaSmall, "weak"), nil, nil, ErrKeyType},
		{"rsa under 2048 bits in rfc 4716", rfc4716("weak", rsaSmall), nil, nil, ErrKeyType},
		{"dsa", "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAKKSU2PFl/qOLxIwmBZPPIcJshVe7bVUpFvyl3BbJDow8rXfskl8wO63OzP/qLmcJM0+JbcRU/53JjTuyk31drV2qxhIOsLDC9dGCWj47Y7TyhPdXh/0dthTRBy6bqGtRPxGa7gJov1xm/UuYYXPIUR/3x9MAZvZ5xvE0kYXO+rx dsa", nil, nil, ErrKeyType},
		{"garbage", "not a key\n", nil, nil, nil},
		{"empty", "\n# nothing\n", nil, nil, nil},
		{"unterminated rfc 4716", "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeys([]byte(tt.in))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ParseKeys(%q) = %d keys; want an error", tt.in, len(got))
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseKeys(%q) error = %v; want %v", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeys(%q) = %v", tt.in, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseKeys(%q) = %d keys; want %d", tt.in, len(got), len(tt.want))
			}
			for i := range got {
				if Fingerprint(got[i].Key) != Fingerprint(tt.want[i]) || got[i].Comment != tt.comments[i] {
					t.Errorf("key %d = %s %q; want %s %q", i, Fingerprint(got[i].Key), got[i].Comment,
						Fingerprint(tt.want[i]), tt.comments[i])
				}
			}
		})
	}
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"))
	f.Add([]byte("---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"a\\\nb\"\nAAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n---- END SSH2 PUBLIC KEY ----\n"))
	f.Add([]byte("---- BEGIN SSH2 PUBLIC KEY ----\nComment: x\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseKeys(data)
		if err == nil && len(keys) == 0 {
			t.Fatal("ParseKeys returned no keys and no error")
		}
		for _, k := range keys {
			if err := checkKeyType(k.Key); err != nil {
				t.Fatalf("ParseKeys returned a refused key type: %v", err)
			}
		}
	})
}

func TestValidOrgName(t *testing.T) {
	for name, want := range map[string]bool{
		"acme": true, "a": true, "0-9": true, strings.Repeat("a", 63): true,
		"": false, "-acme": false, "Acme": false, "a_b": false, "a.b": false, "../x": false,
		strings.Repeat("a", 64): false, "acme\n": false,
	} {
		if got := ValidOrgName(name); got != want {
			t.Errorf("ValidOrgName(%q) = %v; want %v", name, got, want)
		}
	}
}

func TestAuthWrongKeyRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.addOrg(t, "acme")
	other := sftptest.GenerateKey(t, t.TempDir(), "other")
	if c, err := e.dial("acme", ssh.PublicKeys(other.Signer)); err == nil {
		c.Close()
		t.Fatal("login with a key not registered for the organization succeeded")
	}
	mustContain(t, "log", e.logs.String(), `"event":"auth.failure"`, Fingerprint(other.Public))
}

// TestAuthOfferedThenSignedWithAnotherKey is the soft-serve regression and
// the CVE-2024-45337 lesson: the client offers an authorized public key but
// signs with another private key.
func TestAuthOfferedThenSignedWithAnotherKey(t *testing.T) {
	e := newEnv(t, nil)
	good := e.addOrg(t, "acme")
	evil := sftptest.GenerateKey(t, t.TempDir(), "evil")
	if c, err := e.dial("acme", ssh.PublicKeys(swappedSigner{pub: good.Public, Signer: evil.Signer})); err == nil {
		c.Close()
		t.Fatal("login signed with a key other than the offered one succeeded")
	}
	// A real login right after still works and gets the right organization.
	c, err := e.dial("acme", ssh.PublicKeys(good.Signer))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "session log", func() bool {
		return strings.Contains(e.logs.String(), `"event":"session.start"`)
	})
	mustContain(t, "log", e.logs.String(), `"org":"acme"`, Fingerprint(good.Public))
}

// swappedSigner offers pub but signs with another key.
type swappedSigner struct {
	ssh.Signer
	pub ssh.PublicKey
}

func (s swappedSigner) PublicKey() ssh.PublicKey { return s.pub }

func TestAuthPasswordAndKeyboardInteractiveRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.addOrg(t, "acme")
	methods := map[string]ssh.AuthMethod{
		"password": ssh.Password("secret"),
		"keyboard-interactive": ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
			return []string{"secret"}, nil
		}),
	}
	for name, m := range methods {
		c, err := e.dial("acme", m)
		if err == nil {
			c.Close()
			t.Fatalf("%s login succeeded", name)
		}
		if !strings.Contains(err.Error(), "no supported methods remain") {
			t.Errorf("%s login error = %v; want no supported methods", name, err)
		}
	}
}

func TestAuthUnknownOrganization(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	for _, org := range []string{"globex", "../acme", "ACME", "acme/../acme"} {
		if c, err := e.dial(org, ssh.PublicKeys(k.Signer)); err == nil {
			c.Close()
			t.Errorf("login as %q with acme's key succeeded", org)
		}
	}
	if names := dirNames(t, e.root); len(names) != 0 {
		t.Errorf("organization folders created for failed logins: %v", names)
	}
}

// fakeClock is an adjustable clock for the ban list.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestBanEngagesAndLifts(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits = Limits{BanFailures: 3, BanWindow: time.Minute, BanDuration: 15 * time.Minute}
	})
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	e.srv.now = clock.Now
	good := e.addOrg(t, "acme")
	bad := sftptest.GenerateKey(t, t.TempDir(), "bad")

	failures := 0
	fail := func() {
		t.Helper()
		if _, err := e.dial("acme", ssh.PublicKeys(bad.Signer)); err == nil {
			t.Fatal("bad key accepted")
		}
		failures++
		// The server records the failure when its handshake returns,
		// which can be after the client saw it.
		waitFor(t, "the failure to be recorded", func() bool {
			return strings.Count(e.logs.String(), `"msg":"ssh handshake failed"`) == failures
		})
	}
	// Failures spread over more than the window do not ban.
	fail()
	fail()
	clock.Advance(2 * time.Minute)
	if c, err := e.dial("acme", ssh.PublicKeys(good.Signer)); err != nil {
		t.Fatalf("login after failures outside the window: %v", err)
	} else {
		c.Close()
	}
	fail()
	fail()
	fail()
	if c, err := e.dial("acme", ssh.PublicKeys(good.Signer)); err == nil {
		c.Close()
		t.Fatal("login from a banned address succeeded")
	}
	mustContain(t, "log", e.logs.String(), `"event":"ban"`, `"reason":"banned"`)
	clock.Advance(15*time.Minute - time.Second)
	if c, err := e.dial("acme", ssh.PublicKeys(good.Signer)); err == nil {
		c.Close()
		t.Fatal("ban lifted before its duration")
	}
	clock.Advance(time.Second)
	c, err := e.dial("acme", ssh.PublicKeys(good.Signer))
	if err != nil {
		t.Fatalf("login after the ban: %v", err)
	}
	c.Close()
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	c, err := e.dial("acme", ssh.PublicKeys(k.Signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	run := func(cmd string) (string, error) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var stderr strings.Builder
		s.Stderr = &stderr
		if cmd == "" {
			err = s.Shell()
			if err == nil {
				err = s.Wait()
			}
		} else {
			err = s.Run(cmd)
		}
		return stderr.String(), err
	}
	for _, tc := range []struct{ cmd, want string }{
		{"ls -la", "only offers SFTP"},
		{"", "only offers SFTP"},
		{"scp -t /users.csv", "use SFTP"},
	} {
		stderr, err := run(tc.cmd)
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 1 {
			t.Errorf("exec %q: err = %v; want exit status 1", tc.cmd, err)
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("exec %q: stderr = %q; want %q", tc.cmd, stderr, tc.want)
		}
	}
	if _, err := c.Dial("tcp", "127.0.0.1:9"); err == nil || !strings.Contains(err.Error(), "forwarding is not allowed") {
		t.Errorf("direct-tcpip: err = %v; want a refusal", err)
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("remote port forwarding accepted")
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok {
		t.Error("agent forwarding accepted")
	}
	if err := s.RequestSubsystem("netconf"); err == nil {
		t.Error("subsystem netconf accepted")
	}
	s.Close()
	mustContain(t, "log", e.logs.String(), `"reason":"exec"`, `"reason":"shell"`, `"reason":"forwarding"`)
}

func TestLegacySCPGetsUseSFTP(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	cfg := e.sshConfig(t, "acme", k)
	local := filepath.Join(t.TempDir(), "users.csv")
	writeFile(t, local, "user_id\n1\n")
	out, err := sftptest.SCP(t, cfg, "-O", local, sftptest.HostAlias+":users.csv")
	if err == nil {
		t.Fatal("scp -O succeeded")
	}
	mustContain(t, "scp -O output", out, "use SFTP")
}

func TestSessionLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxSessions = 2 })
	k := e.addOrg(t, "acme")
	e.sftpClient(t, "acme", k)
	e.sftpClient(t, "acme", k)
	c, err := e.dial("acme", ssh.PublicKeys(k.Signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.NewSession(); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("third session: err = %v; want too many sessions", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.IdleTimeout = 200 * time.Millisecond })
	k := e.addOrg(t, "acme")
	c, err := e.dial("acme", ssh.PublicKeys(k.Signer))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("idle connection not closed")
	}
}

var _ = io.EOF
