package sftpd

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

// paramikoPython returns a Python interpreter with paramiko: skipped when
// there is none, a failure under CI=true.
func paramikoPython(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = sftptest.LookPath(t, "python3")
	}
	if out, err := sftptest.Run(t, nil, py, "-c", "import paramiko"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("paramiko is required under CI=true: %s", out)
		}
		t.Skipf("paramiko not installed for %s", py)
	}
	return py
}

// paramikoKeysScript logs in as acme with paramiko's SSHClient, trying the
// key files given after the known_hosts file in turn (none: look_for_keys
// in $HOME/.ssh), and lists the folder.
const paramikoKeysScript = `
import sys, paramiko, os
if os.environ.get("PARAMIKO_DEBUG"): paramiko.util.log_to_file("/dev/stderr", level="DEBUG")
host, port, known, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
client = paramiko.SSHClient()
client.load_host_keys(known)
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.connect(host, port=port, username="acme", key_filename=keys or None,
               look_for_keys=not keys, allow_agent=False)
sftp = client.open_sftp()
print("listing", sorted(sftp.listdir(".")))
sftp.close()
client.close()
`

// TestParamikoSeveralKeyFiles is golang/go#75268: paramiko sends
// SSH_MSG_SERVICE_REQUEST before every authentication attempt, which
// x/crypto/ssh's server does not accept without the patch in
// third_party/golang.org/x/crypto. An unregistered key is tried first.
func TestParamikoSeveralKeyFiles(t *testing.T) {
	py := paramikoPython(t)
	e, k, known, _ := clientSetup(t)
	other := sftptest.GenerateKey(t, t.TempDir(), "id_other")
	host, port, _ := net.SplitHostPort(e.addr)
	out, err := sftptest.Run(t, nil, py, "-c", paramikoKeysScript, host, port, known, other.Path, k.Path)
	if err != nil {
		t.Fatalf("paramiko with an unregistered key first: %v\n%s", err, out)
	}
	mustContain(t, "paramiko output", out, "listing ['reports']")
	mustContain(t, "log", e.logs.String(), `"event":"auth.failure"`, Fingerprint(other.Public), `"event":"session.start"`)
}

// TestParamikoLookForKeys: look_for_keys=True with an unregistered key in
// ~/.ssh that paramiko tries before the registered one (it tries id_ecdsa
// before id_ed25519).
func TestParamikoLookForKeys(t *testing.T) {
	py := paramikoPython(t)
	e, k, known, _ := clientSetup(t)
	home := t.TempDir()
	dotSSH := filepath.Join(home, ".ssh")
	if err := os.Mkdir(dotSSH, 0o700); err != nil {
		t.Fatal(err)
	}
	// paramiko 2.12 cannot read x/crypto's OpenSSH-format ECDSA keys;
	// ssh-keygen's it reads, as users have them.
	keygen := sftptest.LookPath(t, "ssh-keygen")
	if out, err := sftptest.Run(t, nil, keygen, "-q", "-t", "ecdsa", "-N", "", "-f", filepath.Join(dotSSH, "id_ecdsa")); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	otherPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(readFile(t, filepath.Join(dotSSH, "id_ecdsa.pub"))))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Link(k.Path, filepath.Join(dotSSH, "id_ed25519")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	host, port, _ := net.SplitHostPort(e.addr)
	out, err := sftptest.Run(t, nil, py, "-c", paramikoKeysScript, host, port, known)
	if err != nil {
		t.Fatalf("paramiko look_for_keys: %v\n%s", err, out)
	}
	mustContain(t, "paramiko output", out, "listing ['reports']")
	logs := e.logs.String()
	mustContain(t, "log", logs, Fingerprint(otherPub), `"event":"session.start"`)
	if !strings.Contains(logs, Fingerprint(k.Public)) {
		t.Errorf("log does not name the registered key %s", Fingerprint(k.Public))
	}
}
