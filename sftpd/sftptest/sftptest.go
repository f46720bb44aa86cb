// Package sftptest holds test helpers for driving rosterd's SFTP side with
// real OpenSSH clients: LookPath (skip when a client is missing, fail
// under CI=true), client key generation, an ssh_config with BatchMode,
// IdentitiesOnly and its own known_hosts, and running `sftp -b`.
//
// It is used by sftpd's own tests and by end-to-end tests elsewhere, which
// only need an address, an organization and a key file.
package sftptest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// HostAlias is the Host name WriteSSHConfig configures.
const HostAlias = "rosterd"

// CommandTimeout bounds every client command run by this package.
const CommandTimeout = 60 * time.Second

// LookPath returns the path of the program name. When it is missing the
// test is skipped, or fails when the environment has CI=true (CI must run
// every client test).
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// Key is a client key pair written to disk.
type Key struct {
	Path          string // private key file (OpenSSH format, 0600)
	Signer        ssh.Signer
	Public        ssh.PublicKey
	AuthorizedKey []byte // the public key as an authorized_keys line
}

// GenerateKey writes a new ed25519 client key pair to dir/name and
// dir/name.pub.
func GenerateKey(t testing.TB, dir, name string) Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return WriteKey(t, dir, name, priv)
}

// WriteKey writes the private key priv (ed25519, ecdsa or rsa) to dir/name
// in OpenSSH format and its public key to dir/name.pub.
func WriteKey(t testing.TB, dir, name string, priv any) Key {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	line := ssh.MarshalAuthorizedKey(signer.PublicKey())
	if err := os.WriteFile(path+".pub", line, 0o644); err != nil {
		t.Fatal(err)
	}
	return Key{Path: path, Signer: signer, Public: signer.PublicKey(), AuthorizedKey: line}
}

// Target says where and as whom a client connects.
type Target struct {
	Addr     string          // host:port of the SFTP server
	Org      string          // organization, the SSH user name
	KeyPath  string          // private key file
	HostKeys []ssh.PublicKey // pinned in known_hosts; none = host key not checked
}

// WriteSSHConfig writes dir/ssh_config (and dir/known_hosts) for OpenSSH
// clients: Host HostAlias points at tg with BatchMode, IdentitiesOnly and
// its own known_hosts, so nothing of the user's ~/.ssh is used. It returns
// the config file's path, for `sftp -F path HostAlias`.
func WriteSSHConfig(t testing.TB, dir string, tg Target) string {
	t.Helper()
	host, port, err := net.SplitHostPort(tg.Addr)
	if err != nil {
		t.Fatalf("WriteSSHConfig: address %q: %v", tg.Addr, err)
	}
	known := filepath.Join(dir, "known_hosts")
	var kh bytes.Buffer
	for _, k := range tg.HostKeys {
		fmt.Fprintf(&kh, "[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(known, kh.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	strict := "yes"
	if len(tg.HostKeys) == 0 {
		strict = "no"
	}
	cfg := fmt.Sprintf(`Host %s
  HostName %s
  Port %s
  User %s
  IdentityFile %s
  IdentitiesOnly yes
  IdentityAgent none
  BatchMode yes
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking %s
  ConnectTimeout 10
  LogLevel ERROR
`, HostAlias, host, port, tg.Org, tg.KeyPath, known, strict)
	path := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Setup writes an ssh_config for tg into a new temporary folder and
// returns its path.
func Setup(t testing.TB, tg Target) string {
	t.Helper()
	return WriteSSHConfig(t, t.TempDir(), tg)
}

// SFTP runs `sftp -F config -b - [args] HostAlias` with batch as the batch
// script on standard input, and returns its combined output. In batch mode
// sftp stops at the first failing command (unless it is prefixed with -)
// and then exits non-zero, which is returned as the error.
func SFTP(t testing.TB, config, batch string, args ...string) (string, error) {
	t.Helper()
	bin := LookPath(t, "sftp")
	argv := append([]string{"-F", config, "-b", "-"}, args...)
	argv = append(argv, HostAlias)
	return Run(t, strings.NewReader(batch), bin, argv...)
}

// SCP runs `scp -F config args...`; remote paths are written
// HostAlias+":path".
func SCP(t testing.TB, config string, args ...string) (string, error) {
	t.Helper()
	bin := LookPath(t, "scp")
	return Run(t, nil, bin, append([]string{"-F", config}, args...)...)
}

// Run runs a command with stdin (may be nil) under CommandTimeout and
// returns its combined output.
func Run(t testing.TB, stdin *strings.Reader, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s timed out after %v", filepath.Base(name), CommandTimeout)
	}
	return string(out), err
}
