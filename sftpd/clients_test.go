package sftpd

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

const clientUsers = "user_id,email,first_name,last_name\n1,a@example.com,A,B\n2,b@example.com,C,D\n"

// clientSetup starts a server with org acme and returns it, acme's key, a
// known_hosts file pinning the host keys, and a local users.csv.
func clientSetup(t *testing.T) (*env, sftptest.Key, string, string) {
	t.Helper()
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(e.addr)
	var kh strings.Builder
	for _, pk := range e.hostPublicKeys() {
		fmt.Fprintf(&kh, "[%s]:%s %s", host, port, sshAuthorizedKey(pk))
	}
	known := filepath.Join(dir, "known_hosts")
	writeFile(t, known, kh.String())
	local := filepath.Join(dir, "users.csv")
	writeFile(t, local, clientUsers)
	return e, k, known, local
}

func checkUploaded(t *testing.T, e *env, name string, notes ...string) {
	t.Helper()
	if got := readFile(t, e.orgFile("acme", name)); got != clientUsers {
		t.Errorf("%s = %q; want the uploaded file", name, got)
	}
	waitFor(t, "notifications", func() bool { return len(e.notes.get()) >= len(notes) })
	if got := e.notes.get(); !slices.Equal(got, notes) {
		t.Errorf("notifications = %q; want %q", got, notes)
	}
}

func TestClientRclone(t *testing.T) {
	bin := sftptest.LookPath(t, "rclone")
	e, k, known, local := clientSetup(t)
	host, port, _ := net.SplitHostPort(e.addr)
	remote := fmt.Sprintf(":sftp,host=%s,port=%s,user=acme,key_file=%s,known_hosts_file=%s:", host, port, k.Path, known)
	out, err := sftptest.Run(t, nil, bin, "--config", "/dev/null", "copyto", local, remote+"users.csv")
	if err != nil {
		t.Fatalf("rclone copyto: %v\n%s", err, out)
	}
	checkUploaded(t, e, "users.csv", "acme/users.csv")
	out, err = sftptest.Run(t, nil, bin, "--config", "/dev/null", "lsl", remote)
	if err != nil {
		t.Fatalf("rclone lsl: %v\n%s", err, out)
	}
	mustContain(t, "rclone lsl", out, "users.csv")
}

func TestClientLftp(t *testing.T) {
	bin := sftptest.LookPath(t, "lftp")
	sftptest.LookPath(t, "ssh")
	e, k, known, local := clientSetup(t)
	host, port, _ := net.SplitHostPort(e.addr)
	ssh := fmt.Sprintf("ssh -a -x -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null", k.Path, known)
	script := fmt.Sprintf(`set sftp:connect-program "%s"; set net:max-retries 1; open -u acme, -p %s sftp://%s; put %s -o users.csv.part; mv users.csv.part users.csv; cls -l`, ssh, port, host, local)
	out, err := sftptest.Run(t, nil, bin, "-c", script)
	if err != nil {
		t.Fatalf("lftp: %v\n%s", err, out)
	}
	checkUploaded(t, e, "users.csv", "acme/users.csv.part", "acme/users.csv")
	mustContain(t, "lftp cls -l", out, "users.csv")
}

const paramikoScript = `
import sys, paramiko
host, port, key, known, local = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
client = paramiko.SSHClient()
client.load_host_keys(known)
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.connect(host, port=port, username="acme", key_filename=key, look_for_keys=False, allow_agent=False)
sftp = client.open_sftp()
sftp.put(local, "users.csv.tmp")
sftp.posix_rename("users.csv.tmp", "users.csv")
print(sorted(sftp.listdir(".")))
print(client.get_transport().remote_cipher, client.get_transport().remote_mac)
sftp.close()
client.close()
`

func TestClientParamiko(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = sftptest.LookPath(t, "python3-with-paramiko") // skips, or fails under CI
	}
	if out, err := sftptest.Run(t, nil, py, "-c", "import paramiko"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("paramiko is required under CI=true: %s", out)
		}
		t.Skipf("paramiko not installed for %s", py)
	}
	e, k, known, local := clientSetup(t)
	host, port, _ := net.SplitHostPort(e.addr)
	out, err := sftptest.Run(t, nil, py, "-c", paramikoScript, host, port, k.Path, known, local)
	if err != nil {
		t.Fatalf("paramiko: %v\n%s", err, out)
	}
	checkUploaded(t, e, "users.csv", "acme/users.csv.tmp", "acme/users.csv")
	mustContain(t, "paramiko output", out, "['reports', 'users.csv']", "aes128-ctr hmac-sha2-256-etm@openssh.com")
}

func TestClientCurl(t *testing.T) {
	bin := sftptest.LookPath(t, "curl")
	e, k, _, local := clientSetup(t)
	url := fmt.Sprintf("sftp://%s/users.csv", e.addr)
	out, err := sftptest.Run(t, nil, bin, "-sS", "--insecure", "-u", "acme:", "--key", k.Path, "--pubkey", k.Path+".pub", "-T", local, url)
	if err != nil {
		t.Fatalf("curl -T: %v\n%s", err, out)
	}
	checkUploaded(t, e, "users.csv", "acme/users.csv")
	out, err = sftptest.Run(t, nil, bin, "-sS", "--insecure", "-u", "acme:", "--key", k.Path, "--pubkey", k.Path+".pub", url)
	if err != nil || out != clientUsers {
		t.Fatalf("curl download = %q, %v", out, err)
	}
}
