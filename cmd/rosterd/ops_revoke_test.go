package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// keyFingerprint reads keyPath.pub and returns its SHA256 fingerprint.
func keyFingerprint(t *testing.T, keyPath string) string {
	t.Helper()
	raw, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return sftpd.Fingerprint(pub)
}

// waitClosed waits until the SSH connection c is closed by the server.
func waitClosed(t *testing.T, c *ssh.Client, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the connection is still open 20s after the revocation", what)
	}
}

// TestRevokeClosesSessions removes, with the real CLI, a key whose session
// is in the middle of an upload, and an organization with an OpenSSH sftp
// session open: each session is closed at once (the client sees the
// connection drop), the cut-off upload is not put in place, a new login
// fails, and the closure is in the audit trail (for a removed key) or the
// log (a removed organization's trail goes with it). A session of another
// key of the same organization stays open.
func TestRevokeClosesSessions(t *testing.T) {
	d := startDaemon(t, daemonOpts{})

	t.Run("key remove", func(t *testing.T) {
		key := addOrg(t, d, "acme")
		other := newClientKey(t)
		if out, code := d.CLI("", "key", "add", "acme", other+".pub"); code != 0 {
			t.Fatalf("key add = %d %q", code, out)
		}
		fp := keyFingerprint(t, key)

		c, err := dialSSH(t, d, "acme", key)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc, err := sftp.NewClient(c)
		if err != nil {
			t.Fatal(err)
		}
		f, err := sc.Create("users.csv")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(exportUsers[:40])); err != nil {
			t.Fatal(err)
		}
		kept, err := dialSSH(t, d, "acme", other)
		if err != nil {
			t.Fatal(err)
		}
		defer kept.Close()
		keptSFTP, err := sftp.NewClient(kept)
		if err != nil {
			t.Fatal(err)
		}

		if out, code := d.CLI("", "key", "remove", "acme", fp); code != 0 {
			t.Fatalf("key remove = %d %q", code, out)
		}
		waitClosed(t, c, "session of the removed key")
		if _, err := f.Write([]byte(exportUsers[40:])); err == nil {
			if err := f.Close(); err == nil {
				t.Error("the upload of a removed key's session completed after the removal")
			}
		}
		if _, err := os.Stat(filepath.Join(d.Data, "orgs", "acme", "users.csv")); err == nil {
			t.Error("the cut-off upload of the removed key was put in place")
		}
		if _, err := keptSFTP.Stat("/"); err != nil {
			t.Errorf("the session of the organization's other key: %v; want it open", err)
		}
		if _, err := dialSSH(t, d, "acme", key); err == nil {
			t.Error("login with the removed key succeeded")
		}

		var trail struct {
			Data []struct {
				Event  string `json:"event"`
				KeyFP  string `json:"key_fingerprint"`
				Reason string `json:"reason"`
			} `json:"data"`
		}
		waitFor(t, 15*time.Second, "session.revoked in acme's audit trail", func() bool {
			d.API("GET", "/v1/organizations/acme/audit", nil, &trail)
			for _, r := range trail.Data {
				if r.Event == sftpd.EventSessionRevoked && r.KeyFP == fp && strings.Contains(r.Reason, "key") {
					return true
				}
			}
			return false
		})
	})

	t.Run("org remove", func(t *testing.T) {
		bin := sftptest.LookPath(t, "sftp")
		key := addOrg(t, d, "globex")
		cmd := exec.Command(bin, "-b", "-", "-P", d.SFTPPort(), "-i", key,
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "globex@127.0.0.1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		out := &sftptest.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		io.WriteString(stdin, "pwd\n")
		waitFor(t, 15*time.Second, "the sftp session to start", func() bool { return strings.Contains(out.String(), "Remote working directory") })

		if out, code := d.CLI("", "org", "remove", "globex"); code != 0 {
			t.Fatalf("org remove = %d %q", code, out)
		}
		// ssh reports the drop at once; sftp notices at its next command.
		waitFor(t, 20*time.Second, "the client to see the connection drop", func() bool {
			return strings.Contains(out.String(), "closed by remote host")
		})
		src := filepath.Join(t.TempDir(), "users.csv")
		os.WriteFile(src, []byte(exportUsers), 0o644)
		io.WriteString(stdin, "put "+src+" users.csv\n")
		stdin.Close()
		select {
		case err := <-exited:
			if err == nil {
				t.Errorf("sftp exited 0 after its organization was removed; want the upload to fail\n%s", out)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("sftp still running 20s after its connection was closed\n%s", out)
		}
		if o, ok := sftpBatch(t, d, key, "globex", "ls\n"); ok {
			t.Errorf("login to the removed organization succeeded:\n%s", o)
		}
		revoked := logMatches(d, func(m map[string]any) bool { return m["event"] == sftpd.EventSessionRevoked && m["org"] == "globex" })
		if len(revoked) != 1 {
			t.Errorf("log lines session.revoked for globex: %d; want 1\n%s", len(revoked), tail(d.Logs(), 10))
		}
	})
}
