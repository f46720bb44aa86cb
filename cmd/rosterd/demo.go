package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
)

const (
	demoOrg     = "demo"
	demoKeyFile = "demo_client_key"
)

// setupDemo creates organization demo with a fresh client key pair on a
// first start with no organization, reuses both afterwards, and prints the
// sftp command to try.
func (d *daemonState) setupDemo(sftpAddr string, stdout io.Writer) error {
	keyPath := filepath.Join(d.cfg.Data, demoKeyFile)
	if _, err := d.db.Org(demoOrg); errors.Is(err, state.ErrNotFound) {
		orgs, err := d.db.Orgs("", 1)
		if err != nil {
			return err
		}
		if len(orgs) > 0 {
			d.log.Info("demo: organizations exist already; not creating the demo organization")
			return nil
		}
		pub, err := writeClientKey(keyPath)
		if err != nil {
			return err
		}
		if err := d.db.CreateOrg(state.Org{Name: demoOrg}); err != nil {
			return err
		}
		err = d.db.AddKey(demoOrg, state.Key{
			Fingerprint: sftpd.Fingerprint(pub), Type: pub.Type(), Comment: "rosterd demo",
			PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
		})
		if err != nil {
			return err
		}
		d.log.Info("demo: organization created", "org", demoOrg, "key_fp", sftpd.Fingerprint(pub))
	} else if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(d.orgsRoot, demoOrg, "reports"), 0o700); err != nil {
		return err
	}
	if !fileExists(keyPath) {
		d.log.Warn("demo: the demo client key is gone from the data directory; add a key with rosterd key add demo FILE")
		return nil
	}
	host, port, _ := net.SplitHostPort(sftpAddr)
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	fmt.Fprintf(stdout, `
rosterd demo: organization %q is ready. Upload a file with:

  sftp -i %s -P %s %s@%s

then, at the sftp> prompt:  put examples/csv/valid/users.csv   and   ls reports

`, demoOrg, keyPath, port, demoOrg, host)
	return nil
}

// writeClientKey writes a new ed25519 key pair as path (OpenSSH private
// key, 0600) and path.pub, and returns the public key.
func writeClientKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "rosterd demo")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("write demo key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " rosterd demo\n"
	if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
		return nil, fmt.Errorf("write demo key: %w", err)
	}
	return sshPub, nil
}
