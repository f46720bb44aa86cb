package sftpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

// testHostKeys are generated once per test binary (RSA 3072 takes a second).
var testHostKeys []ssh.Signer

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sftpd-hostkeys-")
	if err != nil {
		panic(err)
	}
	testHostKeys, err = LoadHostKeys(dir)
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// keyStore is a Keys backed by a map.
type keyStore struct {
	mu   sync.Mutex
	keys map[string][]ssh.PublicKey
}

func (k *keyStore) Authorize(_ context.Context, org string, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, have := range k.keys[org] {
		if bytes.Equal(have.Marshal(), key.Marshal()) {
			return nil
		}
	}
	return errors.New("unknown key")
}

func (k *keyStore) add(org string, key ssh.PublicKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[org] = append(k.keys[org], key)
}

// notes records Notify calls as "org/name".
type notes struct {
	mu   sync.Mutex
	list []string
}

func (n *notes) Notify(org, name string) {
	n.mu.Lock()
	n.list = append(n.list, org+"/"+name)
	n.mu.Unlock()
}

func (n *notes) get() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.list...)
}

type env struct {
	srv   *Server
	addr  string
	root  string
	keys  *keyStore
	notes *notes
	logs  *sftptest.Buffer
}

// newEnv starts a server on 127.0.0.1:0; mod may adjust its Config.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	e := &env{
		root:  filepath.Join(t.TempDir(), "orgs"),
		keys:  &keyStore{keys: map[string][]ssh.PublicKey{}},
		notes: &notes{},
		logs:  &sftptest.Buffer{},
	}
	cfg := Config{
		HostKeys: testHostKeys,
		Root:     e.root,
		Keys:     e.keys,
		Uploads:  e.notes,
		Logger:   slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v; want ErrServerClosed", err)
		}
		if t.Failed() || os.Getenv("SFTPD_TEST_LOG") != "" {
			t.Logf("server log:\n%s", e.logs)
		}
	})
	return e
}

// addOrg registers a new ed25519 key for org and returns it.
func (e *env) addOrg(t *testing.T, org string) sftptest.Key {
	t.Helper()
	k := sftptest.GenerateKey(t, t.TempDir(), "id_"+org)
	e.keys.add(org, k.Public)
	return k
}

func (e *env) hostPublicKeys() []ssh.PublicKey {
	var pubs []ssh.PublicKey
	for _, s := range testHostKeys {
		pubs = append(pubs, s.PublicKey())
	}
	return pubs
}

// sshConfig writes an OpenSSH client config for org with key.
func (e *env) sshConfig(t *testing.T, org string, key sftptest.Key) string {
	t.Helper()
	return sftptest.Setup(t, sftptest.Target{Addr: e.addr, Org: org, KeyPath: key.Path, HostKeys: e.hostPublicKeys()})
}

// dial connects with x/crypto as org using the given auth methods.
func (e *env) dial(org string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", e.addr, &ssh.ClientConfig{
		User:              org,
		Auth:              auth,
		HostKeyCallback:   ssh.FixedHostKey(testHostKeys[0].PublicKey()),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           10 * time.Second,
	})
}

// sftpClient opens a pkg/sftp client session as org.
func (e *env) sftpClient(t *testing.T, org string, key sftptest.Key) *sftp.Client {
	t.Helper()
	c, err := e.dial(org, ssh.PublicKeys(key.Signer))
	if err != nil {
		t.Fatalf("dial %s: %v", org, err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatalf("sftp.NewClient: %v", err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

// orgFile is the path of name in org's folder on disk.
func (e *env) orgFile(org, name string) string { return filepath.Join(e.root, org, name) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dirNames lists the names in dir on disk.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

var _ = fmt.Sprintf

func sshPublicKeys(k sftptest.Key) ssh.AuthMethod { return ssh.PublicKeys(k.Signer) }

func sshAuthorizedKey(k ssh.PublicKey) []byte { return ssh.MarshalAuthorizedKey(k) }
